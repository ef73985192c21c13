package sandbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/policy"
	"github.com/cordon-sandbox/cordon/sandbox"
)

func TestMain(m *testing.M) {
	sandbox.Init()
	os.Exit(m.Run())
}

// workspace makes a workspace the session user can use: tests run as
// root and, re-executed, as uid 65534.
func workspace(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func open(t *testing.T, ws string, pol *policy.Policy) (*sandbox.Session, *events.Subscription) {
	t.Helper()
	bus := events.NewBus()
	sub := bus.Subscribe(4096)
	s, err := sandbox.Open(context.Background(), sandbox.Options{Workspace: ws, Policy: pol, Bus: bus})
	if err != nil {
		t.Fatalf("opening session: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("closing session: %v", err)
		}
	})
	return s, sub
}

func sh(t *testing.T, s *sandbox.Session, command string) *sandbox.ExecResult {
	t.Helper()
	res, err := s.Exec(context.Background(), sandbox.ExecRequest{Command: command, Timeout: time.Minute})
	if err != nil {
		t.Fatalf("exec %q: %v", command, err)
	}
	return res
}

func denial(res *sandbox.ExecResult, layer events.Layer, op string) *events.Event {
	for _, d := range res.Denials {
		if d.Layer == layer && d.Op == op {
			return d
		}
	}
	return nil
}

