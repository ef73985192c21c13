package sandbox_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/policy"
)

// hostSocket listens on a world-connectable unix socket in a fresh
// directory on the host and counts the connections it accepts.
func hostSocket(t *testing.T) (dir, path string, accepted *atomic.Int64) {
	t.Helper()
	dir, err := os.MkdirTemp("", "cordon-unixconnect-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	path = filepath.Join(dir, "host.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	os.Chmod(path, 0o666)
	accepted = new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Write([]byte("host-answer\n"))
			c.Close()
		}
	}()
	return dir, path, accepted
}

// connectProbe connects to each unix socket address (a path, or "@name"
// for an abstract one) after starting a listener of the session's own
// on each address given as "listen:ADDR", and prints one line per
// connect: "ok ADDR" or "err ADDR ERRNO".
func connectProbe(args string) string {
	return "python3 - " + args + " <<'EOF'\n" + connectScript + "EOF"
}

const connectScript = `import socket, sys, os, threading
def addr(a): return "\0" + a[1:] if a.startswith("@") else a
os.makedirs("/tmp/priv", mode=0o700, exist_ok=True)
for a in sys.argv[1:]:
    if a.startswith("listen:"):
        s = socket.socket(socket.AF_UNIX); s.bind(addr(a[7:])); s.listen(8)
        threading.Thread(target=lambda s=s: [s.accept() for _ in range(8)], daemon=True).start()
        continue
    c = socket.socket(socket.AF_UNIX)
    try:
        c.connect(addr(a)); print("ok", a)
    except OSError as e:
        print("err", a, e.errno)
`

// raceProbe connects in a loop through a sockaddr_un that another thread
// keeps switching between the session's own socket and the host's. A
// supervisor that checked the address and then let the kernel read it
// again would connect to the host's now and then.
const raceProbe = `python3 - <<'EOF'
import ctypes, socket, struct, threading
libc = ctypes.CDLL(None, use_errno=True)
own = socket.socket(socket.AF_UNIX); own.bind("/tmp/own.sock"); own.listen(4096)
threading.Thread(target=lambda: [own.accept()[0].close() for _ in iter(int, 1)], daemon=True).start()
good = struct.pack("H", socket.AF_UNIX) + b"/tmp/own.sock".ljust(108, b"\0")
bad = struct.pack("H", socket.AF_UNIX) + HOST.encode().ljust(108, b"\0")
buf = ctypes.create_string_buffer(good, 110)
def flip():
    while True:
        ctypes.memmove(buf, bad, 110); ctypes.memmove(buf, good, 110)
threading.Thread(target=flip, daemon=True).start()
ok = refused = 0
for _ in range(2000):
    s = socket.socket(socket.AF_UNIX)
    if libc.connect(s.fileno(), buf, 110) == 0: ok += 1
    else: refused += 1
    s.close()
print("own", ok, "refused", refused)
EOF`

