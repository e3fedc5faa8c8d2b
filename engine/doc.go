// Package engine is turnstile's WebSocket listener: gnet event loops that
// parse the HTTP upgrade with gobwas/ws, admit a connection only when the
// ticket store redeems its ticket, speak RFC 6455 to very many connections
// without a goroutine per connection, and fan published messages out.
//
// Nothing here may block an event loop: no network calls, no contended locks,
// no JWT verification, no password hashing. The engine never verifies a JWT;
// it trusts only what the ticket store hands back.
package engine
