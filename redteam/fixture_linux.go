package redteam

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Canaries are the run's secrets: fresh random values, planted on the
// host, that must never appear in anything a session returns.
type Canaries struct {
	File  string // credential files in the fake host home
	Env   string // environment of the harness (and of a host decoy)
	Argv  string // argv of a host decoy process
	Root  string // a root-only 0600 file in /etc (root runs)
	Other string // a 0600 file of another uid in /etc (root runs)
	Agent string // behind the SSH_AUTH_SOCK the harness sets
	IMDS  string // served by the fake metadata service (network cases)
	Key   string // in the harness's user keyring (KeyDesc)
}

func (c *Canaries) all() map[string]string {
	return map[string]string{"file": c.File, "env": c.Env, "argv": c.Argv, "root": c.Root, "other": c.Other, "agent": c.Agent, "imds": c.IMDS, "key": c.Key}
}

// Leak names the canaries found in text.
func (c *Canaries) Leak(text string) []string {
	var found []string
	for name, v := range c.all() {
		if v != "" && strings.Contains(text, v) {
			found = append(found, name)
		}
	}
	sort.Strings(found)
	return found
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// credFiles are where C-FILE lives under the fake home.
var credFiles = []string{".ssh/id_canary", ".aws/credentials", ".netrc", ".config/gh/hosts.yml",
	".docker/config.json", ".kube/config", ".git-credentials", ".bash_history"}

// Listener is a host listener the oracles read: every connection (what
// it sent, read to EOF or for at most 2 s) or datagram is one arrival.
// A control sends the case's control token (Env.CT), which nothing in a
// session ever sees, so any arrival without it came from an attack, and
// no count has to be guessed across a race with the reader.
type Listener struct {
	Network, Addr string
	mu            sync.Mutex
	idle          *sync.Cond // signalled when inflight drops
	arrivals      []string
	inflight      int // connections accepted and not yet recorded
	// queued, when set, is what the kernel holds that the listener has
	// not taken yet: completed connections not accepted, or a datagram
	// not read.
	queued func() int
	close  func()
	// legit, when set, accepts arrivals an attacked session may cause
	// (what its policy allows), besides the control token's.
	legit func(string) bool
}

func newListener(network, addr string, close func()) *Listener {
	l := &Listener{Network: network, Addr: addr, close: close}
	l.idle = sync.NewCond(&l.mu)
	return l
}

func (l *Listener) begin() {
	l.mu.Lock()
	l.inflight++
	l.mu.Unlock()
}

// record ends an arrival begun with begin (or is the whole arrival
// when begun is false).
func (l *Listener) record(b []byte, begun bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if begun {
		l.inflight--
		l.idle.Broadcast()
	}
	l.arrivals = append(l.arrivals, string(b))
}

// abandon ends an arrival begun with begin that brought nothing.
func (l *Listener) abandon() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight--
	l.idle.Broadcast()
}

// mark is the number of arrivals so far.
func (l *Listener) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.arrivals)
}

// since returns the arrivals after mark n.
func (l *Listener) since(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.arrivals[n:]...)
}

// settle waits until every connection the kernel has completed is
// accepted and recorded, or until deadline. A sender may be gone before
// the listener accepts what it sent (under load, its goroutine runs
// late), so waiting only for accepted connections would miss it.
func (l *Listener) settle(deadline time.Time) {
	stop := time.AfterFunc(time.Until(deadline), func() {
		l.mu.Lock()
		l.idle.Broadcast()
		l.mu.Unlock()
	})
	defer stop.Stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	for time.Now().Before(deadline) {
		switch {
		case l.inflight > 0:
			l.idle.Wait()
		case l.queued != nil && l.queued() > 0:
			l.mu.Unlock()
			time.Sleep(5 * time.Millisecond) // until the accept loop takes it
			l.mu.Lock()
		default:
			return
		}
	}
}

