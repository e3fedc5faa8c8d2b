package broker

import "errors"

// MaxIdempotencyKeyLen is the longest idempotency key a publish may carry
// (DESIGN 1.5); a longer one fails with ErrIdempotencyKeyTooLong.
const MaxIdempotencyKeyLen = 64

// Errors of the embedded broker that a caller must tell apart, built once.
// (ErrUnavailable and ErrUnrecoverable, shared by every broker, are in
// broker.go.)
var (
	// ErrNotStarted: a method other than Start and Close was called before
	// Start.
	ErrNotStarted = errors.New("broker: not started")
	// ErrStarted: Start was called twice.
	ErrStarted = errors.New("broker: already started")
	// ErrNilHandler: Start was given a nil Handler.
	ErrNilHandler = errors.New("broker: nil handler")
	// ErrClosed: the broker was closed.
	ErrClosed = errors.New("broker: closed")
	// ErrEmptyChannel: a channel name was empty.
	ErrEmptyChannel = errors.New("broker: empty channel name")
	// ErrIdempotencyKeyTooLong: a key over MaxIdempotencyKeyLen bytes
	// (an HTTP caller answers 400). Nothing was published.
	ErrIdempotencyKeyTooLong = errors.New("broker: idempotency key longer than 64 bytes")
	// ErrTooManyIdempotencyKeys: the broker already remembers its most
	// keys (MemoryConfig.IdempotencyMaxKeys) and cannot promise that a
	// retry of this publish would not publish twice, so it refuses it;
	// nothing was published. Keys expire after the history TTL: an HTTP
	// caller answers 503 with Retry-After. Publishes without a key are not
	// affected.
	ErrTooManyIdempotencyKeys = errors.New("broker: too many live idempotency keys")
	// ErrNotSubscribed: Unsubscribe of a channel this node is not
	// subscribed to.
	ErrNotSubscribed = errors.New("broker: channel not subscribed")
	// ErrBadDisconnect: a Disconnect with neither or both of User and Conn.
	ErrBadDisconnect = errors.New("broker: disconnect needs exactly one of user and conn")
	// ErrBadConfig: NewMemory was given a negative limit; the error wraps
	// it with the field's name.
	ErrBadConfig = errors.New("broker: bad config")
)
