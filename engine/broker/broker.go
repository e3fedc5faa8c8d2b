// Package broker defines the seam between the engine's node-local hub and
// whatever assigns offsets, keeps history and carries messages between
// nodes: the Broker interface, the Position and Publication it speaks in,
// and the errors it returns. The embedded in-memory broker lives beside
// this file (memory.go); the Redis broker in engine/broker/redis.
//
// A broker may be remote: every method but Start may take a network round
// trip, so the engine calls them from its own goroutines and hands results
// back to the loop (gnet's Execute), unless the broker is InProcess.
package broker

import (
	"context"
	"errors"
)

// Position is where a channel's stream stands: the offset of its newest
// message (0 if it has none) and the epoch of its history. Two positions
// of one channel are comparable only when their epochs are equal.
type Position struct {
	Offset uint64
	Epoch  string
}

// Publication is one message of a channel with its place in the stream.
// Offsets of a channel are 1, 2, 3, … within one epoch, each exactly one
// more than the previous message's.
type Publication struct {
	Channel string
	Offset  uint64
	Epoch   string
	Data    []byte // one JSON value, valid UTF-8; never modified after publish
}

// PublishOptions are the optional parts of a publish.
type PublishOptions struct {
	// IdempotencyKey, if not empty, makes a retry with the same key to the
	// same channel within the history TTL publish nothing and return the
	// first publish's result with Duplicate set.
	IdempotencyKey string
}

// PublishResult is what a publish did.
type PublishResult struct {
	Position  Position // the published message's offset and epoch
	Duplicate bool     // an earlier publish with the same idempotency key won
}

// Disconnect names connections to close on every node: all of User's, or
// the one connection Conn (a welcome's "conn"). Exactly one is set.
//
// Origin, when set, is the node that asked: it closed its own connections
// before it asked the broker, so the handler there ignores the delivery.
// Else a client that came back on that node between the two would be
// closed a second time.
type Disconnect struct {
	User   string
	Conn   string
	Origin string
}

// Handler is the node-local receiver of what the broker delivers: the
// engine's hub. The broker calls it from its own goroutines. For one
// channel, HandlePublication is never called concurrently and always in
// offset order; calls for different channels may run concurrently. The
// handler must not block (it hands work to the event loops and returns),
// and must not keep p.Data past a later modification (there is none:
// Data is immutable).
type Handler interface {
	HandlePublication(p Publication)
	HandleBroadcast(data []byte)
	HandleDisconnect(d Disconnect)
}

// Broker assigns offsets, keeps bounded history and delivers publications
// to the Handler of every node subscribed to their channel.
//
// Every method is safe for concurrent use. Every method but Start may block
// on the network: never call one on an event loop.
type Broker interface {
	// Start makes the broker deliver to h. It is called once, before any
	// other method.
	Start(h Handler) error

	// Publish assigns the channel's next offset, appends the message to the
	// channel's history and delivers it to every subscribed node, as one
	// atomic step: offset order is delivery order. It fails with
	// ErrUnavailable when the backend cannot be reached (nothing was
	// published then).
	Publish(ctx context.Context, channel string, data []byte, opts PublishOptions) (PublishResult, error)

	// Broadcast delivers data to every node's HandleBroadcast; no offset, no
	// history.
	Broadcast(ctx context.Context, data []byte) error

	// Disconnect delivers d to every node's HandleDisconnect.
	Disconnect(ctx context.Context, d Disconnect) error

	// Subscribe makes this node receive the channel's publications. When it
	// returns nil, every publication whose offset is assigned from then on
	// reaches the Handler, so a History or Position read after it leaves no
	// gap. The engine calls it once per channel per node, when the channel's
	// first local subscriber arrives, and Unsubscribe when the last leaves.
	Subscribe(ctx context.Context, channel string) error
	Unsubscribe(ctx context.Context, channel string) error

	// Position returns the channel's current position (offset 0 and a fresh
	// epoch for a channel never published to).
	Position(ctx context.Context, channel string) (Position, error)

	// History returns every publication of the channel after since, in
	// offset order, and the channel's position at the time of the read. If
	// since cannot be served completely (another epoch, messages trimmed by
	// size, age or memory, or an offset past the top) it returns
	// ErrUnrecoverable with the current position and no publications:
	// never a partial history.
	History(ctx context.Context, channel string, since Position) ([]Publication, Position, error)

	// Close stops delivery and releases the broker's resources.
	Close() error
}

// InProcess is a Broker whose Subscribe, Unsubscribe, Position and
// History never wait on the network, only on short in-process critical
// sections, and whose Subscribe calls are counted (each Unsubscribe
// undoes one). The engine calls these methods of such a broker on its
// event loops, without a goroutine, a timeout or its own reference count:
// a connection's welcome then leaves with its 101 in one write. The
// embedded Memory is one; a Redis broker is not.
type InProcess interface {
	Broker
	// InProcess reports whether the guarantee holds (a wrapper around a
	// Broker may say no).
	InProcess() bool
}

// Errors returned by brokers, built once.
var (
	// ErrUnavailable: the backend (e.g. Redis) cannot be reached; the caller
	// should fail closed (503) and retry later.
	ErrUnavailable = errors.New("broker: unavailable")
	// ErrUnrecoverable: the requested history is gone or never existed.
	ErrUnrecoverable = errors.New("broker: position cannot be recovered")
)
