package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cordon-sandbox/cordon/audit"
	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/policy"
	"github.com/cordon-sandbox/cordon/sandbox"
)

func TestMain(m *testing.M) {
	sandbox.Init()
	// As a client of another uid: GET the URL in $CORDON_TEST_GET on
	// the socket in $CORDON_TEST_SOCKET and print the status and body.
	if url := os.Getenv("CORDON_TEST_GET"); url != "" {
		c := NewClient(os.Getenv("CORDON_TEST_SOCKET"))
		var resp *http.Response
		var err error
		if body, ok := os.LookupEnv("CORDON_TEST_POST"); ok {
			resp, err = c.http.Post("http://cordon"+url, "application/json", strings.NewReader(body))
		} else {
			resp, err = c.http.Get("http://cordon" + url)
		}
		if err != nil {
			fmt.Println("error", err)
			os.Exit(0)
		}
		b, _ := io.ReadAll(resp.Body)
		fmt.Printf("%d %s", resp.StatusCode, b)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// daemonUnderTest serves a daemon on a socket in a fresh directory.
func daemonUnderTest(t *testing.T) (socket string, c *Client, bus *events.Bus) {
	t.Helper()
	d := startDaemon(t, Options{})
	return d.socket, d.c, d.bus
}

// testDaemon is a daemon serving in this process, with its audit log.
type testDaemon struct {
	socket, auditPath string
	c                 *Client
	bus               *events.Bus
	srv               *Server
}

// startDaemon serves a daemon with o (Bus and Socket filled in) on a
// socket in a fresh directory; its audit log is beside it unless
// o.AuditPath names one for the daemon to open.
func startDaemon(t testing.TB, o Options) *testDaemon {
	t.Helper()
	dir, err := os.MkdirTemp("", "cordon-daemon-test-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	d := &testDaemon{socket: filepath.Join(dir, "cordon.sock"), auditPath: filepath.Join(dir, "audit", "audit.jsonl"), bus: events.NewBus()}
	ln, err := Listen(d.socket)
	if err != nil {
		t.Fatal(err)
	}
	var log *audit.Log
	if o.AuditPath == "" {
		if log, err = audit.Open(d.auditPath); err != nil {
			t.Fatal(err)
		}
		o.Audit = log
	} else {
		d.auditPath = o.AuditPath
	}
	o.Bus, o.Socket = d.bus, d.socket
	d.srv = New(o)
	done := make(chan error, 1)
	go func() { done <- d.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if log != nil {
			log.Close()
		}
		os.RemoveAll(dir)
	})
	d.c = NewClient(d.socket)
	return d
}

func workspace(t testing.TB) string {
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	return dir
}

func raw(t *testing.T, c *Client, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://cordon"+path, strings.NewReader(body))
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAPI(t *testing.T) {
	_, c, _ := daemonUnderTest(t)
	ctx := context.Background()
	ws := workspace(t)

	code, body := raw(t, c, "POST", "/v1/sessions", `{"workspace":"`+ws+`"}`)
	var created CreateResponse
	if code != http.StatusCreated || json.Unmarshal([]byte(body), &created) != nil || created.ID == "" {
		t.Fatalf("create: %d %s", code, body)
	}
	id := created.ID
	list, err := c.List(ctx)
	if err != nil || len(list) != 1 || list[0].ID != id || list[0].Workspace != ws || list[0].Created.IsZero() {
		t.Fatalf("list: %+v %v", list, err)
	}

	// exec, argv and command forms, with stdin, env and cwd.
	os.Mkdir(filepath.Join(ws, "sub"), 0o755)
	code, body = raw(t, c, "POST", "/v1/sessions/"+id+"/exec",
		`{"command":"cat; echo $X; pwd; exit 7","stdin":"in\n","env":{"X":"x"},"cwd":"sub","timeout_ms":60000,"max_output_bytes":1000}`)
	var res map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &res) != nil {
		t.Fatalf("exec: %d %s", code, body)
	}
	for _, k := range []string{"call", "exit_code", "signal", "stdout", "stderr", "truncated", "timed_out", "denials", "explanation", "timing"} {
		if _, ok := res[k]; !ok {
			t.Errorf("exec result lacks %q: %s", k, body)
		}
	}
	if res["exit_code"] != float64(7) || res["stdout"] != "in\nx\n"+filepath.Join(ws, "sub")+"\n" {
		t.Errorf("exec result: %s", body)
	}

	// streamed exec: output frames, then the result.
	var frames []OutputFrame
	result, err := c.ExecStream(ctx, id, ExecRequest{Argv: []string{"sh", "-c", "echo a; sleep 0.2; echo b >&2"}}, func(f OutputFrame) { frames = append(frames, f) })
	if err != nil || len(frames) != 2 || frames[0].Stdout != "a\n" || frames[1].Stderr != "b\n" || !bytes.Contains(result, []byte(`"exit_code":0`)) {
		t.Errorf("stream: %+v %s %v", frames, result, err)
	}

	// files: put, get, and the refusals.
	if code, body := raw(t, c, "PUT", "/v1/sessions/"+id+"/files/dir/f.txt", "content"); code != http.StatusNoContent {
		t.Errorf("put: %d %s", code, body)
	}
	if code, body := raw(t, c, "GET", "/v1/sessions/"+id+"/files/dir/f.txt", ""); code != 200 || body != "content" {
		t.Errorf("get: %d %q", code, body)
	}
	if code, body := raw(t, c, "GET", "/v1/sessions/"+id+"/files/missing", ""); code != http.StatusNotFound || !strings.Contains(body, `"not_found"`) {
		t.Errorf("get missing: %d %s", code, body)
	}
	os.Symlink("/etc/hostname", filepath.Join(ws, "out"))
	code, body = raw(t, c, "GET", "/v1/sessions/"+id+"/files/out", "")
	if code != http.StatusForbidden || !strings.Contains(body, `"denials"`) || !strings.Contains(body, "policy.workspace.beneath") {
		t.Errorf("get through a symlink out: %d %s", code, body)
	}

	// metrics reflect what happened.
	_, metrics := raw(t, c, "GET", "/metrics", "")
	for _, want := range []string{"cordon_sessions 1", `cordon_calls_total{op="exec"} 2`, `cordon_denials_total{kind="deny",layer="policy"} 1`, "cordon_call_duration_seconds_bucket"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	if code, body := raw(t, c, "DELETE", "/v1/sessions/"+id, ""); code != http.StatusNoContent {
		t.Errorf("delete: %d %s", code, body)
	}
	if code, _ := raw(t, c, "POST", "/v1/sessions/"+id+"/exec", `{"argv":["true"]}`); code != http.StatusNotFound {
		t.Errorf("exec on a deleted session: %d", code)
	}
}

func TestAPIErrors(t *testing.T) {
	_, c, _ := daemonUnderTest(t)
	ws := workspace(t)
	_, body := raw(t, c, "POST", "/v1/sessions", `{"workspace":"`+ws+`"}`)
	var created CreateResponse
	json.Unmarshal([]byte(body), &created)
	exec := "/v1/sessions/" + created.ID + "/exec"
	cases := []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", "/v1/sessions", `{"workspace":`, 400, "invalid"},
		{"POST", "/v1/sessions", `{"workspace":"` + ws + `","extra":1}`, 400, "invalid"},
		{"POST", "/v1/sessions", `{"workspace":"relative"}`, 400, "invalid"},
		{"POST", "/v1/sessions", `{"workspace":"/nonexistent/cordon"}`, 400, "invalid"},
		{"POST", "/v1/sessions", `{"workspace":"` + ws + `","policy":"version: 1\nlimits:\n  memroy: 1GiB\n"}`, 400, "invalid"},
		{"POST", exec, `{"argv":[]}`, 400, "invalid"},
		{"POST", exec, `{"argv":["true"],"command":"true"}`, 400, "invalid"},
		{"POST", exec, `{"argv":["true"],"cwd":"../.."}`, 403, "denied"},
		{"POST", exec, `{"argv":["true"],"timeout_ms":-1}`, 400, "invalid"},
		{"POST", exec, `{"argv":"true"}`, 400, "invalid"},
		{"POST", exec, `{"argv":["true"]} {}`, 400, "invalid"},
		{"POST", "/v1/sessions/nope/exec", `{"argv":["true"]}`, 404, "not_found"},
		{"GET", "/v1/nothing", ``, 404, "not_found"},
		{"POST", exec, `{"command":"` + strings.Repeat("x", maxJSONBody) + `"}`, 413, "too_large"},
	}
	for _, tc := range cases {
		code, body := raw(t, c, tc.method, tc.path, tc.body)
		var eb ErrorBody
		if code != tc.status || json.Unmarshal([]byte(body), &eb) != nil || eb.Error.Code != tc.code || eb.Error.Message == "" {
			t.Errorf("%s %s %.60q: %d %.200s, want %d %s", tc.method, tc.path, tc.body, code, body, tc.status, tc.code)
		}
		if tc.status == 403 && (len(eb.Denials) == 0 || !strings.Contains(eb.Explanation, eb.Denials[0].Rule)) {
			t.Errorf("%s %s %.60q: a 403 without its denials explained: %.300s", tc.method, tc.path, tc.body, body)
		}
	}
	if code, body := raw(t, c, "POST", "/v1/sessions", `{"workspace":"`+ws+`","policy":"version: 1\nlimits:\n  memroy: 1GiB\n"}`); !strings.Contains(body, "policy:3:") {
		t.Errorf("policy error without its line: %d %s", code, body)
	}
	// Control: the same session still serves a good call after all that.
	if code, body := raw(t, c, "POST", exec, `{"argv":["true"]}`); code != 200 {
		t.Errorf("control: %d %s", code, body)
	}
}

// TestOtherUID: a session belongs to the uid that created it; another
// uid gets 404 for it and an empty list.
func TestOtherUID(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to connect as another uid; the daemon's peer check is exercised by TestAPI")
	}
	socket, c, _ := daemonUnderTest(t)
	os.Chmod(socket, 0o666) // let uid 65534 connect, for this test only
	id, err := c.Create(context.Background(), CreateRequest{Workspace: workspace(t)})
	if err != nil {
		t.Fatal(err)
	}
	as := func(uid uint32, url string, post ...string) string { return asUID(t, socket, uid, url, post...) }
	for _, url := range []string{"/v1/sessions/" + id + "/files/x", "/v1/sessions/" + id + "/events"} {
		if got := as(65534, url); !strings.HasPrefix(got, "404 ") {
			t.Errorf("uid 65534 GET %s: %q", url, got)
		}
	}
	if got := as(65534, "/v1/sessions/"+id+"/network/allow", `{"hosts":["evil.example"]}`); !strings.HasPrefix(got, "404 ") {
		t.Errorf("uid 65534 widened another uid's allowlist: %q", got)
	}
	if got := as(65534, "/v1/sessions"); strings.TrimSpace(got) != "200 []" {
		t.Errorf("uid 65534 lists %q", got)
	}
	if got := as(0, "/v1/sessions"); !strings.Contains(got, id) {
		t.Errorf("control: the owner lists %q", got)
	}

	// Acting for uid 65534, the root daemon opens a session only over a
	// workspace that uid owns, reached through directories it can walk.
	dir, _ := os.MkdirTemp("", "cordon-foreign-")
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	own := filepath.Join(dir, "ws")
	os.Mkdir(own, 0o755)
	os.Chown(own, 65534, 65534)
	rootOwned := filepath.Join(dir, "root-ws")
	os.Mkdir(rootOwned, 0o755)
	link := filepath.Join(dir, "link")
	os.Symlink(rootOwned, link)
	os.Lchown(link, 65534, 65534)
	for _, ws := range []string{rootOwned, link, workspace(t)} {
		if got := as(65534, "/v1/sessions", `{"workspace":"`+ws+`"}`); !strings.HasPrefix(got, "403 ") {
			t.Errorf("uid 65534 opened a session over %s: %q", ws, got)
		}
	}
	got := as(65534, "/v1/sessions", `{"workspace":"`+own+`"}`)
	if !strings.HasPrefix(got, "201 ") {
		t.Fatalf("control: uid 65534 over its own workspace: %q", got)
	}
	var created CreateResponse
	json.Unmarshal([]byte(strings.TrimPrefix(got, "201 ")), &created)
	// Files the session writes are uid 65534's on the host.
	got = as(65534, "/v1/sessions/"+created.ID+"/exec", `{"command":"echo hi > made"}`)
	var st syscall.Stat_t
	if !strings.HasPrefix(got, "200 ") || syscall.Stat(filepath.Join(own, "made"), &st) != nil || st.Uid != 65534 {
		t.Errorf("a file written in uid 65534's session: %q, owner %d", got, st.Uid)
	}
}

// asUID runs a copy of the test binary as uid, a client that sends one
// request (a GET of url, or a POST of post[0]) to the daemon on socket,
// and returns "STATUS BODY".
func asUID(t *testing.T, socket string, uid uint32, url string, post ...string) string {
	t.Helper()
	dir, _ := os.MkdirTemp("", "cordon-client-")
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "client")
	b, _ := os.ReadFile(os.Args[0])
	os.WriteFile(bin, b, 0o755)
	cmd := exec.Command(bin)
	cmd.Env = []string{"CORDON_TEST_GET=" + url, "CORDON_TEST_SOCKET=" + socket}
	if len(post) > 0 {
		cmd.Env = append(cmd.Env, "CORDON_TEST_POST="+post[0])
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("client as %d: %v", uid, err)
	}
	return string(out)
}

