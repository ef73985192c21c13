package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cordon-sandbox/cordon/events"
)

// Client talks to a daemon over its unix socket, keeping connections
// alive between calls.
type Client struct {
	http *http.Client
}

// NewClient returns a client of the daemon listening at socket.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConnsPerHost: 16,
	}
	return &Client{http: &http.Client{Transport: tr}}
}

// APIError is an error answer of the daemon.
type APIError struct {
	Status int
	Body   ErrorBody
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s (%d %s)", e.Body.Error.Message, e.Status, e.Body.Error.Code)
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, out any) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://cordon"+path, body)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		e := &APIError{Status: resp.StatusCode}
		if err := json.NewDecoder(resp.Body).Decode(&e.Body); err != nil {
			e.Body.Error = ErrorDetail{Code: "failed", Message: resp.Status}
		}
		return nil, e
	}
	if out != nil {
		defer resp.Body.Close()
		return resp, json.NewDecoder(resp.Body).Decode(out)
	}
	return resp, nil
}

func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

// Create opens a session.
func (c *Client) Create(ctx context.Context, r CreateRequest) (string, error) {
	var out CreateResponse
	_, err := c.do(ctx, http.MethodPost, "/v1/sessions", jsonBody(r), &out)
	return out.ID, err
}

// List returns the caller's sessions.
func (c *Client) List(ctx context.Context) ([]SessionInfo, error) {
	var out []SessionInfo
	_, err := c.do(ctx, http.MethodGet, "/v1/sessions", nil, &out)
	return out, err
}

// Remove closes a session.
func (c *Client) Remove(ctx context.Context, id string) error {
	resp, err := c.do(ctx, http.MethodDelete, "/v1/sessions/"+url.PathEscape(id), nil, nil)
	if err == nil {
		resp.Body.Close()
	}
	return err
}

// Exec runs a command and returns the result object as raw JSON (the
// same object as `cordon run --json`).
func (c *Client) Exec(ctx context.Context, id string, r ExecRequest) (json.RawMessage, error) {
	var out json.RawMessage
	_, err := c.do(ctx, http.MethodPost, "/v1/sessions/"+url.PathEscape(id)+"/exec", jsonBody(r), &out)
	return out, err
}

// ExecStream runs a command, calling frame for each output frame, and
// returns the final result frame's object (a result, or an error body).
func (c *Client) ExecStream(ctx context.Context, id string, r ExecRequest, frame func(OutputFrame)) (json.RawMessage, error) {
	resp, err := c.do(ctx, http.MethodPost, "/v1/sessions/"+url.PathEscape(id)+"/exec?stream=1", jsonBody(r), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var f OutputFrame
		if err := dec.Decode(&f); err != nil {
			return nil, fmt.Errorf("reading the stream: %w", err)
		}
		if f.Result != nil {
			return f.Result, nil
		}
		frame(f)
	}
}

// Events follows the event stream of one session (or, with id "", of all
// the caller's sessions) until ctx ends or the stream does.
func (c *Client) Events(ctx context.Context, id string, fn func(*events.Event)) error {
	path := "/v1/events"
	if id != "" {
		path = "/v1/sessions/" + url.PathEscape(id) + "/events"
	}
	resp, err := c.do(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var e events.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			return fmt.Errorf("decoding an event: %w", err)
		}
		fn(&e)
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

// ReadFile returns a file of the session's workspace.
func (c *Client) ReadFile(ctx context.Context, id, path string) ([]byte, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/sessions/"+url.PathEscape(id)+"/files/"+escapePath(path), nil, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// WriteFile creates or replaces a file of the session's workspace.
func (c *Client) WriteFile(ctx context.Context, id, path string, data []byte) error {
	resp, err := c.do(ctx, http.MethodPut, "/v1/sessions/"+url.PathEscape(id)+"/files/"+escapePath(path), bytes.NewReader(data), nil)
	if err == nil {
		resp.Body.Close()
	}
	return err
}

// AllowHosts widens a session's egress allowlist and returns the whole
// list after the change.
func (c *Client) AllowHosts(ctx context.Context, id string, hosts ...string) ([]string, error) {
	var out NetworkAllowResponse
	_, err := c.do(ctx, http.MethodPost, "/v1/sessions/"+url.PathEscape(id)+"/network/allow", jsonBody(NetworkAllowRequest{Hosts: hosts}), &out)
	return out.Allow, err
}

// RequestGrant asks for a capability for a session.
func (c *Client) RequestGrant(ctx context.Context, session string, r GrantRequest) (*Grant, error) {
	var out Grant
	_, err := c.do(ctx, http.MethodPost, "/v1/sessions/"+url.PathEscape(session)+"/grants", jsonBody(r), &out)
	return &out, err
}

// Grant returns a grant; with wait > 0 it first waits up to wait (at
// most MaxWait) for the grant to leave pending.
func (c *Client) Grant(ctx context.Context, id string, wait time.Duration) (*Grant, error) {
	path := "/v1/grants/" + url.PathEscape(id)
	if wait > 0 {
		path += "?wait=" + url.QueryEscape(wait.String())
	}
	var out Grant
	_, err := c.do(ctx, http.MethodGet, path, nil, &out)
	return &out, err
}

// Grants lists the grants the caller may see, of one session and in one
// state when those are not "".
func (c *Client) Grants(ctx context.Context, session, state string) ([]*Grant, error) {
	q := url.Values{}
	if session != "" {
		q.Set("session", session)
	}
	if state != "" {
		q.Set("state", state)
	}
	path := "/v1/grants"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out []*Grant
	_, err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// Decide approves, denies or revokes a grant ("approve", "deny",
// "revoke"), with an optional note.
func (c *Client) Decide(ctx context.Context, id, verb, note string) (*Grant, error) {
	var out Grant
	_, err := c.do(ctx, http.MethodPost, "/v1/grants/"+url.PathEscape(id)+"/"+url.PathEscape(verb), jsonBody(DecisionRequest{Note: note}), &out)
	return &out, err
}

// CloseIdleConnections closes the kept-alive connections.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}
