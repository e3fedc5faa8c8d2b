package main

import (
	_ "embed"
	"net/http"
)

// demoPage is a one-page client for -dev: log in, take a ticket, connect and
// show what arrives. It is served only in -dev, at "/".
//
//go:embed demo.html
var demoPage []byte

func serveDemo(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(demoPage)
}