// TestNetworkAllow changes a live session's egress allowlist through the
// API; the proxy itself is tested in the sandbox package.
func TestNetworkAllow(t *testing.T) {
	_, c, _ := daemonUnderTest(t)
	ctx := context.Background()
	id, err := c.Create(ctx, CreateRequest{Workspace: workspace(t)})
	if err != nil {
		t.Fatal(err)
	}
	path := "/v1/sessions/" + id + "/network/allow"
	code, body := raw(t, c, "POST", path, `{"hosts":["b.example:443","*.c.example"]}`)
	want, _ := json.Marshal(NetworkAllowResponse{Allow: append(policy.Default().Network.Allow, "b.example:443", "*.c.example")})
	if code != http.StatusOK || body != string(want)+"\n" {
		t.Errorf("allow: %d %s, want %s", code, body, want)
	}
	for _, bad := range []string{`{"hosts":["not a host"]}`, `{"hosts":[]}`, `{"hosts":"x"}`, `{"hosts":["a"],"x":1}`} {
		if code, body := raw(t, c, "POST", path, bad); code != http.StatusBadRequest || !strings.Contains(body, `"invalid"`) {
			t.Errorf("allow %s: %d %s", bad, code, body)
		}
	}
	if got, err := c.AllowHosts(ctx, id, "d.example"); err != nil || len(got) != len(policy.Default().Network.Allow)+3 {
		t.Errorf("client AllowHosts: %v %v", got, err)
	}
	if code, _ := raw(t, c, "POST", "/v1/sessions/nope/network/allow", `{"hosts":["a.example"]}`); code != http.StatusNotFound {
		t.Errorf("allow on an unknown session: %d", code)
	}
	// A refusal by the proxy is counted by outcome (e.example is not
	// allowlisted, so the proxy refuses before resolving it).
	res, err := c.Exec(ctx, id, ExecRequest{Command: "curl -sS -m 10 http://e.example/"})
	if err != nil || !bytes.Contains(res, []byte("net.connect:e.example")) {
		t.Errorf("curl to a host not allowlisted: %s %v", res, err)
	}
	if _, metrics := raw(t, c, "GET", "/metrics", ""); !strings.Contains(metrics, `cordon_egress_requests_total{outcome="denied"} 1`) ||
		!strings.Contains(metrics, `cordon_denials_total{kind="deny",layer="net"} 1`) {
		t.Errorf("metrics lack the egress refusal:\n%s", metrics)
	}
}

