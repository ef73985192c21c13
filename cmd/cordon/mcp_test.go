package main

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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// mcpServer starts `cordon mcp` on ws as a child over stdio and connects
// the SDK's client to it.
func mcpServer(t *testing.T, ws string, opts *mcp.ClientOptions, args ...string) *mcp.ClientSession {
	t.Helper()
	return mcpServerEnv(t, ws, nil, opts, args...)
}

// mcpServerEnv is mcpServer with env added to the server's environment.
func mcpServerEnv(t *testing.T, ws string, env []string, opts *mcp.ClientOptions, args ...string) *mcp.ClientSession {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"mcp", "--workspace", ws}, args...)...)
	cmd.Env = append(append(os.Environ(), "CORDON_TEST_MAIN=1"), env...)
	cmd.Stderr = os.Stderr
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "cordon-test"}, opts).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connecting to cordon mcp: %v", err)
	}
	t.Cleanup(func() {
		// Close ends stdin; the server must exit by itself, cleanly.
		if err := cs.Close(); err != nil {
			t.Errorf("closing cordon mcp: %v", err)
		}
		if cmd.ProcessState == nil || !cmd.ProcessState.Success() {
			t.Errorf("cordon mcp did not exit cleanly: %v", cmd.ProcessState)
		}
	})
	return cs
}

// toolResult is a tool result as the model and a client see it.
type toolResult struct {
	isError    bool
	text       string
	structured struct {
		ExitCode *int `json:"exit_code"`
		Denials  []struct {
			Kind, Layer, Op, Target, Rule string
			Remedy                        *struct{ Capability string }
		} `json:"denials"`
		Files        []string `json:"files"`
		Replacements int      `json:"replacements"`
	}
}

func callTool(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) toolResult {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return decodeResult(t, res)
}

func decodeResult(t *testing.T, res *mcp.CallToolResult) toolResult {
	t.Helper()
	r := toolResult{isError: res.IsError}
	for _, c := range res.Content {
		r.text += c.(*mcp.TextContent).Text
	}
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &r.structured); err != nil || r.structured.Denials == nil {
		t.Fatalf("structured content %s: %v (denials must be an array)", b, err)
	}
	return r
}

func (r toolResult) denied(layer, rule string) bool {
	for _, d := range r.structured.Denials {
		if d.Kind == "deny" && d.Layer == layer && d.Rule == rule {
			return true
		}
	}
	return false
}