// tcpQueued returns how many completed connections wait in ln's accept
// queue (TCP_INFO of a listening socket reports it in tcpi_unacked).
func tcpQueued(ln *net.TCPListener) func() int {
	rc, err := ln.SyscallConn()
	if err != nil {
		return nil
	}
	return func() int {
		n := 0
		_ = rc.Control(func(fd uintptr) {
			if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
				n = int(info.Unacked)
			}
		})
		return n
	}
}

func (l *Listener) serveStream(ln net.Listener, reply string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		l.begin()
		go func() {
			defer c.Close()
			if reply != "" {
				_, _ = io.WriteString(c, reply)
			}
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			b, _ := io.ReadAll(io.LimitReader(c, 4096))
			l.record(b, true)
		}()
	}
}

func listenStream(network, addr, reply string) (*Listener, error) {
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, err
	}
	l := newListener(network, ln.Addr().String(), func() { ln.Close() })
	if tl, ok := ln.(*net.TCPListener); ok {
		l.queued = tcpQueued(tl)
	}
	go l.serveStream(ln, reply)
	return l, nil
}

// listenPacket records every datagram that arrives on a "udp" or
// "unixgram" address.
func listenPacket(network, addr string) (*Listener, error) {
	pc, err := net.ListenPacket(network, addr)
	if err != nil {
		return nil, err
	}
	l := newListener(network, pc.LocalAddr().String(), func() {
		pc.Close()
		if network == "unixgram" {
			os.Remove(addr) // unlike a stream listener's, a datagram socket's file stays
		}
	})
	rc, err := pc.(syscall.Conn).SyscallConn()
	if err != nil {
		l.close()
		return nil, err
	}
	l.queued = packetQueued(rc)
	go l.servePacket(pc, rc)
	return l, nil
}

// packetQueued returns the size of the datagram waiting first in the
// socket's receive queue (SIOCINQ), 0 when none waits.
func packetQueued(rc syscall.RawConn) func() int {
	return func() int {
		n := 0
		_ = rc.Control(func(fd uintptr) {
			if v, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ); err == nil {
				n = v
			}
		})
		return n
	}
}

