package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cordon-sandbox/cordon/audit"
	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/grants"
	"github.com/cordon-sandbox/cordon/policy"
)

// The grant tests reach a web server on the host's loopback through the
// session's egress proxy under names that the daemon's test resolver
// points at 127.0.0.1; the session's policy lists no host, admits
// loopback addresses (network.allow_private), and decides capability
// requests by name:
//
//	auto:  net.connect:auto.test, net.connect:call.test, net.connect:ttl.test
//	ask:   net.connect, limit.memory, proc.ptrace
//	never: net.connect:never.test, fs.*
func grantPolicy(t testing.TB, edit func(*policy.Policy)) string {
	t.Helper()
	p := policy.Default()
	p.Network.Allow = nil
	p.Network.AllowPrivate = []string{"127.0.0.1"}
	p.Capabilities = policy.Capabilities{
		Auto:  []string{"net.connect:auto.test", "net.connect:call.test", "net.connect:ttl.test"},
		Ask:   []string{"net.connect", "limit.memory", "proc.ptrace"},
		Never: []string{"net.connect:never.test", "fs.*"},
	}
	if edit != nil {
		edit(p)
	}
	text, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return string(text)
}

func loopbackResolve(_ context.Context, host string) ([]netip.Addr, error) {
	if strings.HasSuffix(host, ".test") {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// grantLab is a daemon whose sessions reach a loopback web server by
// name, and a session on it.
type grantLab struct {
	*testDaemon
	port   string
	id     string // the session
	policy string // its policy text
}

func startGrantLab(t testing.TB, edit func(*policy.Policy)) *grantLab {
	t.Helper()
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s\n", strings.Split(r.Host, ":")[0])
	}))
	t.Cleanup(web.Close)
	_, port, _ := net.SplitHostPort(web.Listener.Addr().String())
	lab := &grantLab{testDaemon: startDaemon(t, Options{Resolve: loopbackResolve}), port: port, policy: grantPolicy(t, edit)}
	lab.id = lab.session(t)
	return lab
}

// session opens another session under the lab's policy.
func (lab *grantLab) session(t testing.TB) string {
	t.Helper()
	id, err := lab.c.Create(context.Background(), CreateRequest{Workspace: workspace(t), Policy: lab.policy})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// execResult is the part of an exec answer the tests read.
type execResult struct {
	Call     string          `json:"call"`
	ExitCode int             `json:"exit_code"`
	Signal   *string         `json:"signal"`
	Stdout   string          `json:"stdout"`
	Stderr   string          `json:"stderr"`
	Denials  []*events.Event `json:"denials"`
	raw      string
}

func run(t *testing.T, c *Client, id, command string) execResult {
	t.Helper()
	raw, err := c.Exec(context.Background(), id, ExecRequest{Command: command})
	if err != nil {
		t.Fatalf("exec %q: %v", command, err)
	}
	var r execResult
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	r.raw = string(raw)
	return r
}

// fetch reports whether session id reaches host through the proxy; a
// refusal must be the proxy's, naming the capability that would allow
// it.
func (lab *grantLab) fetch(t *testing.T, id, host string) bool {
	t.Helper()
	r := run(t, lab.c, id, "curl -sS -m 20 http://"+host+":"+lab.port+"/")
	if r.Stdout == "hello "+host+"\n" {
		return true
	}
	if !strings.Contains(r.Stdout, "net.connect:"+host) {
		t.Fatalf("curl %s: neither the page nor the proxy's refusal: %s", host, r.raw)
	}
	return false
}

func (lab *grantLab) request(t *testing.T, id string, r GrantRequest) *Grant {
	t.Helper()
	g, err := lab.c.RequestGrant(context.Background(), id, r)
	if err != nil {
		t.Fatalf("request %+v: %v", r, err)
	}
	return g
}

func (lab *grantLab) decide(t *testing.T, id, verb, note string) *Grant {
	t.Helper()
	g, err := lab.c.Decide(context.Background(), id, verb, note)
	if err != nil {
		t.Fatalf("%s %s: %v", verb, id, err)
	}
	return g
}

func (lab *grantLab) get(t *testing.T, id string) *Grant {
	t.Helper()
	g, err := lab.c.Grant(context.Background(), id, 0)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return g
}

func status(err error) int {
	if ae, ok := errors.AsType[*APIError](err); ok {
		return ae.Status
	}
	return 0
}

// auditRecords reads the audit log, by grant.
func auditRecords(t *testing.T, path string) (all []audit.Record, byGrant map[string][]audit.Record) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	byGrant = map[string][]audit.Record{}
	for line := range strings.SplitSeq(strings.TrimSuffix(string(b), "\n"), "\n") {
		var r audit.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		all = append(all, r)
		byGrant[r.Grant] = append(byGrant[r.Grant], r)
	}
	return all, byGrant
}