// TestMCPTools drives every tool of `cordon mcp` over stdio with the
// SDK's client, each refusal next to an allowed control.
func TestMCPTools(t *testing.T) {
	ws := workspace(t)
	os.MkdirAll(filepath.Join(ws, "pkg", "sub"), 0o755)
	os.WriteFile(filepath.Join(ws, "pkg", "a.go"), []byte("package pkg\n"), 0o644)
	os.WriteFile(filepath.Join(ws, "pkg", "sub", "b.go"), []byte("package sub\n"), 0o644)
	os.WriteFile(filepath.Join(ws, "notes.txt"), []byte("one\ntwo\nthree\n"), 0o644)
	os.Symlink("/etc/passwd", filepath.Join(ws, "passwd-link"))
	cs := mcpServer(t, ws, nil)

	tools, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	if got := strings.Join(names, " "); got != "bash edit_file list_files read_file request_capability write_file" {
		t.Errorf("tools: %s", got)
	}

	t.Run("bash", func(t *testing.T) {
		r := callTool(t, cs, "bash", map[string]any{"command": "echo out; echo err >&2; exit 3"})
		if r.isError || *r.structured.ExitCode != 3 || !strings.Contains(r.text, "exit code 3") ||
			!strings.Contains(r.text, "out") || !strings.Contains(r.text, "err") || len(r.structured.Denials) != 0 {
			t.Errorf("a plain failing command: %+v", r)
		}
		r = callTool(t, cs, "bash", map[string]any{"command": "pwd", "cwd": "pkg"})
		if r.isError || !strings.Contains(r.text, filepath.Join(ws, "pkg")) {
			t.Errorf("cwd: %+v", r)
		}
		for _, command := range []string{"unshare -U true", "mount -t tmpfs x /mnt"} {
			r = callTool(t, cs, "bash", map[string]any{"command": command})
			d := r.structured.Denials
			if !r.isError || len(d) == 0 || d[0].Kind != "deny" || d[0].Layer != "seccomp" {
				t.Errorf("%s: %+v", command, r)
			} else if !strings.Contains(r.text, d[0].Rule) || !strings.Contains(r.text, "no capability can allow this") {
				t.Errorf("%s: the denial is not explained: %q", command, r.text)
			}
		}
		r = callTool(t, cs, "bash", map[string]any{"command": "head -c 1000000 /dev/zero | tr '\\0' x"})
		if r.isError || !strings.Contains(r.text, "output cut at the limit") || len(r.text) > 300<<10 {
			t.Errorf("a huge output: error=%v, %d bytes of text", r.isError, len(r.text))
		}
		r = callTool(t, cs, "bash", map[string]any{"command": "sleep 5", "timeout_s": 0.3})
		if !r.isError || !strings.Contains(r.text, "timed out") || !strings.Contains(r.text, "timeout limit") {
			t.Errorf("timeout: %+v", r)
		}
	})

	t.Run("read_file", func(t *testing.T) {
		r := callTool(t, cs, "read_file", map[string]any{"path": "notes.txt", "start_line": 2, "end_line": 2})
		if r.isError || r.text != "two\n" {
			t.Errorf("control: %+v", r)
		}
		for _, p := range []string{"../x", "/etc/shadow", "passwd-link"} {
			r := callTool(t, cs, "read_file", map[string]any{"path": p})
			if !r.isError || !r.denied("policy", "policy.workspace.beneath") || !strings.Contains(r.text, "refused") {
				t.Errorf("%s: %+v", p, r)
			}
			if strings.Contains(r.text, "root:") {
				t.Errorf("%s: the host file leaked: %q", p, r.text)
			}
		}
	})

	t.Run("write_and_edit", func(t *testing.T) {
		if r := callTool(t, cs, "write_file", map[string]any{"path": "new/dir/f.txt", "content": "alpha beta beta\n"}); r.isError {
			t.Fatalf("write_file: %+v", r)
		}
		host := func() string { b, _ := os.ReadFile(filepath.Join(ws, "new/dir/f.txt")); return string(b) }
		if host() != "alpha beta beta\n" {
			t.Fatalf("the host sees %q", host())
		}
		r := callTool(t, cs, "edit_file", map[string]any{"path": "new/dir/f.txt", "old_string": "alpha", "new_string": "gamma"})
		if r.isError || r.structured.Replacements != 1 || host() != "gamma beta beta\n" {
			t.Errorf("edit: %+v, file %q", r, host())
		}
		r = callTool(t, cs, "edit_file", map[string]any{"path": "new/dir/f.txt", "old_string": "delta", "new_string": "x"})
		if !r.isError || !strings.Contains(r.text, "not found") || host() != "gamma beta beta\n" {
			t.Errorf("missing old_string: %+v, file %q", r, host())
		}
		r = callTool(t, cs, "edit_file", map[string]any{"path": "new/dir/f.txt", "old_string": "beta", "new_string": "x"})
		if !r.isError || !strings.Contains(r.text, "occurs 2 times") || host() != "gamma beta beta\n" {
			t.Errorf("ambiguous old_string: %+v, file %q", r, host())
		}
		r = callTool(t, cs, "edit_file", map[string]any{"path": "new/dir/f.txt", "old_string": "beta", "new_string": "x", "replace_all": true})
		if r.isError || r.structured.Replacements != 2 || host() != "gamma x x\n" {
			t.Errorf("replace_all: %+v, file %q", r, host())
		}
		r = callTool(t, cs, "write_file", map[string]any{"path": "/etc/cordon-mcp-test", "content": "x"})
		if !r.isError || !r.denied("policy", "policy.workspace.beneath") {
			t.Errorf("write outside the workspace: %+v", r)
		}
		if _, err := os.Stat("/etc/cordon-mcp-test"); err == nil {
			os.Remove("/etc/cordon-mcp-test")
			t.Error("write_file wrote /etc on the host")
		}
	})

	t.Run("list_files", func(t *testing.T) {
		r := callTool(t, cs, "list_files", map[string]any{"pattern": "**/*.go"})
		if r.isError || strings.Join(r.structured.Files, " ") != "pkg/a.go pkg/sub/b.go" {
			t.Errorf("**/*.go: %+v", r)
		}
		r = callTool(t, cs, "list_files", map[string]any{"path": ".."})
		if !r.isError || !r.denied("policy", "policy.workspace.beneath") {
			t.Errorf("list_files ..: %+v", r)
		}
	})
}