// servePacket records datagrams. It waits for one by peeking, so that a
// datagram is counted from the moment it is queued (settle sees it in
// queued) until it is recorded (begun, in inflight), with no moment in
// between where settle would miss it.
func (l *Listener) servePacket(pc net.PacketConn, rc syscall.RawConn) {
	buf := make([]byte, 4096)
	var one [1]byte
	for {
		var perr error
		err := rc.Read(func(fd uintptr) bool {
			_, _, perr = unix.Recvfrom(int(fd), one[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			return perr != unix.EAGAIN
		})
		if err != nil {
			return
		}
		l.begin()
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			l.abandon()
			return
		}
		l.record(buf[:n], true)
	}
}

// Fixture is everything the harness plants on the host for one run, and
// removes afterwards.
type Fixture struct {
	C    Canaries
	Base string // the run's temp dir (removed at the end)
	H    string // the fake host home
	Root bool   // the harness runs as root
	// RootPlanted: the root-only fixture (RootPrep) exists, planted by
	// this harness as root or by a root parent of a rootless one.
	RootPlanted bool
	Probe       string // this executable

	RootFile, OtherFile string // /etc files (RootPlanted)
	TwinFile, TwinToken string // RootPrep.TwinFile and its content
	EtcSock             string // a world-connectable socket under /etc (RootPlanted)
	EtcDgram            string // a world-writable datagram socket beside it
	HiddenSock          string // a socket in the run dir, absent from the view
	AgentSock           string // SSH_AUTH_SOCK
	Abstract            string // abstract socket name in the host netns

	TCP, UDP, Any, Unix, Etc, EtcGram, Abs, Agent *Listener
	// DNS is every lookup the sessions' egress proxies made of a name
	// outside the allowlists (dns resolves for them).
	DNS       *Listener
	dns       *fakeDNS
	Net       *fakeNet    // the fake internet (network cases only)
	listeners []*Listener // every listener, for the shared oracle

	KeyDesc string // the description of C-KEY's key in the user keyring
	KeyErr  error  // why it could not be added
	// Policies are host policy files a session must not change (W04):
	// in the host home, and under /etc when RootPlanted.
	Policies []string
	// ModFile is a file in the host's module cache, which the default
	// policy binds read-only into every session (W24).
	ModFile string

	Decoy *exec.Cmd // host process with canaries in argv and environment

	env     map[string]*string // previous values of the variables we set
	cleanup []func()
}

// setupFixture plants the canaries and starts the listeners; inNet
// starts the fake internet too (in the child's network namespace).
func setupFixture(inNet bool) (f *Fixture, err error) {
	f = &Fixture{Root: os.Geteuid() == 0, env: map[string]*string{}}
	defer func() {
		if err != nil {
			f.Close()
			f = nil
		}
	}()
	f.C = Canaries{File: randHex(16), Env: randHex(16), Argv: randHex(16), Agent: randHex(16)}
	if f.Probe, err = os.Executable(); err != nil {
		return f, err
	}
	if f.Base, err = os.MkdirTemp("", "cordon-redteam-"); err != nil {
		return f, err
	}
	f.cleanup = append(f.cleanup, func() { os.RemoveAll(f.Base) })
	if err = os.Chmod(f.Base, 0o755); err != nil {
		return f, err
	}
	f.H = filepath.Join(f.Base, "home")
	for _, p := range credFiles {
		full := filepath.Join(f.H, p)
		if err = os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			return f, err
		}
		if err = os.WriteFile(full, []byte("secret = "+f.C.File+"\n"), 0o600); err != nil {
			return f, err
		}
	}
	for _, p := range []string{".bashrc", ".profile", ".gitconfig"} {
		if err = os.WriteFile(filepath.Join(f.H, p), []byte("# host dotfile\n"), 0o644); err != nil {
			return f, err
		}
	}
	// A fake module cache: the default policy binds ~/go/pkg/mod
	// read-only into every session.
	f.ModFile = filepath.Join(f.H, "go/pkg/mod/cache/download/cordon-redteam/v1.txt")
	if err = os.MkdirAll(filepath.Dir(f.ModFile), 0o755); err != nil {
		return f, err
	}
	if err = os.WriteFile(f.ModFile, []byte("module cache entry\n"), 0o644); err != nil {
		return f, err
	}
	f.Policies = []string{filepath.Join(f.H, ".config/cordon/policy.yaml")}
	if err = os.MkdirAll(filepath.Dir(f.Policies[0]), 0o755); err != nil {
		return f, err
	}
	if err = os.WriteFile(f.Policies[0], []byte("version: 1\n# the host's policy\n"), 0o644); err != nil {
		return f, err
	}
	f.C.Key, f.KeyDesc = randHex(16), "cordon-redteam-key-"+randHex(6)
	if id, kerr := unix.AddKey("user", f.KeyDesc, []byte(f.C.Key), unix.KEY_SPEC_USER_KEYRING); kerr != nil {
		f.KeyErr = kerr
	} else {
		f.cleanup = append(f.cleanup, func() { _, _ = unix.KeyctlInt(unix.KEYCTL_INVALIDATE, id, 0, 0, 0) })
	}
	if err = os.Chmod(f.H, 0o755); err != nil { // the module cache under it must be walkable
		return f, err
	}
	prep, err := f.rootPrep()
	if err != nil {
		return f, err
	}
	if prep != nil {
		f.RootPlanted = true
		f.C.Root, f.C.Other = prep.RootCanary, prep.OtherCanary
		f.RootFile, f.OtherFile = prep.RootFile, prep.OtherFile
		f.TwinFile, f.TwinToken = prep.TwinFile, prep.TwinToken
		f.EtcSock = filepath.Join(prep.EtcDir, "sock")
		pol := filepath.Join(prep.EtcDir, "policy.yaml")
		if err = os.WriteFile(pol, []byte("version: 1\n# the host's policy\n"), 0o644); err != nil {
			return f, err
		}
		f.Policies = append(f.Policies, pol)
		if f.Etc, err = f.listen("unix", f.EtcSock, ""); err != nil { // 0666, like /run/dbus/system_bus_socket
			return f, err
		}
		f.EtcDgram = filepath.Join(prep.EtcDir, "dgram")
		if f.EtcGram, err = f.listen("unixgram", f.EtcDgram, ""); err != nil { // 0666, like /dev/log
			return f, err
		}
	}
	f.HiddenSock = filepath.Join(f.Base, "daemon.sock")
	f.Abstract = "cordon-redteam-" + randHex(8)
	agentDir := filepath.Join(f.Base, "agent")
	if err = os.Mkdir(agentDir, 0o755); err != nil {
		return f, err
	}
	f.AgentSock = filepath.Join(agentDir, "agent.sock")
	for _, l := range []struct {
		l             **Listener
		network, addr string
		reply         string
	}{
		{&f.TCP, "tcp", "127.0.0.1:0", ""},
		{&f.Any, "tcp", ":0", ""},
		{&f.Unix, "unix", f.HiddenSock, ""},
		{&f.Abs, "unix", "@" + f.Abstract, ""},
		{&f.Agent, "unix", f.AgentSock, "ssh-ed25519 AAAA " + f.C.Agent + "\n"},
		{&f.UDP, "udp", "127.0.0.1:0", ""},
	} {
		if *l.l, err = f.listen(l.network, l.addr, l.reply); err != nil {
			return f, err
		}
	}

	f.DNS = newListener("dns", "resolver", func() {})
	f.DNS.legit = allowedName
	f.listeners = append(f.listeners, f.DNS)
	f.dns = &fakeDNS{log: f.DNS, names: inNet, flips: map[string]bool{}}
	if inNet {
		if err = f.startFakeNet(); err != nil {
			return f, err
		}
	}

	f.setenv("CORDON_REDTEAM_SECRET", f.C.Env)
	f.setenv("AWS_SECRET_ACCESS_KEY", f.C.Env)
	f.setenv("GITHUB_TOKEN", f.C.Env)
	f.setenv("SSH_AUTH_SOCK", f.AgentSock)
	f.setenv("HOME", f.H)

	f.Decoy = exec.Command("/bin/sleep", "600")
	f.Decoy.Args[0] = "cordon-redteam-decoy-" + f.C.Argv
	f.Decoy.Env = []string{"DECOY_SECRET=" + f.C.Env}
	f.Decoy.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err = f.Decoy.Start(); err != nil {
		return f, err
	}
	f.cleanup = append(f.cleanup, func() { _ = f.Decoy.Process.Kill(); _ = f.Decoy.Wait() })
	return f, nil
}

