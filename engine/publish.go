package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/turnstile-push/turnstile/engine/broker"
)

// Publisher is the part of the engine that /publish and /disconnect drive.
// *Server implements it. Every method may wait on the broker.
type Publisher interface {
	// PublishChannel publishes data to channel (a user's is "#<user>").
	PublishChannel(ctx context.Context, channel string, data []byte, idempotencyKey string) (PublishResult, error)
	// BroadcastAll sends data to every connection; it returns how many
	// local connections were targeted.
	BroadcastAll(ctx context.Context, data []byte) (int, error)
	// Disconnect closes the named connections on every node; it returns
	// how many local ones it closed.
	Disconnect(ctx context.Context, d broker.Disconnect) (int, error)
}

// MaxBatch is the most publishes one /publish batch may carry.
const MaxBatch = 1000

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
	User           string            `json:"user"`
	Broadcast      bool              `json:"broadcast"`
	Channel        *string           `json:"channel"`
	IdempotencyKey *string           `json:"idempotency_key"`
	Data           json.RawMessage   `json:"data"`
	Messages       []json.RawMessage `json:"messages"`
}

// ServeHTTP answers one /publish request: a single publish or a batch.
// Safe for concurrent requests; it waits on the broker, so it must never
// run on an event loop.
func (h *PublishHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	req, msg := parsePublish(body)
	if msg != "" {
		writePublishError(w, http.StatusBadRequest, msg)
		return
	}
	if req.Messages == nil {
		res := h.publishOne(r.Context(), &req)
		if res.status != http.StatusOK {
			if res.status == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", "1")
			}
			writePublishError(w, res.status, res.Error)
			return
		}
		writePublishJSON(w, res)
		return
	}
	if len(req.Messages) > MaxBatch {
		writePublishError(w, http.StatusBadRequest, "batch of "+strconv.Itoa(len(req.Messages))+" messages: at most "+strconv.Itoa(MaxBatch))
		return
	}
	out := struct {
		Results []publishResult `json:"results"`
	}{Results: make([]publishResult, len(req.Messages))}
	var p cmdParser
	for i, item := range req.Messages {
		one, msg := parseBatchItem(&p, item)
		switch {
		case msg != "":
			out.Results[i] = publishResult{status: http.StatusBadRequest, Error: msg}
		case one.Messages != nil:
			out.Results[i] = publishResult{status: http.StatusBadRequest, Error: "a batch item cannot be a batch"}
		default:
			out.Results[i] = h.publishOne(r.Context(), &one)
		}
		if s := out.Results[i].status; s != http.StatusOK {
			out.Results[i].Status = s
		}
	}
	writePublishJSON(w, out)
}

// publishResult is one publish's answer; Error set on failure.
type publishResult struct {
	Recipients *int    `json:"recipients,omitempty"`
	Offset     *uint64 `json:"offset,omitempty"`
	Epoch      *string `json:"epoch,omitempty"`
	Error      string  `json:"error,omitempty"`
	Status     int     `json:"status,omitempty"` // an item's HTTP status, in a batch
	status     int
}

// publishOne runs one validated publish.
func (h *PublishHandler) publishOne(ctx context.Context, req *publishRequest) publishResult {
	if req.Broadcast {
		n, err := h.hub.BroadcastAll(ctx, req.Data)
		if err != nil {
			return brokerFailure(err)
		}
		return publishResult{status: http.StatusOK, Recipients: &n}
	}
	channel := PersonalChannel(req.User)
	if req.Channel != nil {
		channel = *req.Channel
	}
	var key string
	if req.IdempotencyKey != nil {
		key = *req.IdempotencyKey
	}
	res, err := h.hub.PublishChannel(ctx, channel, req.Data, key)
	if err != nil {
		return brokerFailure(err)
	}
	return publishResult{status: http.StatusOK, Recipients: &res.Recipients, Offset: &res.Offset, Epoch: &res.Epoch}
}

// brokerFailure maps a broker error to the answer.
func brokerFailure(err error) publishResult {
	switch {
	case errors.Is(err, broker.ErrUnavailable), errors.Is(err, broker.ErrTooManyIdempotencyKeys):
		return publishResult{status: http.StatusServiceUnavailable, Error: "broker unavailable, retry later: " + err.Error()}
	case errors.Is(err, broker.ErrIdempotencyKeyTooLong), errors.Is(err, broker.ErrEmptyChannel):
		return publishResult{status: http.StatusBadRequest, Error: err.Error()}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return publishResult{status: http.StatusServiceUnavailable, Error: "broker did not answer in time, retry later"}
	}
	return publishResult{status: http.StatusInternalServerError, Error: "publish failed: " + err.Error()}
}