// TestMCPProgress: a client that asks for progress gets the output of
// a long command as it comes; the result still has all of it.
func TestMCPProgress(t *testing.T) {
	var mu sync.Mutex
	var messages []string
	progress := func() []string {
		mu.Lock()
		defer mu.Unlock()
		m := messages
		messages = nil
		return m
	}
	cs := mcpServer(t, workspace(t), &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			messages = append(messages, req.Params.Message)
			mu.Unlock()
		},
	})
	params := &mcp.CallToolParams{Name: "bash", Arguments: map[string]any{"command": "for i in 1 2 3; do echo line$i; sleep 0.7; done"}}
	params.SetProgressToken("tok-1")
	res, err := cs.CallTool(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if r := decodeResult(t, res); r.isError || !strings.Contains(r.text, "line1\nline2\nline3") {
		t.Errorf("result: %+v", r)
	}
	if m := progress(); len(m) < 2 || !strings.Contains(m[0], "line1") || !strings.Contains(m[len(m)-1], "line") {
		t.Errorf("progress messages %q", m)
	}
	// Without a token, no progress.
	callTool(t, cs, "bash", map[string]any{"command": "echo a; sleep 0.6; echo b"})
	if m := progress(); len(m) != 0 {
		t.Errorf("progress without a token: %q", m)
	}
}

// markerAlive counts host processes whose argv[0] is marker.
func markerAlive(marker string) int {
	n := 0
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, d := range dirs {
		if b, err := os.ReadFile(d); err == nil && bytes.HasPrefix(b, []byte(marker+"\x00")) {
			n++
		}
	}
	return n
}

// TestMCPCancel: a client that cancels a long bash call gets control
// back at once, the command's processes are gone, and the server goes
// on serving.
func TestMCPCancel(t *testing.T) {
	cs := mcpServer(t, workspace(t), nil)
	marker := fmt.Sprintf("cordon-mcp-cancel-%d", time.Now().UnixNano())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "bash", Arguments: map[string]any{
			"command": fmt.Sprintf("bash -c 'exec -a %s sleep 60'", marker)}})
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for markerAlive(marker) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if markerAlive(marker) == 0 {
		cancel()
		t.Fatal("control: the command never ran")
	}
	t0 := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled call returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the cancelled call did not return")
	}
	for markerAlive(marker) > 0 && time.Since(t0) < 5*time.Second {
		time.Sleep(20 * time.Millisecond)
	}
	if n := markerAlive(marker); n > 0 {
		t.Errorf("%d processes of the cancelled call are still running", n)
	}
	if r := callTool(t, cs, "bash", map[string]any{"command": "echo still here"}); !strings.Contains(r.text, "still here") {
		t.Errorf("after the cancellation: %+v", r)
	}
}

// TestMCPRawProtocol writes raw bytes to the server's stdin: malformed
// JSON-RPC, unknown tools, wrong argument types and huge arguments get
// JSON-RPC errors, and the server keeps serving.
func TestMCPRawProtocol(t *testing.T) {
	cmd := exec.Command(os.Args[0], "mcp", "--workspace", workspace(t), "--audit", filepath.Join(t.TempDir(), "audit.jsonl"))
	cmd.Env = append(os.Environ(), "CORDON_TEST_MAIN=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("cordon mcp after stdin closed: %v (stderr %q)", err, stderr.String())
		}
	}()
	out := bufio.NewReader(stdout)
	send := func(s string) {
		if _, err := io.WriteString(stdin, s+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	type reply struct {
		ID     any
		Result json.RawMessage
		Error  *struct {
			Code    int64
			Message string
		}
	}
	recv := func() reply {
		type r struct {
			line []byte
			err  error
		}
		c := make(chan r, 1)
		go func() { l, err := out.ReadBytes('\n'); c <- r{l, err} }()
		select {
		case got := <-c:
			var rep reply
			if got.err != nil || json.Unmarshal(got.line, &rep) != nil {
				t.Fatalf("reading the server: %q %v", got.line, got.err)
			}
			return rep
		case <-time.After(20 * time.Second):
			t.Fatal("no reply")
		}
		panic("unreachable")
	}
	call := func(id int, tool string, args any) string {
		b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": map[string]any{"name": tool, "arguments": args}})
		return string(b)
	}
	send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	if r := recv(); r.Error != nil || r.ID != float64(1) {
		t.Fatalf("initialize: %+v", r)
	}
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)

	cases := []struct {
		name string
		line string
		code int64
	}{
		{"not JSON", `{"jsonrpc":"2.0","id":2,"method":"tools/list"`, jsonrpc.CodeParseError},
		{"binary", "\x00\xff\xfe garbage", jsonrpc.CodeParseError},
		{"not a message", `{"hello":"world"}`, jsonrpc.CodeInvalidRequest},
		{"batch", `[{"jsonrpc":"2.0","id":3,"method":"tools/list"}]`, jsonrpc.CodeInvalidRequest},
		{"unknown method", `{"jsonrpc":"2.0","id":4,"method":"tools/destroy"}`, jsonrpc.CodeMethodNotFound},
		{"unknown tool", call(5, "rm_rf", map[string]any{}), jsonrpc.CodeInvalidParams},
		{"wrong type", call(6, "bash", map[string]any{"command": []int{1, 2}}), jsonrpc.CodeInvalidParams},
		{"missing argument", call(7, "read_file", map[string]any{}), jsonrpc.CodeInvalidParams},
		{"unknown argument", call(8, "bash", map[string]any{"command": "true", "sudo": true}), jsonrpc.CodeInvalidParams},
		{"arguments not an object", call(9, "bash", "true"), jsonrpc.CodeInvalidParams},
		{"negative timeout", call(10, "bash", map[string]any{"command": "true", "timeout_s": -1}), jsonrpc.CodeInvalidParams},
		{"huge command", call(11, "bash", map[string]any{"command": strings.Repeat("echo x;", 40000)}), jsonrpc.CodeInvalidParams},
		{"NUL in a path", call(12, "read_file", map[string]any{"path": "a\x00b"}), jsonrpc.CodeInvalidParams},
		{"huge message", call(13, "write_file", map[string]any{"path": "big", "content": strings.Repeat("x", 17<<20)}), jsonrpc.CodeInvalidRequest},
	}
	for _, c := range cases {
		send(c.line)
		r := recv()
		if r.Error == nil || r.Error.Code != c.code {
			t.Errorf("%s: %+v, want error %d", c.name, r, c.code)
		}
	}
	send(call(20, "bash", map[string]any{"command": "echo alive"}))
	if r := recv(); r.ID != float64(20) || !bytes.Contains(r.Result, []byte("alive")) {
		t.Errorf("after the bad input: %+v %s", r, r.Result)
	}
}