// steps renders a grant's records as "kind/decision/decided_by" words.
func steps(rs []audit.Record) string {
	var out []string
	for _, r := range rs {
		s := string(r.Kind)
		if r.Decision != "" {
			s += "/" + r.Decision
		}
		if r.DecidedBy != "" {
			s += "/" + r.DecidedBy
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

// TestGrantFlow walks every network grant flow through the API on one
// session, each widening next to the refusal before it, and then reads
// the audit log and the session's event stream for every step.
func TestGrantFlow(t *testing.T) {
	lab := startGrantLab(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var evMu sync.Mutex
	var evs []*events.Event
	go lab.c.Events(ctx, lab.id, func(e *events.Event) {
		evMu.Lock()
		evs = append(evs, e)
		evMu.Unlock()
	})
	time.Sleep(200 * time.Millisecond) // subscribed before the first request
	uid := "uid:" + strconv.Itoa(os.Geteuid())
	ids := map[string]string{}

	t.Run("never", func(t *testing.T) {
		g := lab.request(t, lab.id, GrantRequest{Capability: "net.connect:never.test", Reason: "fetch fixtures", Scope: "session"})
		if g.State != "denied" || g.Decision != "never" || g.DecidedBy != "policy:capabilities.never[0]" || g.Session != lab.id {
			t.Errorf("a never capability: %+v", g)
		}
		ids["never"] = g.ID
		if lab.fetch(t, lab.id, "never.test") {
			t.Error("never.test reached after a refused request")
		}
	})

	t.Run("auto, then revoked", func(t *testing.T) {
		if lab.fetch(t, lab.id, "auto.test") {
			t.Fatal("auto.test reached before any grant")
		}
		g := lab.request(t, lab.id, GrantRequest{Capability: "net.connect:AUTO.test", Reason: "fetch fixtures", Scope: "session"})
		if g.State != "granted" || g.Decision != "auto" || g.DecidedBy != "policy:capabilities.auto[0]" || g.Capability != "net.connect:auto.test" {
			t.Fatalf("an auto capability: %+v", g)
		}
		ids["auto"] = g.ID
		if !lab.fetch(t, lab.id, "auto.test") {
			t.Fatal("auto.test not reached under an auto grant")
		}
		if !lab.fetch(t, lab.id, "auto.test") {
			t.Fatal("a session grant lasted one call")
		}
		if g := lab.get(t, g.ID); g.UsedBy == "" || g.State != "granted" {
			t.Errorf("after two calls: %+v", g)
		}
		g = lab.decide(t, g.ID, "revoke", "done with it")
		if g.State != "revoked" || g.EndedBy != uid {
			t.Errorf("revoked: %+v", g)
		}
		if lab.fetch(t, lab.id, "auto.test") {
			t.Error("auto.test still reached after the grant was revoked")
		}
		if _, err := lab.c.Decide(context.Background(), g.ID, "revoke", ""); status(err) != http.StatusConflict {
			t.Errorf("revoking twice: %v", err)
		}
	})

	t.Run("ask, approved through the API", func(t *testing.T) {
		g := lab.request(t, lab.id, GrantRequest{Capability: "net.connect:ask.test", Reason: "fetch fixtures", Scope: "session"})
		if g.State != "pending" || g.Decision != "ask" || g.DecidedBy != "policy:capabilities.ask[0]" {
			t.Fatalf("an ask capability: %+v", g)
		}
		ids["ask"] = g.ID
		if lab.fetch(t, lab.id, "ask.test") {
			t.Fatal("ask.test reached while the request waits")
		}
		t0 := time.Now()
		if w, err := lab.c.Grant(context.Background(), g.ID, 300*time.Millisecond); err != nil || w.State != "pending" || time.Since(t0) < 300*time.Millisecond {
			t.Errorf("a short wait: %+v %v after %v", w, err, time.Since(t0))
		}
		pending, err := lab.c.Grants(context.Background(), "", "pending")
		if err != nil || len(pending) != 1 || pending[0].ID != g.ID || pending[0].Reason != "fetch fixtures" {
			t.Errorf("pending list: %+v %v", pending, err)
		}
		waited := make(chan *Grant, 1)
		go func() {
			w, err := lab.c.Grant(context.Background(), g.ID, time.Minute)
			if err != nil {
				t.Errorf("waiting: %v", err)
			}
			waited <- w
		}()
		time.Sleep(200 * time.Millisecond)
		a := lab.decide(t, g.ID, "approve", "for this task")
		if a.State != "granted" || a.Decision != "approved" || a.DecidedBy != uid || a.Note != "for this task" {
			t.Errorf("approved: %+v", a)
		}
		select {
		case w := <-waited:
			if w == nil || w.State != "granted" {
				t.Errorf("the waiter saw %+v", w)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the waiter did not return after the approval")
		}
		if !lab.fetch(t, lab.id, "ask.test") {
			t.Error("ask.test not reached after the approval")
		}
		if _, err := lab.c.Decide(context.Background(), g.ID, "deny", ""); status(err) != http.StatusConflict {
			t.Errorf("denying an approved grant: %v", err)
		}
	})

	t.Run("ask, denied stays denied", func(t *testing.T) {
		g := lab.request(t, lab.id, GrantRequest{Capability: "net.connect:deny.test", Reason: "fetch fixtures", Scope: "session"})
		ids["deny"] = g.ID
		d := lab.decide(t, g.ID, "deny", "not today")
		if d.State != "denied" || d.Decision != "denied" || d.DecidedBy != uid {
			t.Errorf("denied: %+v", d)
		}
		if _, err := lab.c.Decide(context.Background(), g.ID, "approve", ""); status(err) != http.StatusConflict {
			t.Errorf("approving a denied request: %v", err)
		}
		if lab.fetch(t, lab.id, "deny.test") {
			t.Error("deny.test reached after the request was denied")
		}
		if g := lab.get(t, g.ID); g.State != "denied" {
			t.Errorf("later: %+v", g)
		}
	})

	t.Run("call scope", func(t *testing.T) {
		g := lab.request(t, lab.id, GrantRequest{Capability: "net.connect:call.test", Reason: "one fetch", Scope: "call"})
		ids["call"] = g.ID
		if !lab.fetch(t, lab.id, "call.test") {
			t.Fatal("call.test not reached by the call after a call grant")
		}
		if g := lab.get(t, g.ID); g.State != "used" || g.EndedBy != "call" || g.UsedBy == "" {
			t.Errorf("after its call: %+v", g)
		}
		if lab.fetch(t, lab.id, "call.test") {
			t.Error("a call grant served a second call")
		}
	})

	t.Run("ttl", func(t *testing.T) {
		g := lab.request(t, lab.id, GrantRequest{Capability: "net.connect:ttl.test", Reason: "a quick fetch", Scope: "ttl", TTLSeconds: 2})
		ids["ttl"] = g.ID
		if g.State != "granted" || g.Expires == nil || g.TTLSeconds != 2 {
			t.Fatalf("a ttl grant: %+v", g)
		}
		if !lab.fetch(t, lab.id, "ttl.test") {
			t.Fatal("ttl.test not reached within the ttl")
		}
		time.Sleep(time.Until(*g.Expires) + 300*time.Millisecond)
		// The daemon expired it on time, without a call to look at it.
		_, byGrant := auditRecords(t, lab.auditPath)
		if got := steps(byGrant[g.ID]); !strings.HasSuffix(got, "grant.expire/ttl") {
			t.Errorf("no expiry in the audit log after the ttl passed: %s", got)
		}
		if lab.fetch(t, lab.id, "ttl.test") {
			t.Error("ttl.test still reached after the ttl")
		}
		if g := lab.get(t, g.ID); g.State != "expired" || g.EndedBy != "ttl" {
			t.Errorf("after the ttl: %+v", g)
		}
	})

	// Every step is in the audit log, under the session's policy.
	all, byGrant := auditRecords(t, lab.auditPath)
	want := map[string]string{
		"never": "grant.request/" + uid + " grant.decision/never/policy:capabilities.never[0]",
		"auto":  "grant.request/" + uid + " grant.decision/auto/policy:capabilities.auto[0] grant.use grant.revoke/" + uid,
		"ask":   "grant.request/" + uid + " grant.decision/ask/policy:capabilities.ask[0] grant.decision/approved/" + uid + " grant.use",
		"deny":  "grant.request/" + uid + " grant.decision/ask/policy:capabilities.ask[0] grant.decision/denied/" + uid,
		"call":  "grant.request/" + uid + " grant.decision/auto/policy:capabilities.auto[1] grant.use grant.expire/call",
		"ttl":   "grant.request/" + uid + " grant.decision/auto/policy:capabilities.auto[2] grant.use grant.expire/ttl",
	}
	for name, w := range want {
		if got := steps(byGrant[ids[name]]); got != w {
			t.Errorf("audit of the %s grant:\n got %s\nwant %s", name, got, w)
		}
	}
	hash := grants.PolicyHash([]byte(lab.policy))
	for _, r := range all {
		if r.PolicyHash != hash || r.Session != lab.id || r.Reason == "" {
			t.Errorf("audit record %+v: want policy_hash %s, session %s, a reason", r, hash, lab.id)
		}
		if r.Kind == audit.GrantUse && !strings.HasPrefix(r.Call, "c") {
			t.Errorf("a use without its call: %+v", r)
		}
	}
	if rs := byGrant[ids["auto"]]; len(rs) == 4 && rs[3].Note != "done with it" {
		t.Errorf("the revocation's note: %+v", rs[3])
	}
	f, _ := os.Open(lab.auditPath)
	head, err := audit.Check(f, "")
	f.Close()
	if err != nil || head.Seq != uint64(len(all)) {
		t.Errorf("the audit log does not verify: %v (head %+v, %d records)", err, head, len(all))
	}

	// The session's event stream carries its grant events.
	time.Sleep(200 * time.Millisecond)
	evMu.Lock()
	defer evMu.Unlock()
	var grantEvents []string
	for _, e := range evs {
		if strings.HasPrefix(string(e.Kind), "grant.") {
			grantEvents = append(grantEvents, string(e.Kind)+":"+e.Detail["grant"].(string))
		}
	}
	for _, w := range []string{"grant.request:" + ids["never"], "grant.decision:" + ids["never"], "grant.decision:" + ids["ask"],
		"grant.revoke:" + ids["auto"], "grant.decision:" + ids["deny"]} {
		if !slices.Contains(grantEvents, w) {
			t.Errorf("event stream lacks %s: %v", w, grantEvents)
		}
	}
}

// TestGrantErrors checks the answers to requests the broker refuses,
// each next to one it takes.
func TestGrantErrors(t *testing.T) {
	lab := startGrantLab(t, nil)
	path := "/v1/sessions/" + lab.id + "/grants"
	cases := []struct {
		body   string
		status int
		code   string
	}{
		{`{"capability":"net.connect:x.test","reason":"r","scope":"session"}`, 201, ""}, // control
		{`{"capability":"net.connect:x.test","reason":"r","scope":"session","x":1}`, 400, "invalid"},
		{`{"capability":"net.bind:x.test","reason":"r","scope":"session"}`, 400, "invalid"},
		{`{"capability":"net.connect:x.test","reason":"","scope":"session"}`, 400, "invalid"},
		{`{"capability":"net.connect:x.test","reason":"a\u001b[2Jb","scope":"session"}`, 400, "invalid"},
		{`{"capability":"net.connect:x.test","reason":"r"}`, 400, "invalid"},
		{`{"capability":"net.connect:x.test","reason":"r","scope":"session","ttl_s":5}`, 400, "invalid"},
		{`{"capability":"net.connect:x.test","reason":"r","scope":"ttl"}`, 400, "invalid"},
		{`{"capability":"net.connect:x.test","reason":"r","scope":"ttl","ttl_s":86401}`, 400, "invalid"},
		{`{"capability":"net.connect:x.test","reason":"r","scope":"ttl","ttl_s":9223372037}`, 400, "invalid"},
		{`{"capability":"net.connect:x.test","reason":"r","scope":"ttl","ttl_s":86400}`, 201, ""}, // control
	}
	for _, c := range cases {
		code, body := raw(t, lab.c, "POST", path, c.body)
		var eb ErrorBody
		json.Unmarshal([]byte(body), &eb)
		if code != c.status || eb.Error.Code != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.body, code, body, c.status, c.code)
		}
	}
	for _, c := range []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/v1/sessions/nope/grants", `{"capability":"proc.ptrace","reason":"r","scope":"call"}`, 404},
		{"GET", "/v1/grants/nope", "", 404},
		{"POST", "/v1/grants/nope/approve", "", 404},
		{"GET", "/v1/grants?state=weird", "", 400},
		{"GET", "/v1/grants?state=pending", "", 200},
	} {
		if code, body := raw(t, lab.c, c.method, c.path, c.body); code != c.status {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, code, body, c.status)
		}
	}
	g := lab.request(t, lab.id, GrantRequest{Capability: "proc.ptrace", Reason: "debug", Scope: "session"})
	for _, c := range []struct {
		path, body string
		status     int
	}{
		{"/v1/grants/" + g.ID + "?wait=forever", "", 400},
		{"/v1/grants/" + g.ID + "?wait=11m", "", 400},
		{"/v1/grants/" + g.ID + "/approve", `{"note":"a\nb"}`, 400},
		{"/v1/grants/" + g.ID + "/approve", `{"nope":1}`, 400},
		{"/v1/grants/" + g.ID + "/revoke", "", 409},
	} {
		method := "POST"
		if !strings.Contains(c.path, "/approve") && !strings.Contains(c.path, "/revoke") {
			method = "GET"
		}
		if code, body := raw(t, lab.c, method, c.path, c.body); code != c.status {
			t.Errorf("%s %s %s: %d %s, want %d", method, c.path, c.body, code, body, c.status)
		}
	}
	// 16 requests may wait in one session; the 17th is refused, and
	// another session is not held back by them.
	full := lab.session(t)
	for i := 0; i < grants.MaxPending; i++ {
		lab.request(t, full, GrantRequest{Capability: "proc.ptrace", Reason: "debug " + strconv.Itoa(i), Scope: "session"})
	}
	if _, err := lab.c.RequestGrant(context.Background(), full, GrantRequest{Capability: "proc.ptrace", Reason: "one more", Scope: "session"}); status(err) != http.StatusTooManyRequests {
		t.Errorf("request past the pending limit: %v", err)
	}
	if g := lab.request(t, lab.id, GrantRequest{Capability: "proc.ptrace", Reason: "debug", Scope: "session"}); g.State != "pending" {
		t.Errorf("control: another session's request: %+v", g)
	}
	// Ending the session ends its requests; they are gone from the API.
	if err := lab.c.Remove(context.Background(), lab.id); err != nil {
		t.Fatal(err)
	}
	if _, err := lab.c.Grant(context.Background(), g.ID, 0); status(err) != http.StatusNotFound {
		t.Errorf("a grant of a removed session: %v", err)
	}
	_, byGrant := auditRecords(t, lab.auditPath)
	if got := steps(byGrant[g.ID]); !strings.HasSuffix(got, "grant.expire/session") {
		t.Errorf("a pending request of a removed session: %s", got)
	}
}

// TestGrantAuditLazy: a daemon given an audit log's path opens it at the
// first grant request, not before, and a second daemon on the same log
// fails its requests, saying why, rather than fork the chain.
func TestGrantAuditLazy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "audit.jsonl")
	d1, d2 := startDaemon(t, Options{AuditPath: path}), startDaemon(t, Options{AuditPath: path})
	id1, err := d1.c.Create(context.Background(), CreateRequest{Workspace: workspace(t)})
	if err != nil {
		t.Fatal(err)
	}
	id2, err := d2.c.Create(context.Background(), CreateRequest{Workspace: workspace(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the audit log exists before any grant request: %v", err)
	}
	req := GrantRequest{Capability: "proc.ptrace", Reason: "debug", Scope: "session"}
	if g, err := d1.c.RequestGrant(context.Background(), id1, req); err != nil || g.State != "pending" {
		t.Fatalf("the first daemon's request: %+v %v", g, err)
	}
	_, err = d2.c.RequestGrant(context.Background(), id2, req)
	if status(err) != http.StatusInternalServerError || !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), "--audit") {
		t.Errorf("the second daemon's request on a log in use: %v", err)
	}
	if all, _ := auditRecords(t, path); len(all) != 2 {
		t.Errorf("audit log: %+v", all)
	}
}

