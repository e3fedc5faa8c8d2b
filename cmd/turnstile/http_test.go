package main

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCORS(t *testing.T) {
	cases := []struct {
		name      string
		origins   []string
		method    string
		origin    string
		preflight bool
		wantACAO  string
		reached   bool
		status    int
	}{
		{"allowed origin", []string{"https://app.example"}, "POST", "https://app.example", false, "https://app.example", true, 200},
		{"other origin", []string{"https://app.example"}, "POST", "https://evil.example", false, "", true, 200},
		{"no origin (native app)", []string{"https://app.example"}, "POST", "", false, "", true, 200},
		{"any origin", []string{"*"}, "GET", "http://localhost:3000", false, "http://localhost:3000", true, 200},
		{"preflight allowed", []string{"https://app.example"}, "OPTIONS", "https://app.example", true, "https://app.example", false, 204},
		{"preflight refused reaches handler", nil, "OPTIONS", "https://app.example", true, "", true, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &server{origins: tc.origins}
			reached := false
			h := s.cors(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached = true }))
			r := httptest.NewRequest(tc.method, "/ws_ticket", nil)
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			if tc.preflight {
				r.Header.Set("Access-Control-Request-Method", "POST")
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if got := w.Header().Get("Access-Control-Allow-Origin"); got != tc.wantACAO {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", got, tc.wantACAO)
			}
			if reached != tc.reached || w.Code != tc.status {
				t.Errorf("handler reached %v status %d, want %v %d", reached, w.Code, tc.reached, tc.status)
			}
			if tc.status == 204 && !strings.Contains(w.Header().Get("Access-Control-Allow-Headers"), "Authorization") {
				t.Errorf("preflight does not allow the Authorization header")
			}
		})
	}
}

func TestAccessLogNeverLogsTheQuery(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := accessLog(log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(418) }))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/ws?ticket=SECRET-TICKET-TEXT", nil))
	out := buf.String()
	if strings.Contains(out, "SECRET-TICKET-TEXT") {
		t.Fatalf("the query reached the log: %s", out)
	}
	if !strings.Contains(out, "path=/ws") || !strings.Contains(out, "status=418") || !strings.Contains(out, "query_redacted=true") {
		t.Fatalf("access log line lacks path, status or redaction mark: %s", out)
	}
}