// TestMCPHTTP serves streamable HTTP on loopback and on a unix socket;
// each connection has its own session. Other addresses are refused.
func TestMCPHTTP(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:8765", "example.com:80", "8765"} {
		if o := cordon(t, workspace(t), "", "mcp", "--http", addr); o.code != exitCordon || !strings.Contains(o.stderr, "--http") {
			t.Errorf("--http %s: %+v", addr, o)
		}
	}
	ws := workspace(t)
	sock := filepath.Join(t.TempDir(), "mcp.sock")
	for _, c := range []struct{ addr, endpoint string }{{"127.0.0.1:0", ""}, {"unix:" + sock, "http://cordon/"}} {
		t.Run(c.addr, func(t *testing.T) {
			url, stop := startHTTP(t, ws, c.addr)
			defer stop()
			transport := &mcp.StreamableClientTransport{Endpoint: url}
			if c.endpoint != "" {
				transport.Endpoint = c.endpoint
				transport.HTTPClient = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, "unix", sock)
				}}}
				if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
					t.Errorf("socket mode: %v %v", fi.Mode(), err)
				}
			}
			connect := func() *mcp.ClientSession {
				cs, err := mcp.NewClient(&mcp.Implementation{Name: "http-test"}, nil).Connect(context.Background(), transport, nil)
				if err != nil {
					t.Fatal(err)
				}
				return cs
			}
			a, b := connect(), connect()
			defer a.Close()
			defer b.Close()
			if r := callTool(t, a, "bash", map[string]any{"command": "echo mine > /tmp/owner; cat /tmp/owner"}); !strings.Contains(r.text, "mine") {
				t.Errorf("connection a: %+v", r)
			}
			// /tmp is private to a session: b's is not a's.
			if r := callTool(t, b, "bash", map[string]any{"command": "cat /tmp/owner"}); strings.Contains(r.text, "mine") {
				t.Errorf("two connections share a session: %+v", r)
			}
			if r := callTool(t, b, "read_file", map[string]any{"path": "/etc/passwd"}); !r.isError || !r.denied("policy", "policy.workspace.beneath") {
				t.Errorf("read_file outside over HTTP: %+v", r)
			}
		})
	}
}

// startHTTP runs `cordon mcp --http addr` and returns its URL and a
// function that stops it with SIGTERM and checks that it exits cleanly.
func startHTTP(t *testing.T, ws, addr string) (string, func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "mcp", "--workspace", ws, "--http", addr)
	cmd.Env = append(os.Environ(), "CORDON_TEST_MAIN=1")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stderr)
	var url string
	for lines.Scan() {
		if u, ok := strings.CutPrefix(lines.Text(), "cordon mcp: serving streamable HTTP at "); ok {
			url = u
			break
		}
	}
	go io.Copy(io.Discard, stderr)
	if url == "" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("cordon mcp --http did not say where it serves")
	}
	return url, func() {
		cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil {
			t.Errorf("cordon mcp --http after SIGINT: %v", err)
		}
	}
}