// TestGrantIsolation: one session's grants are invisible to another
// session of the same owner, and do not widen it.
func TestGrantIsolation(t *testing.T) {
	lab := startGrantLab(t, nil)
	a, b := lab.id, lab.session(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var bEvents []string
	go lab.c.Events(ctx, b, func(e *events.Event) {
		raw, _ := json.Marshal(e)
		mu.Lock()
		bEvents = append(bEvents, string(raw))
		mu.Unlock()
	})
	time.Sleep(200 * time.Millisecond)
	granted := lab.request(t, a, GrantRequest{Capability: "net.connect:auto.test", Reason: "session a only", Scope: "session"})
	pending := lab.request(t, a, GrantRequest{Capability: "net.connect:secret-a.test", Reason: "session a only", Scope: "session"})
	if !lab.fetch(t, a, "auto.test") {
		t.Fatal("control: session a does not reach its granted host")
	}
	if lab.fetch(t, b, "auto.test") {
		t.Error("session b reaches the host granted to session a")
	}
	rb := run(t, lab.c, b, "env; cat /proc/self/status | head -3")
	bGrants, err := lab.c.Grants(ctx, b, "")
	if err != nil || len(bGrants) != 0 {
		t.Errorf("session b's grants: %+v %v", bGrants, err)
	}
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(bEvents) == 0 {
		t.Fatal("control: no events on session b's stream")
	}
	for _, text := range append(bEvents, rb.raw) {
		for _, leak := range []string{a, granted.ID, pending.ID, "secret-a", "session a only"} {
			if strings.Contains(text, leak) {
				t.Errorf("session b sees %q: %s", leak, text)
			}
		}
	}
}

// TestGrantLimitMemory: a limit.memory grant raises what a call may
// allocate (cgroup when the daemon is root, rlimits otherwise).
func TestGrantLimitMemory(t *testing.T) {
	lab := startGrantLab(t, func(p *policy.Policy) { p.Limits.Memory = 256 << 20 })
	const alloc = `python3 -c "b = b'x' * (600 << 20); print('allocated', len(b) >> 20)"`
	if r := run(t, lab.c, lab.id, alloc); strings.Contains(r.Stdout, "allocated") {
		t.Fatalf("600MiB allocated under a 256MiB limit: %s", r.raw)
	}
	if r := run(t, lab.c, lab.id, `python3 -c "b = b'x' * (64 << 20); print('allocated', len(b) >> 20)"`); r.Stdout != "allocated 64\n" {
		t.Fatalf("control: 64MiB under a 256MiB limit: %s", r.raw)
	}
	g := lab.request(t, lab.id, GrantRequest{Capability: "limit.memory:1GiB", Reason: "a big test fixture", Scope: "session"})
	lab.decide(t, g.ID, "approve", "")
	if r := run(t, lab.c, lab.id, alloc); r.Stdout != "allocated 600\n" {
		t.Errorf("600MiB after limit.memory:1GiB: %s (grant now %+v)", r.raw, lab.get(t, g.ID))
	}
	lab.decide(t, g.ID, "revoke", "")
	if r := run(t, lab.c, lab.id, alloc); strings.Contains(r.Stdout, "allocated") {
		t.Errorf("600MiB allocated after the grant was revoked: %s", r.raw)
	}
}

// TestGrantUnapplicable: a grant the session cannot apply (the sandbox
// answers unsupported: fs grants in a live session) is revoked, saying
// why, and the session's other grants still apply.
func TestGrantUnapplicable(t *testing.T) {
	lab := startGrantLab(t, func(p *policy.Policy) {
		p.Capabilities.Auto = append(p.Capabilities.Auto, "fs.read")
		p.Capabilities.Never = []string{"net.connect:never.test"}
	})
	net := lab.request(t, lab.id, GrantRequest{Capability: "net.connect:auto.test", Reason: "fixtures", Scope: "session"})
	fs := lab.request(t, lab.id, GrantRequest{Capability: "fs.read:/srv/data", Reason: "fixtures", Scope: "session"})
	if net.State != "granted" || fs.State != "granted" {
		t.Fatalf("auto grants: %+v %+v", net, fs)
	}
	if !lab.fetch(t, lab.id, "auto.test") {
		t.Error("the applicable grant does not apply beside one that cannot")
	}
	if g := lab.get(t, fs.ID); g.State != "revoked" || g.EndedBy != "uid:"+strconv.Itoa(os.Geteuid()) {
		t.Errorf("the grant the session cannot apply: %+v", g)
	}
	if g := lab.get(t, net.ID); g.State != "granted" || g.UsedBy == "" {
		t.Errorf("the grant it can: %+v", g)
	}
	_, byGrant := auditRecords(t, lab.auditPath)
	rs := byGrant[fs.ID]
	if len(rs) != 3 || rs[2].Kind != audit.GrantRevoke || !strings.Contains(rs[2].Note, "cannot apply") {
		t.Errorf("audit of the grant the session cannot apply: %+v", rs)
	}
}

// ptraceProbe attaches to a child of its own with ptrace(2).
const ptraceProbe = `python3 -c '
import ctypes, os, signal, time
libc = ctypes.CDLL(None, use_errno=True)
pid = os.fork()
if pid == 0:
    time.sleep(30)
    os._exit(0)
r = libc.ptrace(16, pid, 0, 0)  # PTRACE_ATTACH
err = ctypes.get_errno()
os.kill(pid, signal.SIGKILL)
os.waitpid(pid, 0)
print("attached" if r == 0 else "refused: " + os.strerror(err))
'`

// TestGrantPtrace: proc.ptrace lets a tool trace its own children.
func TestGrantPtrace(t *testing.T) {
	lab := startGrantLab(t, nil)
	r := run(t, lab.c, lab.id, ptraceProbe)
	if !strings.HasPrefix(r.Stdout, "refused") || !strings.Contains(r.raw, `"capability":"proc.ptrace"`) {
		t.Fatalf("ptrace without a grant: %s", r.raw)
	}
	g := lab.request(t, lab.id, GrantRequest{Capability: "proc.ptrace", Reason: "debug a test", Scope: "session"})
	lab.decide(t, g.ID, "approve", "")
	if r := run(t, lab.c, lab.id, ptraceProbe); r.Stdout != "attached\n" {
		t.Errorf("ptrace after proc.ptrace was granted: %s (grant now %+v)", r.raw, lab.get(t, g.ID))
	}
	lab.decide(t, g.ID, "revoke", "")
	if r := run(t, lab.c, lab.id, ptraceProbe); !strings.HasPrefix(r.Stdout, "refused") {
		t.Errorf("ptrace after the grant was revoked: %s", r.raw)
	}
}

// TestDecisionPidNamespace: the daemon takes decisions only from its own
// pid namespace, which no session's process is in.
func TestDecisionPidNamespace(t *testing.T) {
	lab := startGrantLab(t, nil)
	if !samePidNamespace(os.Getpid()) {
		t.Fatal("control: this process is not in its own pid namespace")
	}
	sleeper := exec.Command("sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleeper.Process.Kill(); sleeper.Wait() }()
	if !samePidNamespace(sleeper.Process.Pid) {
		t.Error("control: a child in the same pid namespace is refused")
	}
	// The session's PID 1 is this process's child, in the session's pid
	// namespace.
	pids := supervisors()
	if len(pids) != 1 {
		t.Fatalf("found %d session supervisors, want 1", len(pids))
	}
	if samePidNamespace(pids[0]) {
		t.Errorf("a session's process (pid %d) counts as the daemon's pid namespace", pids[0])
	}
	if samePidNamespace(0) || samePidNamespace(-1) {
		t.Error("an unknown peer pid counts as the daemon's pid namespace")
	}
	_ = lab
}

// TestGrantsOtherUID: another uid sees nothing of a session's grants.
func TestGrantsOtherUID(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to connect as another uid")
	}
	lab := startGrantLab(t, nil)
	os.Chmod(lab.socket, 0o666) // let uid 65534 connect, for this test only
	g := lab.request(t, lab.id, GrantRequest{Capability: "net.connect:ask.test", Reason: "fetch", Scope: "session"})
	as := func(uid uint32, url string, post ...string) string { return asUID(t, lab.socket, uid, url, post...) }
	for _, c := range []struct{ url, post string }{
		{"/v1/grants/" + g.ID, ""},
		{"/v1/grants/" + g.ID + "?wait=1s", ""},
		{"/v1/grants/" + g.ID + "/approve", "{}"},
		{"/v1/grants/" + g.ID + "/deny", "{}"},
		{"/v1/sessions/" + lab.id + "/grants", `{"capability":"proc.ptrace","reason":"r","scope":"call"}`},
	} {
		var post []string
		if c.post != "" {
			post = []string{c.post}
		}
		got := as(65534, c.url, post...)
		if !strings.HasPrefix(got, "404 ") || strings.Contains(got, "ask.test") {
			t.Errorf("uid 65534 %s: %q", c.url, got)
		}
	}
	for _, q := range []string{"", "?state=pending", "?session=" + lab.id} {
		if got := as(65534, "/v1/grants"+q); strings.TrimSpace(got) != "200 []" {
			t.Errorf("uid 65534 lists %s: %q", q, got)
		}
	}
	if got := lab.get(t, g.ID); got.State != "pending" {
		t.Errorf("the request after uid 65534's attempts: %+v", got)
	}
	if got := as(0, "/v1/grants?state=pending"); !strings.Contains(got, g.ID) {
		t.Errorf("control: root lists %q", got)
	}
}

// TestGrantEventsFile: grant events reach every sink of the daemon's
// bus, as `cordon serve --events` writes them.
func TestGrantEventsFile(t *testing.T) {
	lab := startGrantLab(t, nil)
	var buf bytes.Buffer
	var mu sync.Mutex
	detach := lab.bus.Attach(events.SinkFunc(func(e *events.Event) {
		b, _ := json.Marshal(e)
		mu.Lock()
		buf.Write(append(b, '\n'))
		mu.Unlock()
	}))
	defer detach()
	g := lab.request(t, lab.id, GrantRequest{Capability: "net.connect:never.test", Reason: "r", Scope: "call"})
	mu.Lock()
	defer mu.Unlock()
	var kinds []string
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var e events.Event
		json.Unmarshal(sc.Bytes(), &e)
		if e.Detail["grant"] == g.ID {
			kinds = append(kinds, string(e.Kind))
		}
	}
	if strings.Join(kinds, " ") != "grant.request grant.decision" {
		t.Errorf("grant events on the bus: %v", kinds)
	}
}

