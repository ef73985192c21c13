package mcpserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"path"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/sandbox"
)

// fakeSession is a workspace held in memory, for the tools' own logic;
// cmd/cordon's tests drive the real thing.
type fakeSession struct {
	mu     sync.Mutex
	files  map[string]string // clean relative path → content
	limit  int               // read limit in bytes; 0 = none
	closed int
	exec   func(sandbox.ExecRequest) *sandbox.ExecResult
}

func (f *fakeSession) Exec(ctx context.Context, r sandbox.ExecRequest) (*sandbox.ExecResult, error) {
	if f.exec == nil {
		return nil, &sandbox.Error{Code: sandbox.CodeUnsupported, Message: "no exec in the fake"}
	}
	return f.exec(r), nil
}

func (f *fakeSession) clean(p string) (string, error) {
	c := path.Clean(p)
	if path.IsAbs(c) || c == ".." || strings.HasPrefix(c, "../") {
		d := &events.Event{Kind: events.Deny, Layer: events.LayerPolicy, Op: "file", Target: p, Rule: "policy.workspace.beneath",
			Detail: map[string]any{"reason": "path is outside the workspace"}}
		return "", &sandbox.Error{Code: sandbox.CodeDenied, Message: p + ": path is outside the workspace", Denials: []*events.Event{d}}
	}
	return c, nil
}

func (f *fakeSession) ReadFile(ctx context.Context, p string) ([]byte, bool, error) {
	c, err := f.clean(p)
	if err != nil {
		return nil, false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.files[c]
	if !ok {
		return nil, false, &sandbox.Error{Code: sandbox.CodeNotFound, Message: p + ": no such file"}
	}
	if f.limit > 0 && len(s) > f.limit {
		return []byte(s[:f.limit]), true, nil
	}
	return []byte(s), false, nil
}

func (f *fakeSession) WriteFile(ctx context.Context, p string, data []byte) error {
	c, err := f.clean(p)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[c] = string(data)
	return nil
}

func (f *fakeSession) ListDir(ctx context.Context, p string) ([]sandbox.FileInfo, error) {
	c, err := f.clean(p)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	seen := map[string]sandbox.FileInfo{}
	for name := range f.files {
		rel := name
		if c != "." {
			var ok bool
			if rel, ok = strings.CutPrefix(name, c+"/"); !ok {
				continue
			}
		}
		first, rest, isDir := strings.Cut(rel, "/")
		if isDir {
			seen[first] = sandbox.FileInfo{Name: first, Type: "dir"}
		} else if rest == "" {
			seen[first] = sandbox.FileInfo{Name: first, Type: "file"}
		}
	}
	var out []sandbox.FileInfo
	for _, fi := range seen {
		out = append(out, fi)
	}
	return out, nil
}

func (f *fakeSession) CallTimeout() time.Duration { return 10 * time.Second }

func (f *fakeSession) ID() string { return "fake" }

func (f *fakeSession) Close() error {
	f.mu.Lock()
	f.closed++
	f.mu.Unlock()
	return nil
}

func connect(t *testing.T, s *mcp.Server) *mcp.ClientSession {
	t.Helper()
	ct, st := mcp.NewInMemoryTransports()
	ctx := context.Background()
	ss, err := s.Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close(); ss.Wait() })
	return cs
}

type callResult struct {
	isError    bool
	text       string
	structured map[string]any
}

func call(t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any) (callResult, error) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		return callResult{}, err
	}
	var text []string
	for _, c := range res.Content {
		text = append(text, c.(*mcp.TextContent).Text)
	}
	r := callResult{isError: res.IsError, text: strings.Join(text, "\n")}
	b, _ := json.Marshal(res.StructuredContent)
	json.Unmarshal(b, &r.structured)
	if _, ok := r.structured["denials"]; !ok {
		t.Errorf("%s: structured content without denials: %s", tool, b)
	}
	return r, nil
}

func mustCall(t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any) callResult {
	t.Helper()
	r, err := call(t, cs, tool, args)
	if err != nil {
		t.Fatalf("%s %v: %v", tool, args, err)
	}
	return r
}

