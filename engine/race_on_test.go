//go:build race

package engine_test

// raceEnabled: the race detector slows sockets several times; the heaviest
// tests scale down under it.
const raceEnabled = true
