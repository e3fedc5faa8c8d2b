// Package engine is turnstile's WebSocket listener: gnet event loops that
// parse the HTTP upgrade with gobwas/ws, admit a connection only when the
// ticket store redeems its ticket, speak RFC 6455 to very many connections
// without a goroutine per connection, and fan published messages out.
//
// The way a connection travels: OnOpen puts a Conn in the gnet context and
// its handshake deadline in the loop's FIFO; OnTraffic waits for the whole
// header block, runs the loop's Upgrader over exactly those bytes (method,
// path, headers, version, Origin; then the ticket's presence and form,
// capacity, and the ticket redeemed last: inline, or off the loop for a
// store that needs the network, admit_async.go, the upgrade resuming on the
// loop when it answers; then the per-user quota), answers 101
// and the welcome or a prebuilt rejection, then parses the frames that
// follow with its own header parser. The welcome carries the personal
// channel's position: read on the loop from an in-process broker (the
// embedded one), so that it leaves with the 101 in one write, or off the
// loop from a remote one (Redis), the 101 going first. Each loop indexes
// its subscriptions both ways (index.go); the hub (hub.go) is the broker's
// Handler: a publication runs only on the loops that hold a subscriber of
// its channel, one task per loop with the frame encoded once, and every
// call to a remote broker runs off the loops, its result merged back on
// the loop (subscribe.go). Client commands (command.go, commands.go) and every
// server frame (wire.go) are documented for clients in PROTOCOL.md. A tick
// queues one sweep per loop for deadlines, pings and idleness.
//
// Nothing here may block an event loop: no network calls, no contended locks,
// no JWT verification, no password hashing. The engine never verifies a JWT;
// it trusts only what the ticket store hands back. It never logs a request
// line, since its query holds the ticket.
package engine
