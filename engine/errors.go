package engine

import "errors"

// Errors returned by the engine, built once.
var (
	ErrNoStore       = errors.New("engine: Config.Store is required")
	ErrBadPath       = errors.New("engine: Config.Path must start with \"/\"")
	ErrBadLimit      = errors.New("engine: sizes, durations and counts must not be negative")
	ErrStarted       = errors.New("engine: server already started")
	ErrNotStarted    = errors.New("engine: server not started")
	ErrStopped       = errors.New("engine: server stopped")
	ErrOriginInvalid = errors.New("engine: an Origin must be \"*\" or scheme://host[:port]")

	errFrameLength = errors.New("engine: frame length has its top bit set")
)
