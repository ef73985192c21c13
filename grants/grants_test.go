package grants_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cordon-sandbox/cordon/audit"
	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/grants"
	"github.com/cordon-sandbox/cordon/policy"
)

const policyText = `version: 1
capabilities:
  auto:
    - net.connect:proxy.golang.org
    - limit.timeout
  ask:
    - net.connect
    - fs.write
    - proc.ptrace
    - limit.*
  never:
    - fs.*:/home/*/.ssh/**
    - net.connect:evil.example
`

// clock is a fake clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	b      *grants.Broker
	log    *audit.Log
	clock  *clock
	pol    *policy.Policy
	hash   string
	mu     sync.Mutex
	events []*events.Event
}

func setup(t *testing.T) *fixture {
	t.Helper()
	pol, err := policy.Parse([]byte(policyText), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := pol.Validate(); err != nil {
		t.Fatal(err)
	}
	log, err := audit.Open(filepath.Join(t.TempDir(), "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	f := &fixture{log: log, pol: pol, hash: grants.PolicyHash([]byte(policyText)),
		clock: &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}}
	f.b = grants.NewBroker(log, f.clock.now)
	f.b.Subscribe(events.SinkFunc(func(e *events.Event) {
		f.mu.Lock()
		f.events = append(f.events, e)
		f.mu.Unlock()
	}))
	return f
}

func (f *fixture) request(t *testing.T, capability string, scope grants.Scope, ttl time.Duration) *grants.Grant {
	t.Helper()
	g, err := f.b.Request(f.pol, f.hash, grants.Request{
		Session: "s1", Capability: capability, Reason: "the build needs it",
		Scope: scope, TTL: ttl, Call: "c1", UID: 1000,
	})
	if err != nil {
		t.Fatalf("Request(%s): %v", capability, err)
	}
	return g
}

// steps returns the audit log as "kind decision decided_by call" lines,
// after checking that the log verifies.
func (f *fixture) steps(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(f.log.Path())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify(bytes.NewReader(data)); err != nil {
		t.Fatalf("the audit log does not verify: %v", err)
	}
	if testing.Verbose() {
		t.Logf("audit log:\n%s", data) // docs/grants.md shows one
	}
	var out []string
	for line := range bytes.Lines(data) {
		var r audit.Record
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatal(err)
		}
		if r.PolicyHash != f.hash || r.Session == "" || r.Grant == "" || r.Capability == "" || r.Reason == "" {
			t.Errorf("record misses the grant's fields: %s", line)
		}
		out = append(out, strings.Join(strings.Fields(fmt.Sprintf("%s %s %s %s", r.Kind, r.Decision, r.DecidedBy, r.Call)), " "))
	}
	return out
}

func (f *fixture) eventKinds() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, e := range f.events {
		out = append(out, fmt.Sprintf("%s %s", e.Kind, e.Detail["state"]))
	}
	return out
}