// TestGrantLongPoll: a wait longer than the daemon's read timeout is not
// cut short by it.
func TestGrantLongPoll(t *testing.T) {
	defer func(d time.Duration) { readTimeout = d }(readTimeout)
	readTimeout = 500 * time.Millisecond
	lab := startGrantLab(t, nil)
	g := lab.request(t, lab.id, GrantRequest{Capability: "proc.ptrace", Reason: "debug", Scope: "session"})
	t0 := time.Now()
	w, err := lab.c.Grant(context.Background(), g.ID, 2*time.Second)
	if err != nil || w.State != "pending" || time.Since(t0) < 2*time.Second {
		t.Errorf("a 2s wait past a 0.5s read timeout: %+v %v after %v", w, err, time.Since(t0))
	}
}

// FuzzGrantRequest posts arbitrary bodies to the grant endpoint of a live
// session: the daemon answers 201, 400 or 429, never anything else, and
// what it grants is a well-formed capability with a scope and TTL the
// broker accepts.
func FuzzGrantRequest(f *testing.F) {
	for _, seed := range []string{
		`{"capability":"net.connect:x.test","reason":"r","scope":"session"}`,
		`{"capability":"net.connect:X.TEST:443","reason":"r","scope":"ttl","ttl_s":60}`,
		`{"capability":"limit.memory:8GiB","reason":"r","scope":"call"}`,
		`{"capability":"proc.ptrace","reason":"r","scope":"ttl","ttl_s":9223372036854775807}`,
		`{"capability":"fs.read:/root","reason":"r","scope":"call"}`,
		`{"capability":"net.connect:\u212a.test","reason":"r","scope":"call"}`,
		`{"capability":"limit.pids:0","reason":"\u202e","scope":"call"}`,
		`{"capability":"","reason":"","scope":""}`,
		`[]`, `null`, `{"ttl_s":-1}`,
	} {
		f.Add(seed)
	}
	lab := startGrantLab(f, func(p *policy.Policy) {
		p.Capabilities.Auto = []string{"net.connect", "limit.*", "proc.ptrace"}
		p.Capabilities.Ask = []string{"fs.read"}
	})
	path := "/v1/sessions/" + lab.id + "/grants"
	f.Fuzz(func(t *testing.T, body string) {
		code, answer := raw(t, lab.c, "POST", path, body)
		switch code {
		case http.StatusBadRequest, http.StatusTooManyRequests:
			return
		case http.StatusCreated:
		default:
			t.Fatalf("%q: %d %s", body, code, answer)
		}
		var g Grant
		if err := json.Unmarshal([]byte(answer), &g); err != nil {
			t.Fatalf("%q: %s: %v", body, answer, err)
		}
		if name, err := grants.CheckCapability(g.Capability); err != nil || name != g.Capability {
			t.Errorf("%q: granted capability %q: %v", body, g.Capability, err)
		}
		if !slices.Contains([]string{"call", "session", "ttl"}, g.Scope) || (g.Scope == "ttl") != (g.TTLSeconds > 0) ||
			g.TTLSeconds > int64(grants.MaxTTL/time.Second) || !slices.Contains([]string{"granted", "denied", "pending"}, g.State) {
			t.Errorf("%q: %+v", body, g)
		}
	})
}