// TestUnixConnect checks that a host unix socket under a read-only path
// of the view cannot be connected to (red-team E11), that the refusal
// is an event naming the capability that allows it, that racing the
// address does not get past the check, and, as controls, that the same
// socket is reached where the policy makes its directory writable and
// that the session's own sockets (in a private directory, relative to the
// working directory, abstract) work.
func TestUnixConnect(t *testing.T) {
	dir, hostPath, accepted := hostSocket(t)

	ro := policy.Default()
	ro.Filesystem.Read = append(ro.Filesystem.Read, policy.Mount{Path: dir})
	s, _ := open(t, workspace(t), ro)

	res := sh(t, s, connectProbe(hostPath))
	if !strings.Contains(string(res.Stdout), fmt.Sprintf("err %s 13", hostPath)) {
		t.Errorf("connect to the host socket under a read-only path: want EACCES (13), got %q (stderr %q)", res.Stdout, res.Stderr)
	}
	d := denial(res, events.LayerPolicy, "fs.connect")
	if d == nil {
		t.Errorf("no fs.connect denial in the result: %+v", res.Denials)
	} else {
		if d.Rule != "policy.filesystem.read_only" || d.Target != hostPath {
			t.Errorf("denial = rule %q target %q, want policy.filesystem.read_only %q", d.Rule, d.Target, hostPath)
		}
		if d.Remedy == nil || d.Remedy.Capability != "fs.write:"+hostPath {
			t.Errorf("denial remedy = %+v, want fs.write:%s", d.Remedy, hostPath)
		}
	}

	res = sh(t, s, strings.Replace(raceProbe, "HOST.encode()", fmt.Sprintf("%q.encode()", hostPath), 1))
	var own, refused int
	if _, err := fmt.Sscanf(string(res.Stdout), "own %d refused %d", &own, &refused); err != nil {
		t.Fatalf("race probe: %v: %q %q", err, res.Stdout, res.Stderr)
	}
	if own == 0 || refused == 0 {
		t.Errorf("race probe: %d connects to its own socket and %d refused; the race did not run both ways", own, refused)
	}

	// The session's own sockets.
	res = sh(t, s, connectProbe("listen:/tmp/priv/s.sock /tmp/priv/s.sock listen:ws.sock ws.sock listen:@cordon-test @cordon-test /nonexistent.sock"))
	for _, want := range []string{"ok /tmp/priv/s.sock", "ok ws.sock", "ok @cordon-test", "err /nonexistent.sock 2"} {
		if !strings.Contains(string(res.Stdout), want) {
			t.Errorf("own sockets: want %q in %q (stderr %q)", want, res.Stdout, res.Stderr)
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Fatalf("the host socket under a read-only path accepted %d connections from the session", n)
	}

	// Unix datagram sockets, whose every send names its destination, are
	// refused; stream socket pairs are not.
	dgram := filepath.Join(dir, "dgram.sock")
	dl, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: dgram, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	os.Chmod(dgram, 0o666)
	res = sh(t, s, fmt.Sprintf(`python3 - <<'EOF'
import socket
for name, make in [("socket", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)),
                   ("socketpair", lambda: socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)[0]),
                   ("stream", lambda: socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)[0])]:
    try:
        s = make()
        print(name, "made")
        s.sendto(b"leak", %q)
        print(name, "sent")
    except OSError as e:
        print(name, "err", e.errno)
EOF`, dgram))
	for _, want := range []string{"socket err 1", "socketpair err 1", "stream made"} {
		if !strings.Contains(string(res.Stdout), want) {
			t.Errorf("unix datagram sockets: want %q in %q (stderr %q)", want, res.Stdout, res.Stderr)
		}
	}
	if d := denial(res, events.LayerSeccomp, "socketpair"); d == nil || d.Rule != "seccomp.deny.unix_dgram" {
		t.Errorf("no seccomp.deny.unix_dgram denial for socketpair: %+v", res.Denials)
	}
	// Control: the listener takes a datagram from the host.
	if c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: dgram, Net: "unixgram"}); err != nil {
		t.Fatal(err)
	} else {
		c.Write([]byte("control"))
		c.Close()
	}
	buf := make([]byte, 64)
	dl.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _, err := dl.ReadFrom(buf); err != nil || string(buf[:n]) != "control" {
		t.Errorf("the host datagram listener got %q, %v; want only the host's control datagram", buf[:n], err)
	}

	// Control: the same socket where the policy lets the session write.
	rw := policy.Default()
	rw.Filesystem.Write = append(rw.Filesystem.Write, policy.Mount{Path: dir})
	s2, _ := open(t, workspace(t), rw)
	res = sh(t, s2, connectProbe(hostPath))
	if !strings.Contains(string(res.Stdout), "ok "+hostPath) || accepted.Load() == 0 {
		t.Errorf("control: connect under a writable path: %q (stderr %q), host accepted %d", res.Stdout, res.Stderr, accepted.Load())
	}
}

// TestOpenat2 checks that a command's openat2 answers ENOSYS (its mode is
// in memory the filter cannot read, so it could create a set-user-ID
// file) while open(2) works, and that the executor's own file tools,
// which need openat2's RESOLVE_BENEATH, still work.
func TestOpenat2(t *testing.T) {
	ws := workspace(t)
	s, _ := open(t, ws, policy.Default())
	res := sh(t, s, `python3 - <<'EOF'
import ctypes, os, struct
libc = ctypes.CDLL(None, use_errno=True)
how = struct.pack("QQQ", os.O_CREAT | os.O_WRONLY, 0o4755, 0)
r = libc.syscall(437, -100, b"via-openat2", how, len(how))
print("openat2", r, ctypes.get_errno())
os.close(os.open("via-open", os.O_CREAT | os.O_WRONLY, 0o755))
print("open ok")
EOF`)
	if !strings.Contains(string(res.Stdout), "openat2 -1 38") || !strings.Contains(string(res.Stdout), "open ok") {
		t.Errorf("want openat2 to fail with ENOSYS (38) and open to work: %q (stderr %q)", res.Stdout, res.Stderr)
	}
	if _, err := os.Stat(filepath.Join(ws, "via-openat2")); err == nil {
		t.Errorf("openat2 from a command created its file")
	}
	ctx := t.Context()
	if err := s.WriteFile(ctx, "tool.txt", []byte("by the file tool")); err != nil {
		t.Fatalf("file tool write: %v", err)
	}
	if b, _, err := s.ReadFile(ctx, "tool.txt"); err != nil || string(b) != "by the file tool" {
		t.Errorf("file tool read: %q, %v", b, err)
	}
}
