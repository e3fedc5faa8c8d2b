package engine

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Publisher is the part of the hub that /publish drives. *Server implements it.
type Publisher interface {
	// Publish sends data to every connection of user; it returns how many
	// connections were targeted.
	Publish(user string, data []byte) int
	// Broadcast sends data to every connection; it returns how many
	// connections were targeted.
	Broadcast(data []byte) int
}

// DefaultMaxPublishBytes bounds a /publish request body.
const DefaultMaxPublishBytes = 1 << 20

// PublishHandler serves POST /publish for backends.
type PublishHandler struct {
	hub     Publisher
	keyHash [sha256.Size]byte
	maxBody int64
}

// NewPublishHandler returns the /publish handler. Requests must carry
// "Authorization: Bearer <key>". maxBody <= 0 means DefaultMaxPublishBytes.
// Publishes are counted by the hub (Stats().Publishes), not here.
// The handler is safe for concurrent use, as net/http requires.
func NewPublishHandler(hub Publisher, key string, maxBody int64) (*PublishHandler, error) {
	if hub == nil {
		return nil, errors.New("engine: publish handler needs a hub")
	}
	if key == "" {
		return nil, errors.New("engine: publish handler needs a key")
	}
	if maxBody <= 0 {
		maxBody = DefaultMaxPublishBytes
	}
	return &PublishHandler{hub: hub, keyHash: sha256.Sum256([]byte(key)), maxBody: maxBody}, nil
}

type publishRequest struct {
	User      string          `json:"user"`
	Broadcast bool            `json:"broadcast"`
	Channel   *string         `json:"channel"`
	Data      json.RawMessage `json:"data"`
}

// ServeHTTP answers one /publish request. Safe for concurrent requests; it
// waits for the event loops (Publish), so it must never run on one.
func (h *PublishHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writePublishError(w, http.StatusMethodNotAllowed, "method not allowed: use POST")
		return
	}
	if !h.authorized(r.Header.Get("Authorization")) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="turnstile-publish"`)
		writePublishError(w, http.StatusUnauthorized, "missing or wrong publish key")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writePublishError(w, http.StatusRequestEntityTooLarge, "body larger than "+strconv.FormatInt(h.maxBody, 10)+" bytes")
			return
		}
		writePublishError(w, http.StatusBadRequest, "cannot read body")
		return
	}
	req, msg := parsePublish(body)
	if msg != "" {
		writePublishError(w, http.StatusBadRequest, msg)
		return
	}
	var n int
	if req.Broadcast {
		n = h.hub.Broadcast(req.Data)
	} else {
		n = h.hub.Publish(req.User, req.Data)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"recipients":` + strconv.Itoa(n) + "}\n"))
}

// authorized compares digests so that the comparison takes the same time
// whatever the length or content of the presented key.
func (h *PublishHandler) authorized(header string) bool {
	const prefix = "Bearer "
	if len(header) <= len(prefix) || !strings.EqualFold(header[:len(prefix)], prefix) {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(header[len(prefix):])))
	return subtle.ConstantTimeCompare(got[:], h.keyHash[:]) == 1
}

// parsePublish validates a /publish body; a non-empty message says what is wrong.
func parsePublish(body []byte) (publishRequest, string) {
	var req publishRequest
	body, err := compactJSONText(body) // UTF-8, Unicode strings; data comes out compact
	if err != nil {
		return req, err.Error()
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, "malformed JSON body: " + err.Error()
	}
	if dec.More() {
		return req, "malformed JSON body: more than one JSON value"
	}
	switch {
	case req.Channel != nil:
		return req, `"channel" is not supported yet: use "user" or "broadcast"`
	case req.Broadcast && req.User != "":
		return req, `give either "user" or "broadcast":true, not both`
	case !req.Broadcast && req.User == "":
		return req, `missing target: give "user" or "broadcast":true`
	case len(req.Data) == 0:
		return req, `missing "data"`
	}
	return req, ""
}

func writePublishError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	_, _ = w.Write(append(b, '\n'))
}
