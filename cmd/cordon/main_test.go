package main

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cordon-sandbox/cordon/sandbox"
)

// TestMain lets the test binary act as the cordon binary: its session
// stages re-execute it, and cordon() runs it as the CLI.
func TestMain(m *testing.M) {
	sandbox.Init()
	if os.Getenv("CORDON_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type outcome struct {
	code           int
	stdout, stderr string
}

func cordon(t *testing.T, dir, stdin string, args ...string) outcome {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CORDON_TEST_MAIN=1")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return outcome{code, out.String(), errb.String()}
}

func workspace(t *testing.T) string {
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	return dir
}

func TestRunExitStatus(t *testing.T) {
	ws := workspace(t)
	cases := []struct {
		cmd  string
		code int
	}{
		{"true", 0},
		{"exit 3", 3},
		{"kill -TERM $$", 128 + int(syscall.SIGTERM)},
		{"touch /etc/cordon-cli-test", 1},
	}
	for _, c := range cases {
		if o := cordon(t, ws, "", "run", "--", "sh", "-c", c.cmd); o.code != c.code {
			t.Errorf("%q: exit %d, want %d (stderr %q)", c.cmd, o.code, c.code, o.stderr)
		}
	}
	if _, err := os.Stat("/etc/cordon-cli-test"); err == nil {
		t.Fatal("the command wrote /etc on the host")
	}
}

// TestRunLeavesNothing: whatever a command leaves running is gone when
// cordon run returns; the control sees the same process alive while the
// session still runs.
func TestRunLeavesNothing(t *testing.T) {
	ws := workspace(t)
	marker := fmt.Sprintf("cordon-cli-marker-%d", time.Now().UnixNano())
	bg := fmt.Sprintf("setsid bash -c 'exec -a %s sleep 1000' </dev/null >/dev/null 2>&1 &", marker)
	o := cordon(t, ws, "", "run", "--", "sh", "-c", bg+" sleep 0.3; ps -eo args | grep -c '^"+marker+"'")
	if strings.TrimSpace(o.stdout) != "1" {
		t.Fatalf("control: the background process was not running during the call: %+v", o)
	}
	if o := cordon(t, ws, "", "run", "--", "sh", "-c", bg); o.code != 0 {
		t.Fatalf("%+v", o)
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, d := range dirs {
		if b, err := os.ReadFile(d); err == nil && bytes.Contains(b, []byte(marker)) {
			t.Errorf("%s outlived cordon run: %q", d, b)
		}
	}
}

// TestRunStdinStays: a caller whose stdin pipe stays open must not hang
// cordon run when the command does not read it.
func TestRunStdinStays(t *testing.T) {
	cmd := exec.Command(os.Args[0], "run", "--", "echo", "done")
	cmd.Dir = workspace(t)
	cmd.Env = append(os.Environ(), "CORDON_TEST_MAIN=1")
	w, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write([]byte("partial input, never closed"))
	done := make(chan error, 1)
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil || out.String() != "done\n" {
			t.Fatalf("%v %q", err, out.String())
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("cordon run hung on an open stdin")
	}
}

// TestHostDeathEndsSession: when the process that opened a session dies
// (SIGKILL, no cleanup), the session dies with it.
func TestHostDeathEndsSession(t *testing.T) {
	ws := workspace(t)
	marker := fmt.Sprintf("cordon-orphan-marker-%d", time.Now().UnixNano())
	evf := filepath.Join(ws, "events.jsonl")
	cmd := exec.Command(os.Args[0], "run", "--events", evf, "--", "sh", "-c",
		fmt.Sprintf("setsid bash -c 'exec -a %s sleep 1000' </dev/null >/dev/null 2>&1 & sleep 1000", marker))
	cmd.Dir = ws
	cmd.Env = append(os.Environ(), "CORDON_TEST_MAIN=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	alive := func() int {
		n := 0
		dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, d := range dirs {
			// argv[0] is the marker only for the process exec -a made;
			// cordon's and the shell's arguments merely contain it.
			if b, err := os.ReadFile(d); err == nil && bytes.HasPrefix(b, []byte(marker)) {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(10 * time.Second)
	for alive() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if alive() == 0 {
		cmd.Process.Kill()
		t.Fatal("control: the session's process never ran")
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline = time.Now().Add(5 * time.Second)
	for alive() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := alive(); n > 0 {
		t.Errorf("%d processes outlived the killed host", n)
	}
	// A killed host cannot remove its session's cgroup (documented);
	// the test removes it so the machine is left as it was.
	b, _ := os.ReadFile(evf)
	var start struct{ Session string }
	json.Unmarshal(bytes.SplitN(b, []byte("\n"), 2)[0], &start)
	if start.Session != "" {
		for _, c := range []string{"memory", "pids"} {
			os.Remove(filepath.Join("/sys/fs/cgroup", c, "cordon", start.Session))
			os.Remove(filepath.Join("/sys/fs/cgroup", c, "cordon")) // fails if in use
		}
	}
}

// TestRunStdinUnread: more stdin than the command reads (it exits
// first) must not wedge the session's stdin pipe.
func TestRunStdinUnread(t *testing.T) {
	big := strings.Repeat("y\n", 10<<20)
	done := make(chan outcome, 1)
	go func() { done <- cordon(t, workspace(t), big, "run", "--", "sh", "-c", "sleep 1; head -c 4") }()
	select {
	case o := <-done:
		if o.code != 0 || o.stdout != "y\ny\n" {
			t.Errorf("%+v", o)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("cordon run hung on stdin the command did not read")
	}
}

func TestRunPassesThrough(t *testing.T) {
	ws := workspace(t)
	o := cordon(t, ws, "from stdin\n", "run", "--", "sh", "-c", "cat; echo to-stderr >&2; echo made > f")
	if o.code != 0 || o.stdout != "from stdin\n" || !strings.Contains(o.stderr, "to-stderr") {
		t.Fatalf("got %+v", o)
	}
	if b, _ := os.ReadFile(filepath.Join(ws, "f")); string(b) != "made\n" {
		t.Fatalf("workspace file: %q", b)
	}
}

func TestRunJSON(t *testing.T) {
	ws := workspace(t)
	o := cordon(t, ws, "", "run", "--json", "--", "sh", "-c", `echo out; printf 'bad\377' >&2; unshare -U true; exit 4`)
	if o.code != 4 {
		t.Fatalf("exit %d: %+v", o.code, o)
	}
	if n := strings.Count(strings.TrimSpace(o.stdout), "\n"); n != 0 {
		t.Fatalf("stdout has %d extra lines: %q", n, o.stdout)
	}
	var r struct {
		Call         string            `json:"call"`
		ExitCode     int               `json:"exit_code"`
		Signal       *string           `json:"signal"`
		Stdout       string            `json:"stdout"`
		Stderr       string            `json:"stderr"`
		StderrBase64 string            `json:"stderr_base64"`
		Truncated    *bool             `json:"truncated"`
		TimedOut     *bool             `json:"timed_out"`
		Denials      []json.RawMessage `json:"denials"`
		Explanation  string            `json:"explanation"`
		Timing       map[string]int64  `json:"timing"`
	}
	dec := json.NewDecoder(strings.NewReader(o.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("decoding %q: %v", o.stdout, err)
	}
	if r.Call == "" || r.ExitCode != 4 || r.Signal != nil || r.Stdout != "out\n" || r.Truncated == nil || r.TimedOut == nil || r.Timing["total_us"] <= 0 {
		t.Errorf("result %+v", r)
	}
	raw, err := base64.StdEncoding.DecodeString(r.StderrBase64)
	if err != nil || !bytes.HasPrefix(raw, []byte("bad\377")) || !strings.HasPrefix(r.Stderr, "bad\uFFFD") {
		t.Errorf("invalid UTF-8 output: stderr %q base64 %q", r.Stderr, r.StderrBase64)
	}
	if len(r.Denials) != 1 || !strings.Contains(string(r.Denials[0]), `"layer":"seccomp"`) {
		t.Errorf("denials %s", r.Denials)
	}
	if !strings.Contains(r.Explanation, "seccomp.deny.unshare_newns") {
		t.Errorf("explanation %q", r.Explanation)
	}
	o = cordon(t, ws, "", "run", "--json", "--timeout", "200ms", "--", "sleep", "5")
	if o.code != 137 || !strings.Contains(o.stdout, `"timed_out":true`) || !strings.Contains(o.stdout, `"signal":"SIGKILL"`) {
		t.Errorf("timeout: %+v", o)
	}
}

func TestRunOwnErrors(t *testing.T) {
	ws := workspace(t)
	bad := filepath.Join(ws, "bad.yaml")
	os.WriteFile(bad, []byte("version: 1\nlimits:\n  memroy: 1GiB\n"), 0o644)
	for _, args := range [][]string{
		{"run", "--workspace", "/nonexistent/cordon", "--", "true"},
		{"run", "--policy", bad, "--", "true"},
		{"run", "--policy", "/nonexistent.yaml", "--", "true"},
		{"run", "--bogus-flag", "--", "true"},
	} {
		o := cordon(t, ws, "", args...)
		if o.code != exitCordon || strings.Count(o.stderr, "\n") != 1 || !strings.HasPrefix(o.stderr, "cordon: ") {
			t.Errorf("%v: exit %d, stderr %q", args, o.code, o.stderr)
		}
	}
	if o := cordon(t, ws, "", "run", "--policy", bad, "--", "true"); !strings.Contains(o.stderr, "bad.yaml:3:") {
		t.Errorf("policy error does not name the line: %q", o.stderr)
	}
}

// TestRunBareView: a policy that shows no host path cannot run a
// dynamically linked cordon's executor; the error says what is missing.
// Control: a statically linked build starts the same session.
func TestRunBareView(t *testing.T) {
	ws := workspace(t)
	bare := filepath.Join(ws, "bare.yaml")
	os.WriteFile(bare, []byte("version: 1\n"), 0o644)
	exe, err := elf.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	dynamic := false
	for _, p := range exe.Progs {
		dynamic = dynamic || p.Type == elf.PT_INTERP
	}
	exe.Close()
	o := cordon(t, ws, "", "run", "--policy", bare, "--", "/proc/self/exe", "--help")
	switch {
	case dynamic && (o.code != exitCordon || !strings.Contains(o.stderr, "filesystem.read must include")):
		t.Errorf("a dynamically linked cordon under a bare view: exit %d, stderr %q", o.code, o.stderr)
	case !dynamic && o.code == exitCordon:
		t.Errorf("a statically linked cordon under a bare view: %q", o.stderr)
	}
}

func TestPolicyCommands(t *testing.T) {
	ws := workspace(t)
	o := cordon(t, ws, "", "policy", "default")
	if o.code != 0 || !strings.Contains(o.stdout, "version: 1") {
		t.Fatalf("policy default: %+v", o)
	}
	good := filepath.Join(ws, "good.yaml")
	os.WriteFile(good, []byte(o.stdout), 0o644)
	if o := cordon(t, ws, "", "policy", "check", good); o.code != 0 {
		t.Errorf("checking the default policy: %+v", o)
	}
	bad := filepath.Join(ws, "bad.yaml")
	os.WriteFile(bad, []byte("version: 1\nlimits:\n  memory: lots\n"), 0o644)
	if o := cordon(t, ws, "", "policy", "check", bad); o.code != 1 || !strings.Contains(o.stderr, ":3:") {
		t.Errorf("checking a bad policy: %+v", o)
	}
}

func TestRunEventsFile(t *testing.T) {
	ws := workspace(t)
	file := filepath.Join(ws, "events.jsonl")
	if o := cordon(t, ws, "", "run", "--events", file, "--", "sh", "-c", "unshare -U true"); o.code != 1 {
		t.Fatalf("%+v", o)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var kinds []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e struct {
			V    int    `json:"v"`
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.V != 1 {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		kinds = append(kinds, e.Kind)
	}
	want := "session.start call.start deny call.end session.stop"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("events %q, want %q", got, want)
	}
}
