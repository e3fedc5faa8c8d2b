//go:build !linux

package main

import (
	"errors"
	"os"
)

// isTerminal cannot tell on this system; stdin is read as a pipe.
func isTerminal(*os.File) bool { return false }

func readNoEcho(*os.File) ([]byte, error) {
	return nil, errors.New("prompting without echo needs Linux; pipe the password on stdin")
}

func chownLike(*os.File, os.FileInfo) error { return nil }
