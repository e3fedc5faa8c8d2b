package engine

// Pins the engine's dependencies in go.mod until the code uses them.
// Delete this file once engine imports them for real.
import (
	_ "github.com/gobwas/ws"
	_ "github.com/panjf2000/gnet/v2"
)

// Conn is one WebSocket connection (placeholder until the engine lands).
type Conn struct{}