// TestGrantFSWrite is issue 5's filesystem flow through the daemon: a
// write outside the workspace is refused with a deny event and an
// explanation naming fs.write:PATH; after an auto grant of that capability
// the same write lands on the host in the next call; after revocation it
// is refused again. Root-started sessions only (a rootless session cannot
// take filesystem grants: TestGrantUnapplicable's path).
func TestGrantFSWrite(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("filesystem grants need a root-started session")
	}
	// A host directory the view shows read-only: /opt is in the default
	// policy's filesystem.read.
	dir, err := os.MkdirTemp("/opt", "cordon-grant-test-")
	if err != nil {
		t.Skipf("no writable /opt for the fixture: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	capability := "fs.write:" + dir
	lab := startGrantLab(t, func(p *policy.Policy) {
		p.Capabilities.Auto = append(p.Capabilities.Auto, "fs.write:/opt/cordon-grant-test-*", "fs.write:/opt/cordon-grant-test-*/**")
		p.Capabilities.Never = []string{"fs.*:/root/**"}
	})
	write := "echo granted > " + dir + "/out && cat " + dir + "/out"

	r := run(t, lab.c, lab.id, write)
	var d *events.Event
	for _, e := range r.Denials {
		if e.Kind == events.Deny && e.Target == dir+"/out" && e.Remedy != nil && e.Remedy.Capability == capability+"/out" {
			d = e
		}
	}
	if r.ExitCode == 0 || d == nil || !strings.Contains(r.raw, `"explanation":"`) || !strings.Contains(r.raw, "request capability fs.write:"+dir+"/out") {
		t.Fatalf("the write before any grant: exit %d, denials %+v\n%s", r.ExitCode, r.Denials, r.raw)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
		t.Fatal("the refused write landed on the host")
	}

	g := lab.request(t, lab.id, GrantRequest{Capability: capability, Reason: "write build output", Scope: "session"})
	if g.State != "granted" {
		t.Fatalf("auto grant: %+v", g)
	}
	if r := run(t, lab.c, lab.id, write); r.ExitCode != 0 || r.Stdout != "granted\n" {
		t.Errorf("the write under the grant: exit %d %q %q", r.ExitCode, r.Stdout, r.Stderr)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "out")); err != nil || string(b) != "granted\n" {
		t.Errorf("on the host after the granted write: %q %v", b, err)
	}

	if _, err := lab.c.Decide(context.Background(), g.ID, "revoke", "done"); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "out"))
	if r := run(t, lab.c, lab.id, write); r.ExitCode == 0 {
		t.Errorf("the write after revocation succeeded: %q", r.Stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
		t.Error("the write after revocation landed on the host")
	}
	_, byGrant := auditRecords(t, lab.auditPath)
	var kinds []string
	for _, rec := range byGrant[g.ID] {
		kinds = append(kinds, string(rec.Kind))
	}
	if strings.Join(kinds, " ") != "grant.request grant.decision grant.use grant.revoke" {
		t.Errorf("audit records of the grant: %v", kinds)
	}
}