func wantSteps(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("audit steps:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestAuto(t *testing.T) {
	f := setup(t)
	g := f.request(t, "net.connect:Proxy.Golang.org", grants.ScopeSession, 0)
	if g.State != grants.StateGranted || g.Decision != "auto" || g.DecidedBy != "policy:capabilities.auto[0]" {
		t.Errorf("grant %+v", g)
	}
	if g.Capability != "net.connect:proxy.golang.org" {
		t.Errorf("capability recorded as %q, want the host in lowercase", g.Capability)
	}
	if p := g.Parts(); p != (policy.Capability{Layer: "net", Verb: "connect", Target: "proxy.golang.org"}) {
		t.Errorf("Parts = %+v", p)
	}
	if a := f.b.Active("s1"); len(a) != 1 || a[0].ID != g.ID {
		t.Errorf("Active = %+v", a)
	}
	if a := f.b.Active("s2"); len(a) != 0 {
		t.Errorf("another session sees the grant: %+v", a)
	}
	wantSteps(t, f.steps(t),
		"grant.request uid:1000 c1",
		"grant.decision auto policy:capabilities.auto[0] c1")
	if k := f.eventKinds(); !reflect.DeepEqual(k, []string{"grant.request pending", "grant.decision granted"}) {
		t.Errorf("events %q", k)
	}
	f.mu.Lock()
	e := f.events[1]
	f.mu.Unlock()
	if e.Session != "s1" || e.Call != "c1" || e.Op != "grant" || e.Target != g.Capability || e.Rule != "capabilities.auto[0]" || e.Detail["grant"] != g.ID {
		t.Errorf("decision event %+v", e)
	}
}

func TestNever(t *testing.T) {
	f := setup(t)
	g := f.request(t, "fs.read:/home/ann/.ssh/id_ed25519", grants.ScopeSession, 0)
	if g.State != grants.StateDenied || g.Decision != "never" || g.DecidedBy != "policy:capabilities.never[0]" {
		t.Errorf("grant %+v", g)
	}
	// No pattern matches fs.read at all: refused, by no rule.
	g2 := f.request(t, "fs.read:/opt/data", grants.ScopeSession, 0)
	if g2.State != grants.StateDenied || g2.Decision != "never" || g2.DecidedBy != "policy" || g2.Note != "no pattern matches" {
		t.Errorf("unmatched grant %+v", g2)
	}
	if a := f.b.Active("s1"); len(a) != 0 {
		t.Errorf("Active = %+v", a)
	}
	if _, err := f.b.Approve(g.ID, 0, ""); !errors.Is(err, grants.ErrState) {
		t.Errorf("Approve of a denied grant: %v, want ErrState", err)
	}
	wantSteps(t, f.steps(t),
		"grant.request uid:1000 c1",
		"grant.decision never policy:capabilities.never[0] c1",
		"grant.request uid:1000 c1",
		"grant.decision never policy c1")
}

func TestDefaultPolicy(t *testing.T) {
	f := setup(t)
	f.pol = policy.Default()
	if g := f.request(t, "fs.write:/home/ann/.ssh/authorized_keys", grants.ScopeSession, 0); g.State != grants.StateDenied {
		t.Errorf("a write to ~/.ssh is %s under the default policy", g.State)
	}
	if g := f.request(t, "fs.write:/var/lib/cordon/audit.jsonl", grants.ScopeSession, 0); g.State != grants.StateDenied {
		t.Errorf("a write to the daemon's audit log is %s under the default policy", g.State)
	}
	if g := f.request(t, "fs.read:/home/ann", grants.ScopeSession, 0); g.State != grants.StateDenied {
		t.Errorf("a read of a home directory, ~/.ssh included, is %s under the default policy", g.State)
	}
	if g := f.request(t, "fs.read:/home/ann/src", grants.ScopeSession, 0); g.State != grants.StatePending {
		t.Errorf("control: a read of a project directory is %s under the default policy, want pending", g.State)
	}
	if g := f.request(t, "net.connect:github.com", grants.ScopeSession, 0); g.State != grants.StatePending {
		t.Errorf("control: net.connect is %s under the default policy, want pending", g.State)
	}
}

// TestAskApprove runs in a synctest bubble so that Approve comes while
// Wait is blocked.
func TestAskApprove(t *testing.T) { synctest.Test(t, testAskApprove) }

func testAskApprove(t *testing.T) {
	f := setup(t)
	g := f.request(t, "net.connect:github.com:443", grants.ScopeSession, 0)
	if g.State != grants.StatePending || g.Decision != "ask" || g.DecidedBy != "policy:capabilities.ask[0]" {
		t.Fatalf("grant %+v", g)
	}
	if a := f.b.Active("s1"); len(a) != 0 {
		t.Errorf("a pending grant is active: %+v", a)
	}
	done := make(chan *grants.Grant)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		w, err := f.b.Wait(ctx, g.ID)
		if err != nil {
			t.Error(err)
		}
		done <- w
	}()
	synctest.Wait()
	f.clock.advance(time.Minute)
	a, err := f.b.Approve(g.ID, 1000, "fine for today")
	if err != nil {
		t.Fatal(err)
	}
	w := <-done
	for _, got := range []*grants.Grant{a, w} {
		if got.State != grants.StateGranted || got.Decision != "approved" || got.DecidedBy != "uid:1000" || got.Note != "fine for today" || !got.Decided.Equal(f.clock.now()) {
			t.Errorf("after Approve: %+v", got)
		}
	}
	if _, err := f.b.Approve(g.ID, 1000, ""); !errors.Is(err, grants.ErrState) {
		t.Errorf("second Approve: %v, want ErrState", err)
	}
	if _, err := f.b.Deny(g.ID, 1000, ""); !errors.Is(err, grants.ErrState) {
		t.Errorf("Deny after Approve: %v, want ErrState", err)
	}
	if _, err := f.b.Approve("nosuch", 1000, ""); !errors.Is(err, grants.ErrNotFound) {
		t.Errorf("Approve of an unknown grant: %v, want ErrNotFound", err)
	}
	if a := f.b.Active("s1"); len(a) != 1 {
		t.Errorf("Active = %+v", a)
	}
	wantSteps(t, f.steps(t),
		"grant.request uid:1000 c1",
		"grant.decision ask policy:capabilities.ask[0] c1",
		"grant.decision approved uid:1000")
	if k := f.eventKinds(); !reflect.DeepEqual(k, []string{"grant.request pending", "grant.decision granted"}) {
		t.Errorf("events %q", k)
	}
}

