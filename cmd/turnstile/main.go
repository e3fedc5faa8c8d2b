// Command turnstile is the WebSocket push server: see README.md.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "turnstile: not wired yet")
	os.Exit(1)
}