// TestPosture reads from inside a live session what its processes really
// have, so a change that drops a layer fails here.
func TestPosture(t *testing.T) {
	s, _ := open(t, workspace(t), nil)
	status := string(sh(t, s, "cat /proc/self/status").Stdout)
	for _, want := range []string{"NoNewPrivs:\t1", "Seccomp:\t2", "CapEff:\t0000000000000000", "CapPrm:\t0000000000000000", "CapBnd:\t0000000000000000", "CapAmb:\t0000000000000000"} {
		if !strings.Contains(status, want) {
			t.Errorf("/proc/self/status lacks %q:\n%s", want, status)
		}
	}
	uidMap := sh(t, s, "cat /proc/self/uid_map").Stdout
	for _, line := range strings.Split(strings.TrimSpace(string(uidMap)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[1] == "0" {
			t.Errorf("uid_map maps to host uid 0 or is malformed: %q", line)
		}
	}
	if os.Geteuid() != 0 && !strings.Contains(string(uidMap), fmt.Sprint(os.Geteuid())) {
		t.Errorf("rootless uid_map %q does not map to the caller's uid %d", uidMap, os.Geteuid())
	}
	// The supervisor keeps only CAP_SYS_PTRACE (in the session's user
	// namespace, to read connect() addresses) and, when the executor
	// runs as another uid (root-started), CAP_SETUID and CAP_SETGID to
	// start a new executor for a grant, once the session is set up; its
	// bounding set is emptied just after ready: allow for that.
	caps := "0000000000080000"
	if os.Geteuid() == 0 {
		caps = "00000000000800c0"
	}
	want := "CapPrm:\t" + caps + "\nCapEff:\t" + caps + "\nCapBnd:\t0000000000000000\n"
	var sup string
	for i := 0; i < 50; i++ {
		if sup = string(sh(t, s, "grep -E '^Cap(Eff|Prm|Bnd)' /proc/1/status").Stdout); sup == want {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if sup != want {
		t.Errorf("supervisor capabilities:\n%s\nwant\n%s", sup, want)
	}
	// PID 1 is the supervisor, and no host process is visible.
	cmdline := sh(t, s, "tr '\\0' ' ' < /proc/1/cmdline").Stdout
	if !strings.Contains(string(cmdline), "__cordon_supervisor") {
		t.Errorf("PID 1 is %q, want the supervisor", cmdline)
	}
	pids := strings.Fields(string(sh(t, s, "ls /proc | grep -E '^[0-9]+$'").Stdout))
	if len(pids) > 8 || len(pids) < 3 {
		t.Errorf("session sees %d processes (%v); want only its own few", len(pids), pids)
	}
	if r := sh(t, s, fmt.Sprintf("test -e /proc/%d", os.Getpid())); r.ExitCode == 0 && os.Getpid() > 8 {
		t.Errorf("host test process %d visible in the session", os.Getpid())
	}
	// The trusted tier is opaque to the untrusted one: the supervisor
	// (PID 1) and the executor are not dumpable, so their environment,
	// descriptors, root and memory are out of reach; the control reads
	// the same files of the command's own process.
	// (A rootless session can list the numbers in /proc/1/fd, whose
	// owner is the session's root, but not follow them: documented.)
	for _, f := range []string{"environ", "mem", "exe", "fd/0", "root", "cwd"} {
		open := "(exec 3< /proc/%s/" + f + ") 2>/dev/null && echo open"
		if f == "root" || f == "cwd" {
			open = "ls /proc/%s/" + f + "/ >/dev/null 2>&1 && echo open"
		}
		for _, who := range []string{"1", "$PPID"} {
			if r := sh(t, s, fmt.Sprintf(open, who)); strings.Contains(string(r.Stdout), "open") {
				t.Errorf("/proc/%s/%s of the trusted tier can be opened", who, f)
			}
		}
		if r := sh(t, s, fmt.Sprintf(open, "self")); !strings.Contains(string(r.Stdout), "open") {
			t.Errorf("control: /proc/self/%s cannot be opened: %q", f, r.Stderr)
		}
	}
	// Namespaces differ from the host's.
	for _, ns := range []string{"mnt", "pid", "net", "ipc", "uts", "user", "cgroup"} {
		host, err := os.Readlink("/proc/self/ns/" + ns)
		if err != nil {
			t.Fatal(err)
		}
		in := strings.TrimSpace(string(sh(t, s, "readlink /proc/self/ns/"+ns).Stdout))
		if in == "" || in == host {
			t.Errorf("namespace %s: session %q, host %q", ns, in, host)
		}
	}
	// Only loopback, and it is up.
	ifaces := strings.Fields(string(sh(t, s, "ls /sys/class/net 2>/dev/null || awk -F: 'NR>2{print $1}' /proc/net/dev").Stdout))
	if len(ifaces) != 1 || strings.TrimSpace(ifaces[0]) != "lo" {
		t.Errorf("interfaces %v, want only lo", ifaces)
	}
	// No host mount leaks into the view: no old root, no /root, no host home.
	mounts := string(sh(t, s, "cat /proc/self/mountinfo").Stdout)
	for _, bad := range []string{"oldroot", "newroot", " /root ", " /sys "} {
		if strings.Contains(mounts, bad) {
			t.Errorf("mountinfo shows %q:\n%s", bad, mounts)
		}
	}
	if r := sh(t, s, "ls -d /root /home/* /run 2>/dev/null"); strings.TrimSpace(string(r.Stdout)) != "/home/cordon" {
		t.Errorf("host directories visible: %q", r.Stdout)
	}
	// A fd leak from the host would show here: only 0, 1, 2 (and ls's own).
	fds := strings.Fields(string(sh(t, s, "ls /proc/self/fd").Stdout))
	if len(fds) > 4 {
		t.Errorf("command inherited descriptors: %v", fds)
	}
	env := string(sh(t, s, "env").Stdout)
	if strings.Contains(env, "GOPATH") || strings.Contains(env, "GOCACHE") && !strings.Contains(env, "/home/cordon") {
		t.Errorf("host environment leaked:\n%s", env)
	}
}

// probe makes one system call from Python and prints {"ret", "errno"}, so
// the same probe runs inside a session and, as the positive control, on
// the host.
const probe = `
import ctypes, json, os, sys, socket, time
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(*a):
    r = libc.syscall(*[ctypes.c_long(x) for x in a])
    return r, ctypes.get_errno()
what = sys.argv[1]
if what == "keyctl":      # KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, create
    r, e = sc(250, 0, -3, 1)
elif what == "bpf":       # BPF_MAP_CREATE with no attributes
    r, e = sc(321, 0, 0, 0)
elif what == "unshare":   # CLONE_NEWUSER
    r, e = sc(272, 0x10000000)
elif what == "ptrace":    # PTRACE_ATTACH to sys.argv[2] (or a child of ours)
    if len(sys.argv) > 2:
        pid = int(sys.argv[2])
    else:
        pid = os.fork()
        if pid == 0:
            time.sleep(5); os._exit(0)
    r, e = sc(101, 16, pid, 0, 0)
    if len(sys.argv) <= 2:
        os.kill(pid, 9)
elif what == "mount":     # a tmpfs on sys.argv[2]
    libc.mount.argtypes = [ctypes.c_char_p]*3 + [ctypes.c_ulong, ctypes.c_char_p]
    r = libc.mount(b"none", sys.argv[2].encode(), b"tmpfs", 0, None); e = ctypes.get_errno()
elif what == "connect":   # sys.argv[2] host, sys.argv[3] port
    s = socket.socket(socket.AF_INET6 if ":" in sys.argv[2] else socket.AF_INET); s.settimeout(3)
    try:
        s.connect((sys.argv[2], int(sys.argv[3]))); r, e = 0, 0
    except OSError as x:
        r, e = -1, x.errno or -2
print(json.dumps({"ret": r, "errno": e}))
`

type probeResult struct {
	Ret   int64 `json:"ret"`
	Errno int   `json:"errno"`
}

func parseProbe(t *testing.T, out []byte) probeResult {
	t.Helper()
	var p probeResult
	if err := json.Unmarshal(bytes.TrimSpace(out), &p); err != nil {
		t.Fatalf("probe printed %q: %v", out, err)
	}
	return p
}

// TestSeccompDenials runs each denied system call in a session (refused
// with EPERM and reported as a deny event naming the syscall) and, as its
// positive control, on the host, where the same probe reaches the kernel.
func TestSeccompDenials(t *testing.T) {
	ws := workspace(t)
	if err := os.WriteFile(filepath.Join(ws, "probe.py"), []byte(probe), 0o644); err != nil {
		t.Fatal(err)
	}
	s, _ := open(t, ws, nil)
	target := t.TempDir()
	os.Chmod(target, 0o755)
	cases := []struct {
		name, syscall string
		capability    string
		control       []string // the host command of the positive control
	}{
		{"keyctl", "keyctl", "", nil},
		{"bpf", "bpf", "", nil},
		{"unshare", "unshare", "", nil},
		{"ptrace 1", "ptrace", "proc.ptrace", []string{"ptrace"}},
		// The control mounts in a throwaway user and mount namespace,
		// never on the host itself.
		{"mount " + s.Workspace(), "mount", "", []string{"unshare", "-Urm", "python3", filepath.Join(ws, "probe.py"), "mount", target}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := sh(t, s, "python3 probe.py "+c.name)
			got := parseProbe(t, res.Stdout)
			if got.Ret != -1 || got.Errno != int(syscall.EPERM) {
				t.Errorf("in session: %+v (stderr %q), want EPERM", got, res.Stderr)
			}
			d := denial(res, events.LayerSeccomp, c.syscall)
			if d == nil {
				t.Fatalf("no seccomp deny event for %s; denials %v", c.syscall, res.Denials)
			}
			if d.Call != res.Call || d.Rule == "" {
				t.Errorf("deny event %+v: want call %s and a rule", d, res.Call)
			}
			if c.capability != "" && (d.Remedy == nil || d.Remedy.Capability != c.capability) {
				t.Errorf("deny event remedy %+v, want %s", d.Remedy, c.capability)
			}
			// Positive control: on the host the probe reaches the kernel
			// and the kernel (not a filter) answers.
			ctl := []string{"python3", filepath.Join(ws, "probe.py"), c.name}
			if len(c.control) == 1 {
				ctl[2] = c.control[0]
			} else if c.control != nil {
				ctl = c.control
			}
			out, err := exec.Command(ctl[0], ctl[1:]...).Output()
			if err != nil {
				t.Fatalf("control: %v", err)
			}
			if c := parseProbe(t, out); c == got {
				t.Errorf("control on the host got the same answer %+v: the probe proves nothing", c)
			}
		})
	}
}

// TestBoundary checks the filesystem and network boundary, each refused
// operation beside the same operation where it is allowed.
func TestBoundary(t *testing.T) {
	ws := workspace(t)
	if err := os.WriteFile(filepath.Join(ws, "probe.py"), []byte(probe), 0o644); err != nil {
		t.Fatal(err)
	}
	// A host directory the policy makes visible, holding a root-only
	// file and a public one. The unprivileged run gets root's from the
	// root run that started it.
	shared := os.Getenv("CORDON_TEST_ROOT_DIR")
	if shared == "" {
		if os.Geteuid() != 0 {
			t.Fatal("unprivileged run without CORDON_TEST_ROOT_DIR: start it from TestUnprivileged")
		}
		shared = rootOnlyDir(t)
	}
	pol := policy.Default()
	pol.Filesystem.Read = append(pol.Filesystem.Read, policy.Mount{Path: shared})
	s, _ := open(t, ws, pol)

	t.Run("root-only host file unreadable where visible", func(t *testing.T) {
		r := sh(t, s, "cat "+shared+"/private")
		if r.ExitCode == 0 || strings.Contains(string(r.Stdout), "secret-canary") {
			t.Errorf("root-only file readable: %q", r.Stdout)
		}
		if r := sh(t, s, "cat "+shared+"/public"); string(r.Stdout) != "public-data" {
			t.Errorf("control: public file in the same dir: exit %d %q %q", r.ExitCode, r.Stdout, r.Stderr)
		}
	})
	t.Run("hidden paths", func(t *testing.T) {
		// The same readable files, visible in one session and hidden by
		// policy in another: named directly, through a directory
		// symlink, and as a symlink (which hides what it points to).
		hidden := pol.Clone()
		hidden.Filesystem.Hide = append(hidden.Filesystem.Hide, shared+"/direct", shared+"/link/public", shared+"/plink")
		h, _ := open(t, workspace(t), hidden)
		for _, f := range []string{"direct", "real/public", "public"} {
			if r := sh(t, h, "cat "+shared+"/"+f+" 2>/dev/null | wc -c"); strings.TrimSpace(string(r.Stdout)) != "0" {
				t.Errorf("hidden %s has content: %q", f, r.Stdout)
			}
			if r := sh(t, s, "cat "+shared+"/"+f); string(r.Stdout) != "public-data" {
				t.Errorf("control: %s where it is not hidden: %q %q", f, r.Stdout, r.Stderr)
			}
		}
	})
	t.Run("write outside the workspace", func(t *testing.T) {
		for _, p := range []string{"/etc/cordon-test", "/usr/cordon-test", shared + "/new-" + fmt.Sprint(os.Geteuid()), "/cordon-test"} {
			if r := sh(t, s, "echo x > "+p); r.ExitCode == 0 {
				t.Errorf("wrote %s", p)
			}
			if _, err := os.Stat(p); err == nil {
				t.Errorf("%s appeared on the host", p)
			}
		}
		if r := sh(t, s, "echo x > inside && cat inside"); r.ExitCode != 0 || string(r.Stdout) != "x\n" {
			t.Errorf("control: write inside the workspace: %d %q", r.ExitCode, r.Stderr)
		}
		if b, err := os.ReadFile(filepath.Join(ws, "inside")); err != nil || string(b) != "x\n" {
			t.Errorf("control: file written in the session not on the host: %v", err)
		}
	})
	t.Run("symlink out of the workspace", func(t *testing.T) {
		os.Symlink(filepath.Join(shared, "public"), filepath.Join(ws, "out"))
		os.Symlink("/root", filepath.Join(ws, "rootlink"))
		os.WriteFile(filepath.Join(ws, "target"), []byte("in"), 0o644)
		os.Symlink("target", filepath.Join(ws, "in"))
		_, _, err := s.ReadFile(context.Background(), "out")
		var se *sandbox.Error
		if !errors.As(err, &se) || se.Code != sandbox.CodeDenied || len(se.Denials) != 1 {
			t.Errorf("read_file through a symlink out: %v", err)
		}
		if r := sh(t, s, "ls rootlink/"); r.ExitCode == 0 {
			t.Errorf("listed /root through a symlink: %q", r.Stdout)
		}
		if b, _, err := s.ReadFile(context.Background(), "in"); err != nil || string(b) != "in" {
			t.Errorf("control: symlink inside the workspace: %q %v", b, err)
		}
	})
	t.Run("network", func(t *testing.T) {
		// 192.0.2.1 is TEST-NET-1. The session has no route off
		// loopback; the supervisor refuses the connect with EPERM and
		// reports it before the kernel would say ENETUNREACH.
		r := sh(t, s, "python3 probe.py connect 192.0.2.1 9; python3 probe.py connect 2001:db8::1 9")
		for _, line := range strings.Split(strings.TrimSpace(string(r.Stdout)), "\n") {
			if got := parseProbe(t, []byte(line)); got.Ret == 0 || got.Errno != int(syscall.EPERM) {
				t.Errorf("non-loopback connect: %+v, want EPERM", got)
			}
		}
		for _, target := range []string{"192.0.2.1:9", "[2001:db8::1]:9"} {
			found := false
			for _, d := range r.Denials {
				found = found || (d.Kind == events.Deny && d.Layer == events.LayerNet && d.Target == target && d.Rule == "network.direct")
			}
			if !found {
				t.Errorf("no net deny event for %s in %+v", target, r.Denials)
			}
		}
		// Control: a listener inside the session is reachable on loopback.
		r = sh(t, s, "python3 -c 'import socket;s=socket.socket();s.bind((\"127.0.0.1\",0));s.listen();print(s.getsockname()[1])' & sleep 0.3; python3 -m http.server -b 127.0.0.1 18080 >/dev/null 2>&1 & sleep 0.5; python3 probe.py connect 127.0.0.1 18080; kill %2")
		if !strings.Contains(string(r.Stdout), `"ret": 0`) {
			t.Errorf("control: loopback connect inside the session: %q %q", r.Stdout, r.Stderr)
		}
	})
	t.Run("policy refusals", func(t *testing.T) {
		for _, p := range []string{"../x", "/etc/passwd", "a\x00b", strings.Repeat("a", 300), "/" + strings.Repeat("b/", 2100)} {
			_, _, err := s.ReadFile(context.Background(), p)
			var se *sandbox.Error
			if !errors.As(err, &se) || (se.Code != sandbox.CodeDenied && se.Code != sandbox.CodeInvalid) || len(se.Denials) == 0 {
				t.Errorf("read_file %.40q: %v", p, err)
			}
		}
		_, err := s.Exec(context.Background(), sandbox.ExecRequest{Command: "pwd", Cwd: "../.."})
		var se *sandbox.Error
		if !errors.As(err, &se) || se.Code != sandbox.CodeDenied || se.Denials[0].Layer != events.LayerPolicy {
			t.Errorf("cwd outside the workspace: %v", err)
		}
		os.Mkdir(filepath.Join(ws, "sub"), 0o755)
		r, err := s.Exec(context.Background(), sandbox.ExecRequest{Command: "pwd", Cwd: "sub"})
		if err != nil || strings.TrimSpace(string(r.Stdout)) != filepath.Join(s.Workspace(), "sub") {
			t.Errorf("control: cwd inside the workspace: %v %q", err, r.Stdout)
		}
	})
}

// TestFileTools exercises the file calls end to end.
func TestFileTools(t *testing.T) {
	ws := workspace(t)
	s, _ := open(t, ws, nil)
	ctx := context.Background()
	if err := s.WriteFile(ctx, "dir/sub/a.txt", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	data, trunc, err := s.ReadFile(ctx, filepath.Join(s.Workspace(), "dir/sub/a.txt"))
	if err != nil || trunc || string(data) != "hello" {
		t.Fatalf("read back: %q %v %v", data, trunc, err)
	}
	ents, err := s.ListDir(ctx, "dir/sub")
	if err != nil || len(ents) != 1 || ents[0].Name != "a.txt" || ents[0].Size != 5 {
		t.Fatalf("list: %+v %v", ents, err)
	}
	info, err := s.Stat(ctx, "dir")
	if err != nil || info.Type != "dir" {
		t.Fatalf("stat: %+v %v", info, err)
	}
	_, _, err = s.ReadFile(ctx, "missing")
	var se *sandbox.Error
	if !errors.As(err, &se) || se.Code != sandbox.CodeNotFound {
		t.Fatalf("missing file: %v", err)
	}
	if r := sh(t, s, "cat dir/sub/a.txt"); string(r.Stdout) != "hello" {
		t.Fatalf("shell sees %q", r.Stdout)
	}
}

// TestLimits covers the per-call timeout, the output cap and a fork bomb.
func TestLimits(t *testing.T) {
	ws := workspace(t)
	pol := policy.Default()
	pol.Limits.Pids = 64
	s, _ := open(t, ws, pol)
	ctx := context.Background()

	r, err := s.Exec(ctx, sandbox.ExecRequest{Command: "sleep 30", Timeout: 300 * time.Millisecond})
	if err != nil || !r.TimedOut || r.Limit != "timeout" || r.Signal != "SIGKILL" || r.ExitCode != 137 {
		t.Fatalf("timeout: %+v %v", r, err)
	}
	if r.Denials == nil || r.Denials[0].Kind != events.Limit {
		t.Errorf("no limit event for the timeout: %v", r.Denials)
	}
	r, err = s.Exec(ctx, sandbox.ExecRequest{Command: "head -c 100000 /dev/zero", MaxOutput: 1000})
	if err != nil || !r.Truncated || len(r.Stdout) != 1000 || r.Limit != "output" || r.ExitCode != 0 {
		t.Fatalf("output cap: truncated=%v len=%d limit=%q %v", r.Truncated, len(r.Stdout), r.Limit, err)
	}
	if r := sh(t, s, "echo small"); r.Truncated || string(r.Stdout) != "small\n" {
		t.Errorf("control: small output: %+v", r)
	}

	// A fork bomb hits the pids limit; a second session answers meanwhile.
	other, _ := open(t, workspace(t), nil)
	done := make(chan *sandbox.ExecResult, 1)
	go func() {
		r, err := s.Exec(ctx, sandbox.ExecRequest{Command: "(b(){ b | b & }; b) & exec sleep 30", Timeout: 2 * time.Second})
		if err != nil {
			t.Errorf("fork bomb call: %v", err)
		}
		done <- r
	}()
	time.Sleep(500 * time.Millisecond)
	t0 := time.Now()
	if r := sh(t, other, "echo alive"); string(r.Stdout) != "alive\n" {
		t.Errorf("second session: %q", r.Stdout)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("second session took %v during a fork bomb", d)
	}
	bomb := <-done
	if bomb == nil {
		t.FailNow()
	}
	// The timeout killed the bomb's process group, and its own session
	// serves the next call: its stages kept their threads throughout.
	if !bomb.TimedOut {
		t.Errorf("fork bomb call: %+v", bomb)
	}
	if r := sh(t, s, "echo recovered"); !strings.Contains(string(r.Stdout), "recovered") {
		t.Errorf("the session that ran the bomb: exit %d %q %q %v", r.ExitCode, r.Stdout, r.Stderr, r.Denials)
	}
	if os.Geteuid() == 0 {
		var hit bool
		for _, d := range bomb.Denials {
			hit = hit || (d.Kind == events.Limit && d.Target == "pids")
		}
		if !hit {
			t.Errorf("fork bomb under a cgroup: no pids limit event in %v", bomb.Denials)
		}
	}
}

// TestOrphansReaped: processes a call leaves behind are reaped when they
// exit, instead of piling up as zombies against the pids limit.
func TestOrphansReaped(t *testing.T) {
	s, _ := open(t, workspace(t), nil)
	if r := sh(t, s, "(sleep 0.3 &); ps -eo args | grep -c '^sleep 0.3'"); strings.TrimSpace(string(r.Stdout)) != "1" {
		t.Fatalf("control: the orphan is not running: %q %q", r.Stdout, r.Stderr)
	}
	for range 10 {
		sh(t, s, "(sleep 0.1 &)")
	}
	time.Sleep(600 * time.Millisecond)
	if r := sh(t, s, "ps -eo stat,args | grep -v grep | grep -c '^Z'"); strings.TrimSpace(string(r.Stdout)) != "0" {
		t.Errorf("zombies left: %q", r.Stdout)
	}
}

// TestIsolation checks that sessions share nothing and that teardown
// leaves nothing behind, including processes that daemonized.
func TestIsolation(t *testing.T) {
	// One session first: the process keeps the idmap user namespace of a
	// mapping open for later sessions (by design), which is not a leak.
	warm, err := sandbox.Open(context.Background(), sandbox.Options{Workspace: workspace(t)})
	if err != nil {
		t.Fatal(err)
	}
	warm.Close()
	mountsBefore := mountCount(t)
	fdsBefore := fdCount(t)
	goroutinesBefore := runtime.NumGoroutine()
	marker := fmt.Sprintf("cordon-marker-%d", time.Now().UnixNano())
	a, err := sandbox.Open(context.Background(), sandbox.Options{Workspace: workspace(t)})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := open(t, workspace(t), nil)
	for _, ns := range []string{"mnt", "pid", "net", "ipc", "uts", "user", "cgroup"} {
		na := sh(t, a, "readlink /proc/self/ns/"+ns).Stdout
		if nb := sh(t, b, "readlink /proc/self/ns/"+ns).Stdout; len(na) == 0 || bytes.Equal(na, nb) {
			t.Errorf("sessions share their %s namespace: %q %q", ns, na, nb)
		}
	}
	sh(t, a, "echo a > /tmp/mine; echo a > ~/mine")
	if r := sh(t, b, "cat /tmp/mine ~/mine 2>&1"); strings.Contains(string(r.Stdout), "a\n") {
		t.Errorf("session b sees a's /tmp or HOME: %q", r.Stdout)
	}
	if r := sh(t, a, "cat /tmp/mine ~/mine"); string(r.Stdout) != "a\na\n" {
		t.Errorf("control: session a reads its own files: %q", r.Stdout)
	}
	// Escape attempts: double fork, setsid, nohup.
	sh(t, a, fmt.Sprintf("setsid bash -c 'exec -a %s sleep 1000' </dev/null >/dev/null 2>&1 & (nohup python3 -c 'import time; time.sleep(1000)' %s >/dev/null 2>&1 &) ; true", marker, marker))
	time.Sleep(200 * time.Millisecond)
	if n := hostProcesses(marker); n != 2 {
		t.Fatalf("control: %d marker processes visible on the host while the session runs, want 2", n)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if n := hostProcesses(marker); n != 0 {
		t.Errorf("%d processes of a closed session are alive", n)
	}
	if _, err := a.Exec(context.Background(), sandbox.ExecRequest{Command: "true"}); err == nil {
		t.Errorf("exec on a closed session succeeded")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if n := mountCount(t); n != mountsBefore {
		t.Errorf("host mounts: %d before, %d after", mountsBefore, n)
	}
	if n := fdCount(t); n > fdsBefore {
		t.Errorf("descriptors: %d before, %d after", fdsBefore, n)
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > goroutinesBefore && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > goroutinesBefore {
		t.Errorf("goroutines: %d before, %d after", goroutinesBefore, n)
	}
	if os.Geteuid() == 0 {
		// Only these sessions' cgroups: other test packages run
		// sessions of their own at the same time.
		for _, d := range []string{"/sys/fs/cgroup/memory/cordon", "/sys/fs/cgroup/pids/cordon"} {
			for _, id := range []string{a.ID(), b.ID()} {
				if _, err := os.Stat(filepath.Join(d, id)); err == nil {
					t.Errorf("cgroup %s/%s left behind", d, id)
				}
			}
		}
	}
}

// rootOnlyDir makes a world-readable directory holding a root-only 0600
// file "private" and a 0644 file "public".
func rootOnlyDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "cordon-rootonly-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "private"), []byte("secret-canary"), 0o600)
	os.WriteFile(filepath.Join(dir, "public"), []byte("public-data"), 0o644)
	// For the hide list: files reached through symlinks.
	os.Mkdir(filepath.Join(dir, "real"), 0o755)
	os.WriteFile(filepath.Join(dir, "real", "public"), []byte("public-data"), 0o644)
	os.WriteFile(filepath.Join(dir, "direct"), []byte("public-data"), 0o644)
	os.Symlink("real", filepath.Join(dir, "link"))
	os.Symlink(filepath.Join(dir, "public"), filepath.Join(dir, "plink"))
	return dir
}

func hostProcesses(marker string) int {
	n := 0
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, d := range dirs {
		if b, err := os.ReadFile(d); err == nil && bytes.Contains(b, []byte(marker)) {
			n++
		}
	}
	return n
}

func mountCount(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("\n"))
}

func fdCount(t *testing.T) int {
	runtime.GC()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestUnprivileged re-runs this package's session tests as uid 65534, so
// rootless sessions are tested on every CI run (which is root).
func TestUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("this run is already unprivileged")
	}
	// t.TempDir's parent is private to root; uid 65534 needs a path in.
	dir, err := os.MkdirTemp("", "cordon-unprivileged-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "sandbox.test")
	src, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "tmp")
	os.Mkdir(tmp, 0o777)
	os.Chmod(tmp, 0o1777)
	cmd := exec.Command(bin, "-test.run", "^Test(Posture|SeccompDenials|Boundary|FileTools|Limits|Isolation|OrphansReaped|DefaultPolicyDevelopment|MemoryLimit|Egress|ApplyGrants|WriteDenials|TmpfsLimit|Protect|ProtectLinks|UnixConnect|Openat2|DiskFree|DiskFreeLeftBehind|DiskFreeBelowAlready|DiskFreeInodes|DiskWatchersStop|DiskFreeCleanup|ExecIO)$", "-test.count=1", "-test.v")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + tmp, "TMPDIR=" + tmp, "CORDON_TEST_ROOT_DIR=" + rootOnlyDir(t),
		"CORDON_TEST_DISK_DIR=" + privateTmpfs(t, 65534)}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("\nPASS")) {
		t.Fatalf("unprivileged run failed: %v\n%s", err, out)
	}
	t.Logf("unprivileged run:\n%s", lastLines(out, 15))
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestCallTimeout: the default call timeout is the policy's, or the
// runtime's when the policy sets none.
func TestCallTimeout(t *testing.T) {
	pol := policy.Default()
	pol.Limits.Timeout = policy.Duration(3 * time.Second)
	if s, _ := open(t, workspace(t), pol); s.CallTimeout() != 3*time.Second {
		t.Errorf("policy timeout 3s: CallTimeout %v", s.CallTimeout())
	}
	pol.Limits.Timeout = 0
	if s, _ := open(t, workspace(t), pol); s.CallTimeout() <= 0 {
		t.Errorf("no policy timeout: CallTimeout %v, want the runtime's default", s.CallTimeout())
	}
}