func TestEditFile(t *testing.T) {
	f := &fakeSession{files: map[string]string{"a.txt": "one two two\n", "big": strings.Repeat("x", 100)}, limit: 50}
	cs := connect(t, New(f, Options{}))

	r := mustCall(t, cs, "edit_file", map[string]any{"path": "a.txt", "old_string": "one", "new_string": "1"})
	if r.isError || f.files["a.txt"] != "1 two two\n" || r.structured["replacements"] != float64(1) {
		t.Errorf("unique edit: %+v, file %q", r, f.files["a.txt"])
	}
	r = mustCall(t, cs, "edit_file", map[string]any{"path": "a.txt", "old_string": "two", "new_string": "2"})
	if !r.isError || !strings.Contains(r.text, "occurs 2 times") || f.files["a.txt"] != "1 two two\n" {
		t.Errorf("ambiguous edit: %+v, file %q", r, f.files["a.txt"])
	}
	r = mustCall(t, cs, "edit_file", map[string]any{"path": "a.txt", "old_string": "three", "new_string": "3"})
	if !r.isError || !strings.Contains(r.text, "not found") || f.files["a.txt"] != "1 two two\n" {
		t.Errorf("missing text: %+v, file %q", r, f.files["a.txt"])
	}
	r = mustCall(t, cs, "edit_file", map[string]any{"path": "a.txt", "old_string": "two", "new_string": "2", "replace_all": true})
	if r.isError || f.files["a.txt"] != "1 2 2\n" || r.structured["replacements"] != float64(2) {
		t.Errorf("replace_all: %+v, file %q", r, f.files["a.txt"])
	}
	r = mustCall(t, cs, "edit_file", map[string]any{"path": "big", "old_string": "x", "new_string": "y", "replace_all": true})
	if !r.isError || f.files["big"] != strings.Repeat("x", 100) {
		t.Errorf("a file past the read limit was rewritten: %+v", r)
	}
	r = mustCall(t, cs, "edit_file", map[string]any{"path": "../x", "old_string": "a", "new_string": "b"})
	if !r.isError || len(r.structured["denials"].([]any)) != 1 || !strings.Contains(r.text, "policy.workspace.beneath") {
		t.Errorf("outside the workspace: %+v", r)
	}
	for _, args := range []map[string]any{
		{"path": "a.txt", "old_string": "", "new_string": "x"},
		{"path": "a.txt", "old_string": "1", "new_string": "1"},
		{"path": "a.txt", "old_string": "1"},
	} {
		if _, err := call(t, cs, "edit_file", args); !isInvalidParams(err) {
			t.Errorf("%v: %v, want invalid params", args, err)
		}
	}
}

func isInvalidParams(err error) bool {
	e, ok := errors.AsType[*jsonrpc.Error](err)
	return ok && e.Code == jsonrpc.CodeInvalidParams
}

func TestReadFileRanges(t *testing.T) {
	f := &fakeSession{files: map[string]string{"f": "l1\nl2\nl3\nl4", "bin": "\xff\xfe", "empty": ""}}
	cs := connect(t, New(f, Options{MaxOutput: 7}))
	cases := []struct {
		args  map[string]any
		text  string
		error bool
	}{
		{map[string]any{"path": "f", "start_line": 2, "end_line": 3}, "l2\nl3\n", false},
		{map[string]any{"path": "f", "start_line": 4}, "l4", false},
		{map[string]any{"path": "f"}, "l1\nl2\n\n[cordon: Lines 1-2 of 4 shown: the rest is past the output cap; read on with start_line 3.]", false},
		{map[string]any{"path": "f", "start_line": 9}, "\n[cordon: f has 4 lines; start_line 9 is past its end.]", false},
		{map[string]any{"path": "empty"}, "", false},
		{map[string]any{"path": "bin"}, "bin is not UTF-8 text (2 bytes); inspect it with bash (for example xxd or file).", true},
		{map[string]any{"path": "nope"}, "nope: no such file", true},
	}
	for _, c := range cases {
		r := mustCall(t, cs, "read_file", c.args)
		if r.text != c.text || r.isError != c.error {
			t.Errorf("%v: error=%v text %q, want error=%v %q", c.args, r.isError, r.text, c.error, c.text)
		}
	}
	for _, args := range []map[string]any{
		{"path": "f", "start_line": 3, "end_line": 2},
		{"path": "f", "start_line": 0},
		{"path": "f", "start_line": 1.5},
		{"path": "f", "start_line": "1"},
		{"path": ""},
		{"path": "f", "extra": true},
		{},
	} {
		if _, err := call(t, cs, "read_file", args); !isInvalidParams(err) {
			t.Errorf("%v: %v, want invalid params", args, err)
		}
	}
}

