package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/cordon-sandbox/cordon/policy"
)

// grantPolicyFile writes a policy for the grant tests: the default one,
// deciding capabilities so that each flow has its case, and returns its
// path and the hex SHA-256 of its text.
//
//	auto:  limit.timeout
//	ask:   proc.ptrace, net.connect
//	never: net.connect:never.test, fs.*
func grantPolicyFile(t *testing.T) (path, hash string) {
	t.Helper()
	p := policy.Default()
	p.Capabilities = policy.Capabilities{
		Auto:  []string{"limit.timeout"},
		Ask:   []string{"proc.ptrace", "net.connect"},
		Never: []string{"net.connect:never.test", "fs.*"},
	}
	text, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, text, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(text)
	return path, hex.EncodeToString(sum[:])
}

// ptraceProbe attaches to a child of its own with ptrace(2).
const ptraceProbe = `import ctypes, os, signal, time
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
`

type cliGrant struct {
	ID, State, Capability, Decision string
	DecidedBy                       string `json:"decided_by"`
	Note                            string
}

// waitPending polls `cordon grant list --state pending` until a request
// for capability shows up, and returns it.
func waitPending(t *testing.T, capability string, socket ...string) cliGrant {
	t.Helper()
	args := append([]string{"grant", "list", "--state", "pending", "--json"}, socket...)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		o := cordon(t, "", "", args...)
		var gs []cliGrant
		if o.code != 0 || json.Unmarshal([]byte(o.stdout), &gs) != nil {
			t.Fatalf("grant list: %+v", o)
		}
		for _, g := range gs {
			if g.Capability == capability {
				return g
			}
		}
	}
	t.Fatalf("no pending request for %s", capability)
	return cliGrant{}
}

