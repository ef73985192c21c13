package mcpserver

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/cordon-sandbox/cordon/daemon"
)

// fakeGrants decides by capability: *.auto granted, *.never denied,
// anything else pending until decide; cmd/cordon's tests drive the real
// daemon.
type fakeGrants struct {
	mu       sync.Mutex
	grants   map[string]*daemon.Grant
	decided  map[string]chan struct{}
	requests int
}

func newFakeGrants() *fakeGrants {
	return &fakeGrants{grants: map[string]*daemon.Grant{}, decided: map[string]chan struct{}{}}
}

func (f *fakeGrants) RequestGrant(ctx context.Context, session string, r daemon.GrantRequest) (*daemon.Grant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !strings.Contains(r.Capability, ".") {
		return nil, &daemon.APIError{Status: http.StatusBadRequest, Body: daemon.ErrorBody{Error: daemon.ErrorDetail{Code: "invalid", Message: "unknown capability " + r.Capability}}}
	}
	f.requests++
	g := &daemon.Grant{ID: "g" + string(rune('0'+f.requests)), Session: session, Capability: r.Capability, Scope: r.Scope,
		TTLSeconds: r.TTLSeconds, State: "pending", Decision: "ask", DecidedBy: "policy:capabilities.ask[0]"}
	switch {
	case strings.HasSuffix(r.Capability, ".auto"):
		g.State, g.Decision, g.DecidedBy = "granted", "auto", "policy:capabilities.auto[0]"
	case strings.HasSuffix(r.Capability, ".never"):
		g.State, g.Decision, g.DecidedBy = "denied", "never", "policy:capabilities.never[1]"
	}
	f.grants[g.ID] = g
	f.decided[g.ID] = make(chan struct{})
	c := *g
	return &c, nil
}

func (f *fakeGrants) decide(id, state, note string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.grants[id]
	g.State, g.Decision, g.DecidedBy, g.Note = state, map[string]string{"granted": "approved", "denied": "denied"}[state], "uid:1000", note
	close(f.decided[id])
}

func (f *fakeGrants) WaitGrant(ctx context.Context, session, id string) (*daemon.Grant, error) {
	f.mu.Lock()
	ch := f.decided[id]
	f.mu.Unlock()
	if ch == nil {
		return nil, errors.New("no such grant")
	}
	select {
	case <-ch:
	case <-ctx.Done():
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := *f.grants[id]
	return &c, nil
}

func (f *fakeGrants) SessionGrants(session, state string) []*daemon.Grant {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*daemon.Grant
	for _, g := range f.grants {
		if g.Session == session && (state == "" || g.State == state) {
			c := *g
			out = append(out, &c)
		}
	}
	return out
}

func TestRequestCapability(t *testing.T) {
	fg := newFakeGrants()
	cs := connect(t, New(&fakeSession{}, Options{Grants: fg, GrantSocket: "/run/x/grants.sock"}))

	r := mustCall(t, cs, "request_capability", map[string]any{"capability": "net.auto", "reason": "fixtures", "scope": "session"})
	if r.isError || !strings.HasPrefix(r.text, "Granted: net.auto, by the session's policy (rule capabilities.auto[0])") || r.structured["state"] != "granted" {
		t.Errorf("auto: %+v", r)
	}
	r = mustCall(t, cs, "request_capability", map[string]any{"capability": "net.never", "reason": "fixtures", "scope": "call"})
	if r.isError || !strings.HasPrefix(r.text, "Denied: net.never") || !strings.Contains(r.text, "Change the approach") {
		t.Errorf("never: %+v", r)
	}
	// Pending: the answer says exactly how a person approves.
	t0 := time.Now()
	r = mustCall(t, cs, "request_capability", map[string]any{"capability": "proc.ptrace", "reason": "debug", "scope": "session", "wait_s": 0.2})
	if time.Since(t0) < 200*time.Millisecond || r.structured["state"] != "pending" ||
		!strings.Contains(r.text, "cordon grant approve g3 --socket /run/x/grants.sock") || r.structured["approve"] != "cordon grant approve g3 --socket /run/x/grants.sock" {
		t.Errorf("pending: %+v after %v", r, time.Since(t0))
	}
	// Asking again waits for the same request, which a person approves
	// meanwhile.
	go func() { time.Sleep(200 * time.Millisecond); fg.decide("g3", "granted", "ok for today") }()
	r = mustCall(t, cs, "request_capability", map[string]any{"capability": "proc.ptrace", "reason": "debug", "scope": "session"})
	if r.structured["id"] != "g3" || r.structured["state"] != "granted" || !strings.Contains(r.text, "by a person (uid:1000)") ||
		!strings.Contains(r.text, "ok for today") || !strings.Contains(r.text, "already waiting") || fg.requests != 3 {
		t.Errorf("asking again: %+v (%d requests)", r, fg.requests)
	}
	// A person's refusal.
	go func() { time.Sleep(100 * time.Millisecond); fg.decide("g4", "denied", "") }()
	r = mustCall(t, cs, "request_capability", map[string]any{"capability": "limit.memory:8GiB", "reason": "big build", "scope": "ttl", "ttl_s": 60})
	if r.structured["state"] != "denied" || !strings.Contains(r.text, "Do not ask again") {
		t.Errorf("denied by a person: %+v", r)
	}
	// Arguments that cannot be a request are protocol errors.
	for _, args := range []map[string]any{
		{"capability": "nonsense", "reason": "r", "scope": "call"},
		{"capability": "proc.ptrace", "reason": "r", "scope": "forever"},
		{"capability": "proc.ptrace", "reason": "", "scope": "call"},
		{"capability": "proc.ptrace", "reason": "r", "scope": "ttl"},
		{"capability": "proc.ptrace", "reason": "r", "scope": "call", "ttl_s": 5},
		{"capability": "proc.ptrace", "reason": "r", "scope": "call", "wait_s": 601},
		{"capability": "proc.ptrace", "reason": "r"},
	} {
		_, err := call(t, cs, "request_capability", args)
		var je *jsonrpc.Error
		if !errors.As(err, &je) || je.Code != jsonrpc.CodeInvalidParams {
			t.Errorf("%v: %v, want invalid params", args, err)
		}
	}

	// Without Grants the tool is not offered.
	tools, err := connect(t, New(&fakeSession{}, Options{})).ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range tools.Tools {
		if tool.Name == "request_capability" {
			t.Error("request_capability offered without Grants")
		}
	}
}