func TestListFiles(t *testing.T) {
	f := &fakeSession{files: map[string]string{
		"main.go": "", "README.md": "", "cmd/cordon/main.go": "", "cmd/cordon/run.go": "", "cmd/x.txt": "",
		".git/config": "", ".github/ci.go": "", "a/b/c/d.go": "",
	}}
	cs := connect(t, New(f, Options{}))
	cases := []struct {
		args map[string]any
		want string
	}{
		{map[string]any{}, ".git/\n.github/\nREADME.md\na/\ncmd/\nmain.go"},
		{map[string]any{"path": "cmd"}, "cmd/cordon/\ncmd/x.txt"},
		{map[string]any{"pattern": "**/*.go"}, "a/b/c/d.go\ncmd/cordon/main.go\ncmd/cordon/run.go\nmain.go"},
		{map[string]any{"pattern": "*.go"}, "main.go"},
		{map[string]any{"pattern": "cmd/*/r?n.go"}, "cmd/cordon/run.go"},
		{map[string]any{"pattern": ".github/**"}, ".github/\n.github/ci.go"},
		{map[string]any{"pattern": "**/cordon"}, "cmd/cordon/"},
		{map[string]any{"path": "cmd", "pattern": "**"}, "cmd/cordon/\ncmd/cordon/main.go\ncmd/cordon/run.go\ncmd/x.txt"},
		{map[string]any{"pattern": "*.rs"}, "(no matches)"},
	}
	for _, c := range cases {
		if r := mustCall(t, cs, "list_files", c.args); r.isError || r.text != c.want {
			t.Errorf("%v: error=%v\n%s\nwant\n%s", c.args, r.isError, r.text, c.want)
		}
	}
	if r := mustCall(t, cs, "list_files", map[string]any{"path": "/etc"}); !r.isError || !strings.Contains(r.text, "outside the workspace") {
		t.Errorf("outside the workspace: %+v", r)
	}
	for _, p := range []string{"/abs/*", "../*", "a**", "[", ""} {
		if p == "" {
			continue
		}
		if _, err := call(t, cs, "list_files", map[string]any{"pattern": p}); !isInvalidParams(err) {
			t.Errorf("pattern %q: %v, want invalid params", p, err)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	cases := []struct {
		pat, name     string
		match, prefix bool
	}{
		{"**/*.go", "a.go", true, true},
		{"**/*.go", "a/b/c.go", true, true},
		{"**/*.go", "a/b", false, true},
		{"**/*.go", ".git/x.go", false, false},
		{"*.go", "a/b.go", false, false},
		{"*.go", "a", false, false},
		{"a/**/b", "a/b", true, true},
		{"a/**/b", "a/x/y/b", true, true},
		{"a/**/b", "c", false, false},
		{"a/*", "a", false, true},
		{"**", "x/y", true, true},
		{".*", ".env", true, false},
	}
	for _, c := range cases {
		pat, err := parseGlob(c.pat)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.Split(c.name, "/")
		if got := globMatch(pat, name, false); got != c.match {
			t.Errorf("match(%q, %q) = %v", c.pat, c.name, got)
		}
		if got := globMatch(pat, name, true); got != c.prefix {
			t.Errorf("prefix(%q, %q) = %v", c.pat, c.name, got)
		}
	}
	// ** is linear, not exponential: this returns at once.
	pat, _ := parseGlob(strings.Repeat("**/a/", 50) + "b")
	if globMatch(pat, strings.Split(strings.Repeat("a/", 200)+"c", "/"), false) {
		t.Error("matched")
	}
}

// TestPerConnection: each connection gets its own session, opened at
// its first tool call and closed when it ends; Close closes the rest.
func TestPerConnection(t *testing.T) {
	var mu sync.Mutex
	var opened []*fakeSession
	pc := NewPerConnection(func(context.Context) (Session, error) {
		f := &fakeSession{files: map[string]string{}}
		mu.Lock()
		opened = append(opened, f)
		mu.Unlock()
		return f, nil
	}, Options{})
	a, b := connect(t, pc.Server), connect(t, pc.Server)
	mustCall(t, a, "write_file", map[string]any{"path": "x", "content": "from a"})
	if r := mustCall(t, b, "read_file", map[string]any{"path": "x"}); !r.isError {
		t.Errorf("connection b sees connection a's file: %+v", r)
	}
	if r := mustCall(t, a, "read_file", map[string]any{"path": "x"}); r.text != "from a" {
		t.Errorf("connection a lost its file: %+v", r)
	}
	if len(opened) != 2 {
		t.Fatalf("%d sessions opened for two connections", len(opened))
	}
	a.Close()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		opened[0].mu.Lock()
		n := opened[0].closed
		opened[0].mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if opened[0].closed != 1 || opened[1].closed != 0 {
		t.Errorf("after a closed: closes %d %d", opened[0].closed, opened[1].closed)
	}
	pc.Close()
	if opened[1].closed != 1 {
		t.Errorf("Close left b's session open")
	}
	if r := mustCall(t, b, "read_file", map[string]any{"path": "x"}); !r.isError || !strings.Contains(r.text, "shutting down") {
		t.Errorf("a call after Close: %+v", r)
	}
}

// TestStdioFilter: lines that are not one JSON-RPC message get an error
// each and the connection goes on.
func TestStdioFilter(t *testing.T) {
	f := &fakeSession{files: map[string]string{"a": "A"}}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- New(f, Options{}).Run(context.Background(), &StdioTransport{In: inR, Out: outW, MaxMessage: 1 << 10})
		outW.Close()
	}()
	out := bufio.NewReader(outR)
	send := func(s string) { inW.Write([]byte(s + "\n")) }
	recv := func() map[string]any {
		line, err := out.ReadBytes('\n')
		if err != nil {
			t.Fatalf("reading the server: %v", err)
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		return m
	}
	code := func(m map[string]any) float64 {
		e, _ := m["error"].(map[string]any)
		return e["code"].(float64)
	}
	send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	if m := recv(); m["result"] == nil {
		t.Fatalf("initialize: %v", m)
	}
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	for _, c := range []struct {
		line string
		code float64
		id   any
	}{
		{`{"jsonrpc":"2.0","id":2,"method":`, jsonrpc.CodeParseError, nil},
		{`{"jsonrpc":"2.0"} {"id":3}`, jsonrpc.CodeParseError, nil},
		{`[{"jsonrpc":"2.0","id":4,"method":"tools/list"}]`, jsonrpc.CodeInvalidRequest, nil},
		{`"hello"`, jsonrpc.CodeInvalidRequest, nil},
		{`{"jsonrpc":"1.0","id":5,"method":"tools/list"}`, jsonrpc.CodeInvalidRequest, float64(5)},
		{`{"jsonrpc":"2.0","id":{"x":1},"method":"tools/list"}`, jsonrpc.CodeInvalidRequest, nil},
		{`{"jsonrpc":"2.0","id":"s","method":` + `"` + strings.Repeat("x", 2000) + `"}`, jsonrpc.CodeInvalidRequest, nil},
	} {
		send(c.line)
		m := recv()
		if code(m) != c.code || m["id"] != c.id {
			t.Errorf("%.60q: %v, want code %v id %v", c.line, m, c.code, c.id)
		}
	}
	send("   ")
	send(`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"a"}}}`)
	if m := recv(); m["id"] != float64(9) || !bytes.Contains(mustJSON(m), []byte(`"text":"A"`)) {
		t.Errorf("after the bad lines: %v", m)
	}
	inW.Close()
	if err := <-done; err != nil && !errors.Is(err, mcp.ErrConnectionClosed) {
		t.Errorf("server: %v", err)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func TestToolList(t *testing.T) {
	cs := connect(t, New(&fakeSession{}, Options{}))
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
		if len(tool.Description) < 100 || tool.InputSchema == nil {
			t.Errorf("%s: description %q, schema %v", tool.Name, tool.Description, tool.InputSchema)
		}
	}
	sort.Strings(names)
	if got := strings.Join(names, " "); got != "bash edit_file list_files read_file write_file" {
		t.Errorf("tools %s", got)
	}
}

// TestBashResult: when a result is an error, and what its text says.
func TestBashResult(t *testing.T) {
	deny := &events.Event{Kind: events.Deny, Layer: events.LayerSeccomp, Op: "mount", Target: "mount", Rule: "seccomp.deny.mount"}
	cut := &events.Event{Kind: events.Limit, Layer: events.LayerLimit, Op: "exec", Target: "output", Rule: "limits.output",
		Detail: map[string]any{"limit": "output", "value": 10}}
	var got sandbox.ExecRequest
	var next *sandbox.ExecResult
	f := &fakeSession{exec: func(r sandbox.ExecRequest) *sandbox.ExecResult {
		got = r
		res := *next
		res.Timing = map[string]int64{}
		return &res
	}}
	cs := connect(t, New(f, Options{MaxOutput: 1234}))
	cases := []struct {
		name  string
		res   sandbox.ExecResult
		error bool
		text  []string
	}{
		{"success", sandbox.ExecResult{Stdout: []byte("out\n")}, false, []string{"exit code 0\n--- stdout ---\nout"}},
		{"plain failure", sandbox.ExecResult{ExitCode: 1, Stderr: []byte("no match")}, false, []string{"exit code 1", "--- stderr ---\nno match"}},
		{"refused and failed", sandbox.ExecResult{ExitCode: 32, Denials: []*events.Event{deny}}, true,
			[]string{"exit code 32", "--- cordon ---\ncordon refused the system call mount"}},
		{"refused, yet succeeded", sandbox.ExecResult{Denials: []*events.Event{deny}}, false, []string{"cordon refused"}},
		{"output cut", sandbox.ExecResult{ExitCode: 141, Truncated: true, Denials: []*events.Event{cut}}, false,
			[]string{"output cut at the limit", "output limit of 10 bytes"}},
		{"binary output", sandbox.ExecResult{Stdout: []byte("a\xffb")}, false, []string{"a\uFFFDb"}},
	}
	for _, c := range cases {
		next = &c.res
		r := mustCall(t, cs, "bash", map[string]any{"command": "x"})
		if r.isError != c.error {
			t.Errorf("%s: isError %v", c.name, r.isError)
		}
		for _, want := range c.text {
			if !strings.Contains(r.text, want) {
				t.Errorf("%s: text %q lacks %q", c.name, r.text, want)
			}
		}
		if len(r.structured["denials"].([]any)) != len(c.res.Denials) {
			t.Errorf("%s: structured %v", c.name, r.structured)
		}
	}
	if got.MaxOutput != 1234 || got.Timeout != 0 {
		t.Errorf("request %+v", got)
	}

	// timeout_s shortens the call timeout (10s in the fake), never
	// extends it.
	next = &sandbox.ExecResult{}
	mustCall(t, cs, "bash", map[string]any{"command": "x", "timeout_s": 2.5})
	if got.Timeout != 2500*time.Millisecond {
		t.Errorf("timeout_s 2.5: %v", got.Timeout)
	}
	r := mustCall(t, cs, "bash", map[string]any{"command": "x", "timeout_s": 3600})
	if got.Timeout != 10*time.Second || !strings.Contains(r.text, "above the session's call timeout") {
		t.Errorf("timeout_s 3600: %v, %q", got.Timeout, r.text)
	}
}