// TestGrantCLI drives grants through `cordon serve` with the CLI: a
// request that waits until a person approves it with `cordon grant
// approve`, a denied one that stays denied, a never one refused at once,
// a revocation, each checked by what the session can do; then the audit
// log, which `cordon audit verify` accepts and rejects once tampered with.
func TestGrantCLI(t *testing.T) {
	policyFile, policyHash := grantPolicyFile(t)
	socket, auditLog := startServe(t, "--policy", policyFile)
	os.Setenv("CORDON_SOCKET", socket)
	defer os.Unsetenv("CORDON_SOCKET")
	ws := workspace(t)
	os.WriteFile(filepath.Join(ws, "probe.py"), []byte(ptraceProbe), 0o644)
	o := cordon(t, ws, "", "session", "create", "--workspace", ws)
	id := strings.TrimSpace(o.stdout)
	if o.code != 0 || id == "" {
		t.Fatalf("session create: %+v", o)
	}
	probe := func() string {
		t.Helper()
		return strings.TrimSpace(cordon(t, ws, "", "exec", "--session", id, "--", "python3", "probe.py").stdout)
	}
	if got := probe(); !strings.HasPrefix(got, "refused") {
		t.Fatalf("ptrace before any grant: %q", got)
	}

	// ask: `grant request --wait` waits while a person approves it.
	req := exec.Command(os.Args[0], "grant", "request", "--session", id, "proc.ptrace", "--reason", "debug a flaky test", "--scope", "session", "--wait", "60s")
	req.Env = append(os.Environ(), "CORDON_TEST_MAIN=1")
	var reqOut, reqErr bytes.Buffer
	req.Stdout, req.Stderr = &reqOut, &reqErr
	if err := req.Start(); err != nil {
		t.Fatal(err)
	}
	pending := waitPending(t, "proc.ptrace")
	if o := cordon(t, ws, "", "grant", "list"); !strings.Contains(o.stdout, pending.ID) || !strings.Contains(o.stdout, `"debug a flaky test"`) {
		t.Errorf("grant list: %+v", o)
	}
	if got := probe(); !strings.HasPrefix(got, "refused") {
		t.Errorf("ptrace while the request waits: %q", got)
	}
	o = cordon(t, ws, "", "grant", "approve", pending.ID, "--note", "until the test is fixed")
	if o.code != 0 || !strings.Contains(o.stdout, "granted") || !strings.Contains(o.stdout, "until the test is fixed") {
		t.Errorf("grant approve: %+v", o)
	}
	if err := req.Wait(); err != nil || !strings.Contains(reqOut.String(), pending.ID) || !strings.Contains(reqOut.String(), "granted") {
		t.Errorf("grant request --wait after the approval: %v %q %q", err, reqOut.String(), reqErr.String())
	}
	if got := probe(); got != "attached" {
		t.Errorf("ptrace after the approval: %q", got)
	}

	// A denied request stays denied.
	o = cordon(t, ws, "", "grant", "request", "--session", id, "net.connect:example.org", "--reason", "fetch", "--json")
	var denied cliGrant
	if o.code != exitGrantPending || json.Unmarshal([]byte(o.stdout), &denied) != nil || denied.State != "pending" ||
		!strings.Contains(o.stderr, "cordon grant approve "+denied.ID+" --socket "+socket) {
		t.Fatalf("grant request without --wait: %+v", o)
	}
	if o := cordon(t, ws, "", "grant", "deny", denied.ID, "--note", "not needed"); o.code != 0 || !strings.Contains(o.stdout, "denied") {
		t.Errorf("grant deny: %+v", o)
	}
	if o := cordon(t, ws, "", "grant", "approve", denied.ID); o.code != exitCordon || !strings.Contains(o.stderr, "409") {
		t.Errorf("approving a denied request: %+v", o)
	}
	if o := cordon(t, ws, "", "grant", "list", "--state", "denied"); !strings.Contains(o.stdout, denied.ID) {
		t.Errorf("grant list --state denied: %+v", o)
	}

	// never: refused at once; auto: granted at once.
	if o := cordon(t, ws, "", "grant", "request", "--session", id, "net.connect:never.test", "--reason", "fetch"); o.code != exitGrantDenied || !strings.Contains(o.stdout, "policy:capabilities.never[0]") {
		t.Errorf("a never capability: %+v", o)
	}
	o = cordon(t, ws, "", "grant", "request", "--session", id, "limit.timeout:20m", "--reason", "a long build", "--ttl", "1h")
	if o.code != 0 || !strings.Contains(o.stdout, "granted") || !strings.Contains(o.stdout, "ttl 1h0m0s") {
		t.Errorf("an auto capability: %+v", o)
	}
	if o := cordon(t, ws, "", "grant", "request", "--session", id, "nonsense", "--reason", "r"); o.code != exitCordon || !strings.Contains(o.stderr, "400") {
		t.Errorf("an unknown capability: %+v", o)
	}

	// Revoked through the CLI, ptrace is refused again.
	if o := cordon(t, ws, "", "grant", "revoke", pending.ID); o.code != 0 || !strings.Contains(o.stdout, "revoked") {
		t.Errorf("grant revoke: %+v", o)
	}
	if got := probe(); !strings.HasPrefix(got, "refused") {
		t.Errorf("ptrace after the revocation: %q", got)
	}
	// Removing the session ends the ttl grant: an expiry.
	if o := cordon(t, ws, "", "session", "rm", id); o.code != 0 {
		t.Fatalf("session rm: %+v", o)
	}

	// Every step is in the audit log, which verifies.
	data, err := os.ReadFile(auditLog)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	var kinds []string
	for _, l := range lines {
		var r struct {
			Kind       string `json:"kind"`
			Decision   string `json:"decision"`
			PolicyHash string `json:"policy_hash"`
		}
		json.Unmarshal([]byte(l), &r)
		if r.PolicyHash != policyHash {
			t.Errorf("record with policy_hash %s, want the policy file's %s: %s", r.PolicyHash, policyHash, l)
		}
		kinds = append(kinds, strings.TrimSuffix(r.Kind+"/"+r.Decision, "/"))
	}
	want := []string{
		"grant.request", "grant.decision/ask", "grant.decision/approved", "grant.use", // proc.ptrace
		"grant.request", "grant.decision/ask", "grant.decision/denied", // example.org
		"grant.request", "grant.decision/never", // never.test
		"grant.request", "grant.decision/auto", // limit.timeout
		"grant.revoke", "grant.use", "grant.expire", // proc.ptrace revoked; the timeout grant used, then ended with the session
	}
	if strings.Join(kinds, " ") != strings.Join(want, " ") {
		t.Errorf("audit log:\n got %v\nwant %v", kinds, want)
	}
	dir := t.TempDir()
	if o := cordon(t, dir, "", "audit", "verify", auditLog); o.code != 0 || !strings.HasPrefix(o.stdout, "ok: "+strconv.Itoa(len(lines))+" records") {
		t.Errorf("audit verify: %+v", o)
	}
	tampered := map[string][]string{
		"edited":  replaceAt(lines, 2, strings.Replace(lines[2], "approved", "denied", 1)),
		"deleted": append(append([]string{}, lines[:4]...), lines[5:]...),
		"swapped": replaceAt(replaceAt(lines, 5, lines[6]), 6, lines[5]),
	}
	for name, ls := range tampered {
		path := filepath.Join(dir, name+".jsonl")
		os.WriteFile(path, []byte(strings.Join(ls, "\n")+"\n"), 0o600)
		if o := cordon(t, dir, "", "audit", "verify", path); o.code != 1 || !strings.Contains(o.stderr, path+":") {
			t.Errorf("audit verify on a log with a record %s: %+v", name, o)
		}
	}
}

func replaceAt(lines []string, i int, s string) []string {
	out := append([]string{}, lines...)
	out[i] = s
	return out
}