// readBody checks method and key and reads the body (at most maxBody).
func (h *PublishHandler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writePublishError(w, http.StatusMethodNotAllowed, "method not allowed: use POST")
		return nil, false
	}
	if !h.authorized(r.Header.Get("Authorization")) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="turnstile-publish"`)
		writePublishError(w, http.StatusUnauthorized, "missing or wrong publish key")
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writePublishError(w, http.StatusRequestEntityTooLarge, "body larger than "+strconv.FormatInt(h.maxBody, 10)+" bytes")
			return nil, false
		}
		writePublishError(w, http.StatusBadRequest, "cannot read body")
		return nil, false
	}
	return body, true
}

// Disconnect returns the POST /disconnect handler: body {"user":"…"} or
// {"conn":"…"} closes those connections with 4001 on every node and
// answers {"disconnected":<n local>}. Same key as /publish. Safe for
// concurrent requests; never on an event loop.
func (h *PublishHandler) Disconnect() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := h.readBody(w, r)
		if !ok {
			return
		}
		var req struct {
			User *string `json:"user"`
			Conn *string `json:"conn"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || dec.More() {
			writePublishError(w, http.StatusBadRequest, `malformed JSON body: want {"user":"…"} or {"conn":"…"}`)
			return
		}
		var d broker.Disconnect
		switch {
		case req.User != nil && req.Conn != nil:
			writePublishError(w, http.StatusBadRequest, `give either "user" or "conn", not both`)
			return
		case req.User != nil && *req.User != "":
			d.User = *req.User
		case req.Conn != nil && *req.Conn != "":
			d.Conn = *req.Conn
		default:
			writePublishError(w, http.StatusBadRequest, `missing target: give a non-empty "user" or "conn"`)
			return
		}
		n, err := h.hub.Disconnect(r.Context(), d)
		if err != nil {
			res := brokerFailure(err)
			if res.status == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", "1")
			}
			writePublishError(w, res.status, res.Error)
			return
		}
		writePublishJSON(w, struct {
			Disconnected int `json:"disconnected"`
		}{n})
	})
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

// validPublishChannel: a channel name, or a personal channel "#<user>".
func validPublishChannel(name string) bool {
	if len(name) > 1 && name[0] == '#' {
		return true
	}
	return ValidChannel(name)
}

// parsePublish validates a /publish body (or a batch item); a non-empty
// message says what is wrong. A batch comes back with Messages set and
// its items unparsed.
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
	return req, checkPublish(&req)
}

// checkPublish validates a decoded publish (its data is compact already:
// compactJSONText compacted the body).
func checkPublish(req *publishRequest) string {
	if req.Messages != nil {
		if req.User != "" || req.Broadcast || req.Channel != nil || req.IdempotencyKey != nil || len(req.Data) != 0 {
			return `a batch is {"messages":[…]} alone: give the targets in its items`
		}
		if len(req.Messages) == 0 {
			return `"messages" is empty: give 1 to 1000 publishes`
		}
		return ""
	}
	targets := 0
	for _, set := range []bool{req.User != "", req.Broadcast, req.Channel != nil} {
		if set {
			targets++
		}
	}
	switch {
	case targets > 1:
		return `give one of "user", "channel" or "broadcast":true`
	case targets == 0:
		return `missing target: give "user", "channel" or "broadcast":true`
	case req.Channel != nil && !validPublishChannel(*req.Channel):
		return "bad channel name: 1 to 200 bytes of A-Z a-z 0-9 _ - . : @ /, or #<user>"
	case req.IdempotencyKey != nil && req.Broadcast:
		return `a broadcast has no history: "idempotency_key" is for channel and user publishes`
	case req.IdempotencyKey != nil && (*req.IdempotencyKey == "" || len(*req.IdempotencyKey) > broker.MaxIdempotencyKeyLen):
		return `"idempotency_key" must be 1 to 64 bytes`
	case len(req.Data) == 0:
		return `missing "data"`
	}
	return ""
}

func writePublishError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	_, _ = w.Write(append(b, '\n'))
}

func writePublishJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writePublishError(w, http.StatusInternalServerError, "cannot encode the answer")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}
