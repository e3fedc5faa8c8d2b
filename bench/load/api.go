package load

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// apiClient talks to a server's HTTP API: /auth, /ws_ticket and /publish.
// Safe for concurrent use.
type apiClient struct {
	base string // http://host:port
	hc   *http.Client
}

func newAPIClient(httpAddr string, conns int) *apiClient {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true}
	return &apiClient{base: "http://" + httpAddr, hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

func (a *apiClient) do(method, path, bearer string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(raw))
	}
	return json.Unmarshal(raw, out)
}

// login trades user and password for a token.
func (a *apiClient) login(user, pwd string) (string, error) {
	var r struct {
		Token string `json:"token"`
	}
	err := a.do(http.MethodPost, "/auth", "", map[string]string{"user": user, "pwd": pwd}, &r)
	if err == nil && r.Token == "" {
		err = fmt.Errorf("POST /auth: no token in the answer")
	}
	return r.Token, err
}

// ticket trades a token for a one-time ticket.
func (a *apiClient) ticket(token string) (string, error) {
	var r struct {
		Ticket string `json:"ticket"`
	}
	err := a.do(http.MethodGet, "/ws_ticket", token, nil, &r)
	if err == nil && r.Ticket == "" {
		err = fmt.Errorf("GET /ws_ticket: no ticket in the answer")
	}
	return r.Ticket, err
}

// publish sends data (a JSON object: fanoutData) to everyone, or to user
// when it is not empty, and returns the number of recipients.
func (a *apiClient) publish(key, user string, data json.RawMessage) (int, error) {
	var body any = map[string]any{"broadcast": true, "data": data}
	if user != "" {
		body = map[string]any{"user": user, "data": data}
	}
	var r struct {
		Recipients int `json:"recipients"`
	}
	err := a.do(http.MethodPost, "/publish", key, body, &r)
	return r.Recipients, err
}

// tickets fetches n tickets with parallel requests.
func (a *apiClient) tickets(token string, n, parallel int) ([]string, error) {
	out := make([]string, n)
	errs := make(chan error, parallel)
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	for range parallel {
		go func() {
			for i := range next {
				t, err := a.ticket(token)
				if err != nil {
					errs <- err
					return
				}
				out[i] = t
			}
			errs <- nil
		}()
	}
	var first error
	for range parallel {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return out, first
}

// publishChannels sends one message stamped with the current time to each
// of the channels load:0 … load:n-1, in /publish batches of up to 1,000.
func (a *apiClient) publishChannels(key string, n, seq int) error {
	// One stamp for the round, so that its spread (publish to the last
	// delivery on any channel) is one fan-out, as for fanout.
	stamp := time.Now().UnixNano()
	for from := 0; from < n; from += 1000 {
		msgs := make([]any, 0, min(1000, n-from))
		for k := from; k < min(n, from+1000); k++ {
			data := map[string]int64{"t": stamp, "seq": int64(seq)}
			msgs = append(msgs, map[string]any{"channel": fmt.Sprintf("load:%d", k), "data": data})
		}
		var r struct {
			Results []struct {
				Error string `json:"error"`
			} `json:"results"`
		}
		if err := a.do(http.MethodPost, "/publish", key, map[string]any{"messages": msgs}, &r); err != nil {
			return err
		}
		for _, res := range r.Results {
			if res.Error != "" {
				return fmt.Errorf("POST /publish batch: %s", res.Error)
			}
		}
	}
	return nil
}
