package main

import (
	_ "embed"
	"net/http"
)

// demoPage is a one-page client for -dev, built on the browser client
// (clients/js): log in, connect, subscribe, publish, and watch reconnects
// recover. It is served only in -dev, at "/".
//
//go:embed demo.html
var demoPage []byte

// demoClient is clients/js built and minified (npm run demo there). It is
// committed so that `make run` needs only Go; clients/js's npm test fails
// when it is stale.
//
//go:embed demo/turnstile.min.js
var demoClient []byte

func serveDemo(w http.ResponseWriter, r *http.Request) {
	var body []byte
	switch r.URL.Path {
	case "/":
		body = demoPage
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
	case "/turnstile.min.js":
		body = demoClient
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(body)
}
