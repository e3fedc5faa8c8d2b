//go:build race

package broker

// The race detector changes allocation counts; allocation tests skip.
const raceEnabled = true