// TestMCPRequestCapability: request_capability over `cordon mcp`,
// granted by policy, refused by policy, and waiting while a person
// approves it with `cordon grant approve` on the server's own socket;
// the grant then applies to the server's bash tool.
func TestMCPRequestCapability(t *testing.T) {
	policyFile, _ := grantPolicyFile(t)
	runtime := t.TempDir()
	auditLog := filepath.Join(t.TempDir(), "audit.jsonl")
	ws := workspace(t)
	os.WriteFile(filepath.Join(ws, "probe.py"), []byte(ptraceProbe), 0o644)
	t.Cleanup(func() { // after the server has exited
		if left, _ := filepath.Glob(filepath.Join(runtime, "*")); len(left) > 0 {
			t.Errorf("cordon mcp left %v", left)
		}
	})
	cs := mcpServerEnv(t, ws, []string{"XDG_RUNTIME_DIR=" + runtime}, nil, "--policy", policyFile, "--audit", auditLog)
	socks, _ := filepath.Glob(filepath.Join(runtime, "cordon-mcp-*", "grants.sock"))
	if len(socks) != 1 {
		t.Fatalf("grant sockets under $XDG_RUNTIME_DIR: %v", socks)
	}
	socket := socks[0]
	if fi, err := os.Stat(filepath.Dir(socket)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the socket's directory: %v %v", fi, err)
	}
	if fi, err := os.Stat(socket); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the socket: %v %v", fi, err)
	}
	capability := func(args map[string]any) (string, map[string]any) {
		t.Helper()
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "request_capability", Arguments: args})
		if err != nil {
			t.Fatalf("request_capability %v: %v", args, err)
		}
		structured, _ := res.StructuredContent.(map[string]any)
		return res.Content[0].(*mcp.TextContent).Text, structured
	}

	const capped = "above the session's call timeout"
	if r := callTool(t, cs, "bash", map[string]any{"command": "true", "timeout_s": 900}); !strings.Contains(r.text, capped) {
		t.Errorf("control: timeout_s 900 under the default 10m: %+v", r)
	}
	text, st := capability(map[string]any{"capability": "limit.timeout:20m", "reason": "a long build", "scope": "session"})
	if st["state"] != "granted" || !strings.HasPrefix(text, "Granted: limit.timeout:20m, by the session's policy") {
		t.Errorf("auto: %q %v", text, st)
	}
	if r := callTool(t, cs, "bash", map[string]any{"command": "true", "timeout_s": 900}); strings.Contains(r.text, capped) {
		t.Errorf("timeout_s 900 after limit.timeout:20m was granted: %+v", r)
	}
	text, st = capability(map[string]any{"capability": "net.connect:never.test", "reason": "fetch", "scope": "call"})
	if st["state"] != "denied" || !strings.HasPrefix(text, "Denied: net.connect:never.test") {
		t.Errorf("never: %q %v", text, st)
	}
	if r := callTool(t, cs, "bash", map[string]any{"command": "python3 probe.py"}); !strings.Contains(r.text, "refused") {
		t.Fatalf("ptrace before the grant: %+v", r)
	}
	// ask: the tool waits while a person approves with the CLI.
	approved := make(chan outcome, 1)
	go func() {
		g := waitPending(t, "proc.ptrace", "--socket", socket)
		approved <- cordon(t, "", "", "grant", "approve", g.ID, "--socket", socket, "--note", "go ahead")
	}()
	text, st = capability(map[string]any{"capability": "proc.ptrace", "reason": "debug a test", "scope": "session", "wait_s": 60})
	if o := <-approved; o.code != 0 {
		t.Errorf("grant approve on the MCP server's socket: %+v", o)
	}
	if st["state"] != "granted" || !strings.Contains(text, "by a person (uid:") || !strings.Contains(text, "go ahead") {
		t.Errorf("ask, approved while the tool waited: %q %v", text, st)
	}
	if r := callTool(t, cs, "bash", map[string]any{"command": "python3 probe.py"}); !strings.Contains(r.text, "attached") {
		t.Errorf("ptrace after the approval: %+v", r)
	}
	// A request nobody decides: pending, with exactly how to approve it.
	text, st = capability(map[string]any{"capability": "net.connect:example.org", "reason": "fetch", "scope": "call", "wait_s": 0})
	approve := "cordon grant approve " + st["id"].(string) + " --socket " + socket
	if st["state"] != "pending" || !strings.Contains(text, approve) || st["approve"] != approve {
		t.Errorf("pending: %q %v", text, st)
	}
	if o := cordon(t, "", "", "grant", "deny", st["id"].(string), "--socket", socket); o.code != 0 {
		t.Errorf("grant deny on the MCP server's socket: %+v", o)
	}
	if o := cordon(t, "", "", "audit", "verify", auditLog); o.code != 0 {
		t.Errorf("audit verify of the MCP server's log: %+v", o)
	}
}
