package main

// Pins dependencies in go.mod until the code uses them. Delete when wired.
import (
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/puzpuzpuz/xsync/v4"
)