func TestEventStream(t *testing.T) {
	_, c, _ := daemonUnderTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	id, err := c.Create(ctx, CreateRequest{Workspace: workspace(t)})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *events.Event, 64)
	go c.Events(ctx, id, func(e *events.Event) { got <- e })
	time.Sleep(200 * time.Millisecond) // subscribed before the call
	if _, err := c.Exec(ctx, id, ExecRequest{Command: "unshare -U true"}); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	timeout := time.After(10 * time.Second)
	for len(kinds) < 3 {
		select {
		case e := <-got:
			if e.Session != id {
				t.Errorf("event of another session: %+v", e)
			}
			kinds = append(kinds, string(e.Kind))
		case <-timeout:
			t.Fatalf("events so far: %v", kinds)
		}
	}
	if strings.Join(kinds, " ") != "call.start deny call.end" {
		t.Errorf("events %v", kinds)
	}
}

// TestSlowClient: a client that never finishes its request does not hold
// up anyone else.
func TestSlowClient(t *testing.T) {
	socket, c, _ := daemonUnderTest(t)
	conn, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"work")
	t0 := time.Now()
	if _, err := c.List(context.Background()); err != nil || time.Since(t0) > 2*time.Second {
		t.Errorf("list behind a stalled request: %v after %v", err, time.Since(t0))
	}
	// A reader that stops reading an event stream does not block calls.
	id, err := c.Create(context.Background(), CreateRequest{Workspace: workspace(t)})
	if err != nil {
		t.Fatal(err)
	}
	stalled, _ := net.Dial("unix", socket)
	defer stalled.Close()
	fmt.Fprintf(stalled, "GET /v1/sessions/%s/events HTTP/1.1\r\nHost: x\r\n\r\n", id)
	bufio.NewReader(stalled).ReadString('\n')
	for i := 0; i < 50; i++ {
		if _, err := c.Exec(context.Background(), id, ExecRequest{Command: "head -c 20000 /dev/zero"}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestServeCommand runs `cordon serve` as a process: SIGTERM closes every
// session and removes the socket; a daemon killed outright leaves its
// sessions' cgroups, which the next daemon sweeps away.
func TestServeLifecycle(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("cgroups, and so their sweep, exist only for a root daemon")
	}
	bin := filepath.Join(t.TempDir(), "cordon")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/cordon-sandbox/cordon/cmd/cordon").CombinedOutput(); err != nil {
		t.Fatalf("building cordon: %v\n%s", err, out)
	}
	dir := t.TempDir()
	socket := filepath.Join(dir, "d.sock")
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "serve", "--socket", socket, "--audit", filepath.Join(dir, "audit.jsonl"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 200; i++ {
			if c, err := net.Dial("unix", socket); err == nil {
				c.Close()
				return cmd
			}
			time.Sleep(20 * time.Millisecond)
		}
		cmd.Process.Kill()
		t.Fatalf("daemon did not start: %s", stderr.String())
		return nil
	}
	cgroupOf := func(id string) string { return filepath.Join("/sys/fs/cgroup/pids", CgroupParent(socket), id) }

	d := start()
	c := NewClient(socket)
	id, err := c.Create(context.Background(), CreateRequest{Workspace: workspace(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cgroupOf(id)); err != nil {
		t.Fatalf("control: the session's cgroup: %v", err)
	}
	d.Process.Signal(syscall.SIGTERM)
	if err := d.Wait(); err != nil {
		t.Errorf("daemon exit after SIGTERM: %v", err)
	}
	if _, err := os.Stat(cgroupOf(id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("SIGTERM left the session's cgroup: %v", err)
	}
	if _, err := os.Stat(socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("SIGTERM left the socket")
	}

	d = start()
	c = NewClient(socket)
	id, err = c.Create(context.Background(), CreateRequest{Workspace: workspace(t)})
	if err != nil {
		t.Fatal(err)
	}
	d.Process.Kill()
	d.Wait()
	if _, err := os.Stat(cgroupOf(id)); err != nil {
		t.Fatalf("control: a killed daemon leaves its session's cgroup: %v", err)
	}
	// A daemon on another socket leaves that cgroup alone.
	other := exec.Command(bin, "serve", "--socket", filepath.Join(dir, "other.sock"), "--audit", filepath.Join(dir, "other-audit.jsonl"))
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	other.Process.Signal(syscall.SIGTERM)
	other.Wait()
	if _, err := os.Stat(cgroupOf(id)); err != nil {
		t.Errorf("a daemon on another socket swept this one's cgroup: %v", err)
	}
	d = start()
	if _, err := os.Stat(cgroupOf(id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the next daemon did not sweep the cgroup: %v", err)
	}
	d.Process.Signal(syscall.SIGTERM)
	d.Wait()
}

// supervisors returns the pids of the session supervisors (each a
// session's PID 1) that are this process's children.
func supervisors() []int {
	self := strconv.Itoa(os.Getpid())
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	var pids []int
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		cmdline, _ := os.ReadFile(filepath.Join(filepath.Dir(d), "cmdline"))
		if len(f) > 1 && f[1] == self && bytes.Contains(cmdline, []byte("__cordon_supervisor")) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestSessionDied: a session whose supervisor is gone answers 409.
func TestSessionDied(t *testing.T) {
	_, c, _ := daemonUnderTest(t)
	ctx := context.Background()
	id, err := c.Create(ctx, CreateRequest{Workspace: workspace(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, id, ExecRequest{Argv: []string{"true"}}); err != nil {
		t.Fatalf("control: %v", err)
	}
	// The supervisors are this process's children; kill every one.
	pids := supervisors()
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if len(pids) != 1 {
		t.Fatalf("killed %d supervisors, want 1", len(pids))
	}
	var apiErr *APIError
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		_, err = c.Exec(ctx, id, ExecRequest{Argv: []string{"true"}})
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusConflict {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("exec on a dead session: %v", err)
}