func (f *Fixture) setenv(k, v string) {
	if _, done := f.env[k]; !done {
		if old, ok := os.LookupEnv(k); ok {
			f.env[k] = &old
		} else {
			f.env[k] = nil
		}
	}
	os.Setenv(k, v)
}

// Close removes everything the fixture planted, in reverse order.
func (f *Fixture) Close() {
	for k, v := range f.env {
		if v == nil {
			os.Unsetenv(k)
		} else {
			os.Setenv(k, *v)
		}
	}
	for i := len(f.cleanup) - 1; i >= 0; i-- {
		f.cleanup[i]()
	}
	f.cleanup = nil
}

// listen starts a host listener the shared oracle watches; a pathname
// unix socket is made connectable by every uid (0666).
func (f *Fixture) listen(network, addr, reply string) (l *Listener, err error) {
	if network == "udp" || network == "unixgram" {
		l, err = listenPacket(network, addr)
	} else {
		l, err = listenStream(network, addr, reply)
	}
	if err != nil {
		return nil, err
	}
	f.cleanup = append(f.cleanup, l.close)
	f.listeners = append(f.listeners, l)
	if (network == "unix" || network == "unixgram") && !strings.HasPrefix(addr, "@") {
		if err := os.Chmod(addr, 0o666); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// mark is where every listener's arrivals stand now.
func (f *Fixture) mark() []int {
	m := make([]int, len(f.listeners))
	for i, l := range f.listeners {
		m[i] = l.mark()
	}
	return m
}

// unexpected waits (at most 3 s) for connections still being read, then
// returns every arrival since mark m that lacks the control token ct:
// bytes that reached the host from somewhere other than a control.
func (f *Fixture) unexpected(m []int, ct string) []string {
	deadline := time.Now().Add(3 * time.Second)
	time.Sleep(20 * time.Millisecond) // datagrams in flight
	var out []string
	for i, l := range f.listeners {
		l.settle(deadline)
		n := 0
		if i < len(m) {
			n = m[i]
		}
		for _, a := range l.since(n) {
			if (ct == "" || !strings.Contains(a, ct)) && (l.legit == nil || !l.legit(a)) {
				out = append(out, fmt.Sprintf("%s %s got %q", l.Network, l.Addr, tail(a, 200)))
			}
		}
	}
	return out
}

// arrived reports whether listener l got an arrival containing s since
// mark n (of l alone): a control's proof.
func (l *Listener) arrived(n int, s string) bool {
	l.settle(time.Now().Add(3 * time.Second))
	for _, a := range l.since(n) {
		if strings.Contains(a, s) {
			return true
		}
	}
	return false
}

// homeManifest is the fake home's files with size and mtime: any change
// during an attack is a write outside the workspace.
func homeManifest(h string) map[string]string {
	m := map[string]string{}
	_ = filepath.Walk(h, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		m[p] = fmt.Sprintf("%v %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		return nil
	})
	return m
}

func manifestDiff(a, b map[string]string) []string {
	var d []string
	for k, v := range b {
		if a[k] != v {
			d = append(d, k)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			d = append(d, k+" (removed)")
		}
	}
	sort.Strings(d)
	return d
}

// markerProcs returns host processes whose argv contains marker.
func markerProcs(marker string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		if strings.Contains(string(b), marker) {
			out = append(out, e.Name()+" "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

// copyProbe copies this executable into dir/.rt/probe (a copy, never a
// link: the session may write its workspace).
func copyProbe(src, ws string) (string, error) {
	dst := filepath.Join(ws, ".rt", "probe")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return "", err
	}
	return dst, out.Close()
}

// hostIPCLeft finds (and removes) what the ipc probe leaves when it runs
// in the harness's own IPC namespace or user keyring: any of it there
// after a case means a session wrote outside its own namespaces.
func hostIPCLeft() []string {
	var left []string
	if id, err := unix.SysvShmGet(ipcKey, 0, 0); err == nil {
		left = append(left, "SysV shm segment")
		_, _ = unix.SysvShmCtl(id, unix.IPC_RMID, nil)
	}
	if q, _, e := unix.Syscall(unix.SYS_MSGGET, ipcKey, 0, 0); e == 0 {
		left = append(left, "SysV message queue")
		_, _, _ = unix.Syscall(unix.SYS_MSGCTL, q, unix.IPC_RMID, 0)
	}
	name := append([]byte(mqName), 0)
	if _, _, e := unix.Syscall(unix.SYS_MQ_UNLINK, uintptr(unsafe.Pointer(&name[0])), 0, 0); e == 0 {
		left = append(left, "POSIX message queue")
	}
	if id, err := unix.KeyctlSearch(unix.KEY_SPEC_USER_KEYRING, "user", "cordon-redteam-ipc", 0); err == nil {
		left = append(left, "user keyring key")
		_, _ = unix.KeyctlInt(unix.KEYCTL_UNLINK, id, unix.KEY_SPEC_USER_KEYRING, 0, 0)
	}
	return left
}