func TestWaitTimeout(t *testing.T) {
	f := setup(t)
	g := f.request(t, "proc.ptrace", grants.ScopeSession, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	w, err := f.b.Wait(ctx, g.ID)
	if err != nil || w.State != grants.StatePending {
		t.Errorf("Wait after its context ended = %+v, %v; want the grant, pending", w, err)
	}
	if _, err := f.b.Wait(context.Background(), "nosuch"); !errors.Is(err, grants.ErrNotFound) {
		t.Errorf("Wait for an unknown grant: %v", err)
	}
}

func TestDeny(t *testing.T) {
	f := setup(t)
	g := f.request(t, "proc.ptrace", grants.ScopeSession, 0)
	d, err := f.b.Deny(g.ID, 1000, "use printf")
	if err != nil || d.State != grants.StateDenied || d.Decision != "denied" {
		t.Fatalf("Deny = %+v, %v", d, err)
	}
	w, err := f.b.Wait(context.Background(), g.ID) // returns at once
	if err != nil || w.State != grants.StateDenied {
		t.Errorf("Wait = %+v, %v", w, err)
	}
	if _, err := f.b.Revoke(g.ID, 1000, ""); !errors.Is(err, grants.ErrState) {
		t.Errorf("Revoke of a denied grant: %v", err)
	}
	if err := f.b.Use(g.ID, "c2"); !errors.Is(err, grants.ErrState) {
		t.Errorf("Use of a denied grant: %v", err)
	}
	wantSteps(t, f.steps(t),
		"grant.request uid:1000 c1",
		"grant.decision ask policy:capabilities.ask[2] c1",
		"grant.decision denied uid:1000")
}

func TestRevoke(t *testing.T) {
	f := setup(t)
	g := f.request(t, "limit.timeout:20m", grants.ScopeSession, 0)
	if err := f.b.Use(g.ID, "c2"); err != nil {
		t.Fatalf("control: Use before Revoke: %v", err)
	}
	r, err := f.b.Revoke(g.ID, 0, "enough")
	if err != nil || r.State != grants.StateRevoked || r.EndedBy != "uid:0" {
		t.Fatalf("Revoke = %+v, %v", r, err)
	}
	if a := f.b.Active("s1"); len(a) != 0 {
		t.Errorf("Active after Revoke = %+v", a)
	}
	if err := f.b.Use(g.ID, "c3"); !errors.Is(err, grants.ErrState) {
		t.Errorf("Use after Revoke: %v", err)
	}
	if _, err := f.b.Revoke(g.ID, 0, ""); !errors.Is(err, grants.ErrState) {
		t.Errorf("second Revoke: %v", err)
	}
	wantSteps(t, f.steps(t),
		"grant.request uid:1000 c1",
		"grant.decision auto policy:capabilities.auto[1] c1",
		"grant.use c2",
		"grant.revoke uid:0")
	if k := f.eventKinds(); !reflect.DeepEqual(k, []string{"grant.request pending", "grant.decision granted", "grant.revoke revoked"}) {
		t.Errorf("events %q", k)
	}
}

func TestTTLExpiry(t *testing.T) {
	f := setup(t)
	g := f.request(t, "net.connect:github.com", grants.ScopeTTL, time.Hour)
	f.clock.advance(5 * time.Minute) // the TTL runs from the decision
	a, err := f.b.Approve(g.ID, 1000, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := f.clock.now().Add(time.Hour); !a.Expires.Equal(want) {
		t.Errorf("Expires = %v, want %v", a.Expires, want)
	}
	f.clock.advance(time.Hour - time.Second)
	if act := f.b.Active("s1"); len(act) != 1 {
		t.Fatalf("control: Active a second before expiry = %+v", act)
	}
	f.clock.advance(time.Second)
	if act := f.b.Active("s1"); len(act) != 0 {
		t.Errorf("Active at expiry = %+v", act)
	}
	f.b.Active("s1") // no second record
	if got, _ := f.b.Get(g.ID); got.State != grants.StateExpired || got.EndedBy != "ttl" {
		t.Errorf("after expiry: %+v", got)
	}
	if err := f.b.Use(g.ID, "c2"); !errors.Is(err, grants.ErrState) {
		t.Errorf("Use after expiry: %v", err)
	}
	wantSteps(t, f.steps(t),
		"grant.request uid:1000 c1",
		"grant.decision ask policy:capabilities.ask[0] c1",
		"grant.decision approved uid:1000",
		"grant.expire ttl")
}

// TestTTLExpiresOnGet: expiry does not wait for Active.
func TestTTLExpiresOnGet(t *testing.T) {
	f := setup(t)
	g := f.request(t, "limit.timeout:1h", grants.ScopeTTL, time.Minute)
	f.clock.advance(time.Minute)
	if got, _ := f.b.Get(g.ID); got.State != grants.StateExpired {
		t.Errorf("Get after the TTL: %s", got.State)
	}
}

func TestCallScope(t *testing.T) {
	f := setup(t)
	g := f.request(t, "limit.timeout:20m", grants.ScopeCall, 0)
	if err := f.b.Use(g.ID, "c2"); err != nil {
		t.Fatal(err)
	}
	if err := f.b.Use(g.ID, "c2"); err != nil {
		t.Errorf("second Use by the same call: %v", err)
	}
	if err := f.b.Use(g.ID, "c3"); !errors.Is(err, grants.ErrState) {
		t.Errorf("Use by another call: %v, want ErrState", err)
	}
	f.b.EndCall("s1", "c3") // not the call that used it
	if act := f.b.Active("s1"); len(act) != 1 {
		t.Fatalf("control: Active during call c2 = %+v", act)
	}
	f.b.EndCall("s1", "c2")
	if act := f.b.Active("s1"); len(act) != 0 {
		t.Errorf("Active after call c2 ended = %+v", act)
	}
	if got, _ := f.b.Get(g.ID); got.State != grants.StateUsed || got.UsedBy != "c2" || got.EndedBy != "call" {
		t.Errorf("after EndCall: %+v", got)
	}

	// A session-scoped grant outlives calls and is recorded in use once.
	s := f.request(t, "net.connect:proxy.golang.org", grants.ScopeSession, 0)
	for _, call := range []string{"c4", "c5"} {
		if err := f.b.Use(s.ID, call); err != nil {
			t.Fatal(err)
		}
		f.b.EndCall("s1", call)
	}
	if got, _ := f.b.Get(s.ID); got.State != grants.StateGranted || got.UsedBy != "c4" {
		t.Errorf("session grant after two calls: %+v", got)
	}
	wantSteps(t, f.steps(t),
		"grant.request uid:1000 c1",
		"grant.decision auto policy:capabilities.auto[1] c1",
		"grant.use c2",
		"grant.expire call c2",
		"grant.request uid:1000 c1",
		"grant.decision auto policy:capabilities.auto[0] c1",
		"grant.use c4")
}

func TestEndSession(t *testing.T) { synctest.Test(t, testEndSession) }

func testEndSession(t *testing.T) {
	f := setup(t)
	pending := f.request(t, "proc.ptrace", grants.ScopeSession, 0)
	granted := f.request(t, "limit.timeout:1h", grants.ScopeSession, 0)
	other, err := f.b.Request(f.pol, f.hash, grants.Request{Session: "s2", Capability: "limit.timeout:1h", Reason: "r", Scope: grants.ScopeSession, UID: 1001})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan *grants.Grant)
	go func() {
		w, _ := f.b.Wait(context.Background(), pending.ID)
		done <- w
	}()
	synctest.Wait() // Wait is blocked
	f.b.EndSession("s1")
	if w := <-done; w.State != grants.StateExpired || w.EndedBy != "session" {
		t.Errorf("Wait on a pending grant when its session ended: %+v", w)
	}
	for _, id := range []string{pending.ID, granted.ID} {
		if g, ok := f.b.Get(id); ok {
			t.Errorf("grant of an ended session still kept: %+v", g)
		}
	}
	if act := f.b.Active("s2"); len(act) != 1 || act[0].ID != other.ID {
		t.Errorf("control: the other session's grants = %+v", act)
	}
	steps := f.steps(t)
	wantSteps(t, steps[len(steps)-2:], "grant.expire session", "grant.expire session")
}

// TestAuditFailure: nothing is granted without its record; narrowing steps
// happen anyway.
func TestAuditFailure(t *testing.T) {
	f := setup(t)
	pending := f.request(t, "proc.ptrace", grants.ScopeSession, 0)
	pending2 := f.request(t, "proc.ptrace", grants.ScopeSession, 0)
	granted := f.request(t, "limit.timeout:1h", grants.ScopeSession, 0)
	before := len(f.steps(t))
	f.log.Close()

	if g, err := f.b.Request(f.pol, f.hash, grants.Request{Session: "s1", Capability: "limit.timeout:2h", Reason: "r", Scope: grants.ScopeSession}); err == nil {
		t.Errorf("Request with a failed log = %+v", g)
	}
	if _, err := f.b.Approve(pending.ID, 1000, ""); err == nil {
		t.Error("Approve with a failed log succeeded")
	}
	if g, _ := f.b.Get(pending.ID); g.State != grants.StatePending {
		t.Errorf("after a failed Approve the grant is %s", g.State)
	}
	if err := f.b.Use(granted.ID, "c2"); err == nil {
		t.Error("Use with a failed log succeeded")
	}
	if _, err := f.b.Deny(pending2.ID, 1000, ""); err == nil {
		t.Error("Deny with a failed log reported no error")
	}
	if _, err := f.b.Revoke(granted.ID, 1000, ""); err == nil {
		t.Error("Revoke with a failed log reported no error")
	}
	act := f.b.Active("s1")
	if len(act) != 0 {
		t.Errorf("Active with a failed log = %+v", act)
	}
	for id, want := range map[string]grants.State{pending2.ID: grants.StateDenied, granted.ID: grants.StateRevoked} {
		if g, _ := f.b.Get(id); g.State != want {
			t.Errorf("narrowing step with a failed log: %s, want %s", g.State, want)
		}
	}
	if n := len(f.steps(t)); n != before {
		t.Errorf("%d records after the log failed", n-before)
	}
	if l := f.b.List(nil); len(l) != 3 {
		t.Errorf("List = %d grants, want the 3 from before the failure", len(l))
	}
}

func TestRequestInvalid(t *testing.T) {
	f := setup(t)
	good := grants.Request{Session: "s1", Capability: "net.connect:github.com", Reason: "go get", Scope: grants.ScopeTTL, TTL: time.Minute, Call: "c1", UID: 1000}
	if _, err := f.b.Request(f.pol, f.hash, good); err != nil {
		t.Fatalf("control: %v", err)
	}
	before := len(f.steps(t))
	cases := map[string]func(r *grants.Request){
		"empty reason":       func(r *grants.Request) { r.Reason = "" },
		"escape in reason":   func(r *grants.Request) { r.Reason = "ok\x1b[2J" },
		"newline in reason":  func(r *grants.Request) { r.Reason = "ok\napproved by root" },
		"bidi in reason":     func(r *grants.Request) { r.Reason = "ok\u202e" },
		"invalid UTF-8":      func(r *grants.Request) { r.Reason = "\xff" },
		"long reason":        func(r *grants.Request) { r.Reason = strings.Repeat("a", grants.MaxReason+1) },
		"ttl without TTL":    func(r *grants.Request) { r.TTL = 0 },
		"negative TTL":       func(r *grants.Request) { r.TTL = -time.Second },
		"fractional TTL":     func(r *grants.Request) { r.TTL = 1500 * time.Millisecond },
		"TTL too long":       func(r *grants.Request) { r.TTL = grants.MaxTTL + time.Second },
		"TTL on session":     func(r *grants.Request) { r.Scope = grants.ScopeSession },
		"TTL on call":        func(r *grants.Request) { r.Scope = grants.ScopeCall },
		"unknown scope":      func(r *grants.Request) { r.Scope = "forever" },
		"unknown capability": func(r *grants.Request) { r.Capability = "proc.kill" },
		"host missing":       func(r *grants.Request) { r.Capability = "net.connect" },
		"host pattern":       func(r *grants.Request) { r.Capability = "net.connect:*.github.com" },
		"relative path":      func(r *grants.Request) { r.Capability = "fs.read:etc/passwd" },
		"unclean path":       func(r *grants.Request) { r.Capability = "fs.read:/opt/../root" },
		"empty session":      func(r *grants.Request) { r.Session = "" },
		"session with slash": func(r *grants.Request) { r.Session = "../s" },
		"long session":       func(r *grants.Request) { r.Session = strings.Repeat("s", grants.MaxID+1) },
		"call with space":    func(r *grants.Request) { r.Call = "c 1" },
		"negative uid":       func(r *grants.Request) { r.UID = -1 },
		"long capability":    func(r *grants.Request) { r.Capability = "fs.read:/" + strings.Repeat("a", 5000) },
	}
	for name, change := range cases {
		r := good
		change(&r)
		if g, err := f.b.Request(f.pol, f.hash, r); !errors.Is(err, grants.ErrInvalid) {
			t.Errorf("%s: Request = %+v, %v; want ErrInvalid", name, g, err)
		}
	}
	if _, err := f.b.Request(f.pol, "abc", good); !errors.Is(err, grants.ErrInvalid) {
		t.Errorf("bad policy hash: %v", err)
	}
	if _, err := f.b.Request(nil, f.hash, good); !errors.Is(err, grants.ErrInvalid) {
		t.Errorf("no policy: %v", err)
	}
	badPol, err := policy.Parse([]byte("version: 1\ncapabilities: {auto: [\"fs.read:relative\"]}\n"), "bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if g, err := f.b.Request(badPol, f.hash, good); err == nil {
		t.Errorf("a policy with an invalid pattern decided: %+v", g)
	}
	if _, err := f.b.Approve("x", 1000, "line\nbreak"); !errors.Is(err, grants.ErrInvalid) {
		t.Errorf("note with a newline: %v", err)
	}
	if n := len(f.steps(t)); n != before {
		t.Errorf("invalid requests wrote %d audit records", n-before)
	}
}

func TestTooManyPending(t *testing.T) {
	f := setup(t)
	for range grants.MaxPending {
		f.request(t, "proc.ptrace", grants.ScopeSession, 0)
	}
	r := grants.Request{Session: "s1", Capability: "proc.ptrace", Reason: "again", Scope: grants.ScopeSession}
	if _, err := f.b.Request(f.pol, f.hash, r); !errors.Is(err, grants.ErrTooMany) {
		t.Errorf("request past MaxPending: %v, want ErrTooMany", err)
	}
	r.Capability = "limit.timeout:1h" // auto: not held back
	if g, err := f.b.Request(f.pol, f.hash, r); err != nil || g.State != grants.StateGranted {
		t.Errorf("control: an auto request = %+v, %v", g, err)
	}
	r.Session, r.Capability = "s2", "proc.ptrace" // another session
	if _, err := f.b.Request(f.pol, f.hash, r); err != nil {
		t.Errorf("control: another session's request: %v", err)
	}
}

func TestSubscribeDetach(t *testing.T) {
	f := setup(t)
	n := 0
	detach := f.b.Subscribe(events.SinkFunc(func(*events.Event) { n++ }))
	f.request(t, "proc.ptrace", grants.ScopeSession, 0)
	detach()
	f.request(t, "proc.ptrace", grants.ScopeSession, 0)
	if n != 1 {
		t.Errorf("sink saw %d events, want 1 before detaching", n)
	}
}

func TestPolicyHash(t *testing.T) {
	sum := sha256.Sum256([]byte(policyText))
	if h := grants.PolicyHash([]byte(policyText)); h != hex.EncodeToString(sum[:]) {
		t.Errorf("PolicyHash = %s", h)
	}
}

func TestConcurrentRequests(t *testing.T) {
	f := setup(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 10 {
				g, err := f.b.Request(f.pol, f.hash, grants.Request{Session: fmt.Sprintf("s%d", i), Capability: "limit.timeout:1h", Reason: "r", Scope: grants.ScopeCall})
				if err != nil {
					t.Error(err)
					return
				}
				if err := f.b.Use(g.ID, "c1"); err != nil {
					t.Error(err)
				}
				f.b.EndCall(g.Session, "c1")
			}
		})
	}
	wg.Wait()
	if n := len(f.steps(t)); n != 8*10*4 {
		t.Errorf("%d audit records, want %d", n, 8*10*4)
	}
}
