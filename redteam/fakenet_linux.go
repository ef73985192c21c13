package redteam

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/internal/linux"
	"github.com/cordon-sandbox/cordon/policy"
)

// The network cases (Needs&NeedNet) run in a child of the harness with a
// network namespace of its own: the fake internet. Its loopback carries
// the addresses below, each with the harness's listeners, and its only
// resolver is the harness's (sandbox.Options.Resolve). Whatever an attack
// makes the egress proxy dial, by name or by literal, is an address of
// this namespace: nothing leaves the machine even if the proxy is wrong,
// and a wrong proxy is seen, because the address answers.
var (
	netExfil   = netip.MustParseAddr("203.0.113.10")    // exfil.test, *.exfil.test: the attacker's catch-all
	netAllowed = netip.MustParseAddr("203.0.113.20")    // allowed.test: the suite's allowlisted server
	netEvil    = netip.MustParseAddr("203.0.113.21")    // evil.test: not allowlisted
	netMeta4   = netip.MustParseAddr("169.254.169.254") // cloud metadata
	netMeta6   = netip.MustParseAddr("fd00:ec2::254")   // cloud metadata, IPv6
	netPrivate = netip.MustParseAddr("10.0.0.1")        // a private-range host
	netV6      = netip.MustParseAddr("2001:db8:1::10")  // a public-looking IPv6 host
	netLo      = netip.MustParseAddr("127.0.0.1")       // the harness's own loopback services
	netLo6     = netip.MustParseAddr("::1")
)

// netNames is the fake DNS. Anything else does not resolve.
func netNames(host string, flip bool) []netip.Addr {
	one := func(a ...netip.Addr) []netip.Addr { return a }
	switch {
	case host == "allowed.test", host == "www.allowed.test":
		return one(netAllowed)
	case host == "evil.test", strings.HasSuffix(host, ".evil.test"):
		return one(netEvil)
	case host == "exfil.test", strings.HasSuffix(host, ".exfil.test"):
		return one(netExfil)
	case host == "lo.allowed.test", host == "localhost", strings.HasSuffix(host, ".localhost"):
		return one(netLo)
	case host == "lo6.allowed.test":
		return one(netLo6)
	case host == "rebind.allowed.test": // a TTL-0 name that answers public, then loopback
		if flip {
			return one(netLo)
		}
		return one(netAllowed)
	case host == "mixed.allowed.test":
		return one(netAllowed, netLo)
	case host == "meta.allowed.test", host == "metadata.google.internal", host == "instance-data":
		return one(netMeta4)
	case host == "meta6.allowed.test":
		return one(netMeta6)
	case host == "private.allowed.test":
		return one(netPrivate)
	case host == "mapped.allowed.test":
		return one(netip.MustParseAddr("::ffff:127.0.0.1"))
	case host == "nat64.allowed.test":
		return one(netip.MustParseAddr("64:ff9b::7f00:1"))
	case host == "v6.allowed.test":
		return one(netV6)
	case host == "b-only.test":
		return one(netEvil)
	}
	return nil
}

// suiteAllow is what the network cases' sessions may reach: the
// catalog's "allowed.test, *.allowed.test on 443/80 only", on top of the
// default policy.
var suiteAllow = []string{"allowed.test:80", "allowed.test:443", "*.allowed.test:80", "*.allowed.test:443"}

// netPolicy is the default policy with suiteAllow added, plus allow for
// a control session.
func netPolicy(allow []string, private ...string) *policy.Policy {
	p := policy.Default().Clone()
	p.Network.Allow = append(append(p.Network.Allow, suiteAllow...), allow...)
	p.Network.AllowPrivate = append(p.Network.AllowPrivate, private...)
	return p
}

// allowedName reports whether a host name matches the default policy's or
// the suite's allowlist (any port): a lookup of it is no leak.
func allowedName(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, e := range append(append([]string(nil), policy.Default().Network.Allow...), suiteAllow...) {
		p, err := policy.ParseHostPattern(e)
		if err != nil || p.Name == "" {
			continue
		}
		if (!p.Suffix && host == p.Name) || (p.Suffix && strings.HasSuffix(host, "."+p.Name)) {
			return true
		}
	}
	return false
}

// fakeDNS is the sessions' resolver: netNames in the fake internet,
// nothing elsewhere. Every lookup of a name outside the allowlists is an
// arrival of its Listener (a proxy that resolves a refused name carries
// data out through DNS, catalog N04).
type fakeDNS struct {
	log   *Listener
	names bool // answer netNames (the fake internet) or nothing
	mu    sync.Mutex
	flips map[string]bool
}

func (d *fakeDNS) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	return d.resolveAs("")(ctx, host)
}

// resolveAs is the resolver of a session whose lookups are recorded with
// tag after the name: a control session's carry the control token.
func (d *fakeDNS) resolveAs(tag string) func(context.Context, string) ([]netip.Addr, error) {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		return d.answer(host, tag)
	}
}

func (d *fakeDNS) answer(host, tag string) ([]netip.Addr, error) {
	rec := host
	if tag != "" {
		rec += " " + tag
	}
	d.log.record([]byte(rec), false)
	if d.names {
		d.mu.Lock()
		flip := d.flips[host]
		d.flips[host] = !flip
		d.mu.Unlock()
		if a := netNames(host, flip); a != nil {
			return a, nil
		}
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// netStageConfig is what the harness passes to its fake-internet child.
type netStageConfig struct {
	Cases   []string
	Wrap    []string
	Verbose bool
	Step    int // 1: set the namespace up, 2: run
}

// runNetCases runs the cases ids in the fake-internet child and returns
// its report. As root the child gets a network namespace; otherwise a
// user namespace that maps only the harness's own ids, and
// CAP_NET_ADMIN in it just long enough to put the addresses on lo.
func runNetCases(ctx context.Context, cfg Config, ids []string) (*Report, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	b, _ := json.Marshal(netStageConfig{Cases: ids, Wrap: cfg.Wrap, Verbose: cfg.Verbose, Step: 1})
	cmd := exec.CommandContext(ctx, self, append(append([]string(nil), ProbeArgs...), netStage, string(b))...)
	attr := &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	if os.Geteuid() != 0 {
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: os.Geteuid(), HostID: os.Geteuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getegid(), HostID: os.Getegid(), Size: 1}}
		attr.AmbientCaps = []uintptr{unix.CAP_NET_ADMIN}
	}
	cmd.SysProcAttr = attr
	var out bytes.Buffer
	cmd.Stdout = &out
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	cmd.Stderr = progress
	runErr := cmd.Run()
	var rep Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		return nil, fmt.Errorf("the fake-internet child: %v; its output: %q", runErr, tail(out.String(), 500))
	}
	return &rep, nil
}

// netStage is the probe name of the fake-internet child.
const netStage = "fakenet"

func probeFakeNet(args []string) {
	var sc netStageConfig
	if len(args) != 1 || json.Unmarshal([]byte(args[0]), &sc) != nil {
		fmt.Fprintln(os.Stderr, "fakenet: bad configuration")
		return
	}
	if sc.Step == 1 {
		if err := setupNetNamespace(); err != nil {
			fmt.Fprintln(os.Stderr, "fakenet: setting up the namespace:", err)
			return
		}
		// Drop CAP_NET_ADMIN (ambient, as a rootless child has it):
		// the cases run with the harness's own privileges.
		runtime.LockOSThread()
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
			fmt.Fprintln(os.Stderr, "fakenet: clearing ambient capabilities:", err)
			return
		}
		sc.Step = 2
		b, _ := json.Marshal(sc)
		self, err := os.Executable()
		if err == nil {
			err = syscall.Exec(self, append(append([]string{self}, ProbeArgs...), netStage, string(b)), os.Environ())
		}
		fmt.Fprintln(os.Stderr, "fakenet: re-executing:", err)
		return
	}
	rep, err := Run(context.Background(), Config{Cases: sc.Cases, Wrap: sc.Wrap, Verbose: sc.Verbose, Progress: os.Stderr, inNet: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakenet:", err)
		return
	}
	_ = json.NewEncoder(os.Stdout).Encode(rep)
}

// setupNetNamespace brings lo up with the fake internet's addresses and
// lets the harness listen on low ports without a capability.
func setupNetNamespace() error {
	if err := linux.LoopbackUp(); err != nil {
		return err
	}
	for _, a := range []netip.Addr{netExfil, netAllowed, netEvil, netMeta4, netMeta6, netPrivate, netV6} {
		if err := linux.AddAddress("lo", netip.PrefixFrom(a, a.BitLen())); err != nil {
			return err
		}
	}
	return os.WriteFile("/proc/sys/net/ipv4/ip_unprivileged_port_start", []byte("0"), 0)
}

// fakeNet is the fake internet's servers, started by the fixture of the
// child.
type fakeNet struct {
	Meta string               // the metadata service's secret (C-IMDS)
	ls   map[string]*Listener // by "ip:port" (netip.AddrPort form)
}

// serverKind is how a fake server speaks.
type serverKind int

const (
	serveHTTP serverKind = iota // HTTP/1.1 (or raw bytes if the client does not speak it)
	serveTLS                    // TLS (recording the SNI), then HTTP
	serveRaw                    // record what arrives
)

// startFakeNet starts the fake internet's servers.
func (f *Fixture) startFakeNet() error {
	f.Net = &fakeNet{Meta: randHex(16), ls: map[string]*Listener{}}
	f.C.IMDS = f.Net.Meta
	cert, err := fakeCertificate("allowed.test", "*.allowed.test", "evil.test", "*.evil.test", "exfil.test", "*.exfil.test")
	if err != nil {
		return err
	}
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	type srv struct {
		addr  netip.Addr
		port  int
		kind  serverKind
		legit func(string) bool
	}
	var servers []srv
	for _, p := range []int{22, 53, 80, 443, 8080} {
		servers = append(servers, srv{netExfil, p, serveHTTP, nil})
	}
	servers = append(servers,
		srv{netAllowed, 80, serveHTTP, allowedHTTP}, srv{netAllowed, 443, serveTLS, allowedTLS},
		srv{netEvil, 80, serveHTTP, nil}, srv{netEvil, 443, serveTLS, nil},
		srv{netMeta4, 80, serveHTTP, nil}, srv{netMeta6, 80, serveHTTP, nil},
		srv{netPrivate, 80, serveHTTP, nil}, srv{netPrivate, 443, serveTLS, nil},
		srv{netV6, 80, serveHTTP, nil}, srv{netV6, 443, serveTLS, nil},
		srv{netLo, 80, serveHTTP, nil}, srv{netLo, 443, serveTLS, nil}, srv{netLo6, 80, serveHTTP, nil},
	)
	for _, p := range []int{22, 25, 3306, 6379, 9418} {
		servers = append(servers, srv{netAllowed, p, serveRaw, nil})
	}
	servers = append(servers, srv{netAllowed, 8443, serveTLS, nil})
	for _, s := range servers {
		addr := netip.AddrPortFrom(s.addr, uint16(s.port)).String()
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("fake internet: %w", err)
		}
		l := newListener("tcp", addr, func() { ln.Close() })
		l.legit = s.legit
		f.cleanup = append(f.cleanup, l.close)
		f.listeners = append(f.listeners, l)
		f.Net.ls[addr] = l
		var cfg *tls.Config
		if s.kind == serveTLS {
			cfg = tlsCfg
		}
		meta := s.addr == netMeta4 || s.addr == netMeta6
		go l.serveFake(ln, s.kind, cfg, f.fakeReply(meta))
	}
	for _, a := range []netip.AddrPort{netip.AddrPortFrom(netExfil, 53), netip.AddrPortFrom(netExfil, 9999), netip.AddrPortFrom(netV6, 53)} {
		l, err := f.listen("udp", a.String(), "")
		if err != nil {
			return fmt.Errorf("fake internet: %w", err)
		}
		f.Net.ls["udp "+a.String()] = l
	}
	return nil
}

// fakeReply is a fake server's HTTP answer to a request: the metadata
// service's credentials, a redirect to evil.test where asked, or a line.
func (f *Fixture) fakeReply(meta bool) func(req string) string {
	return func(req string) string {
		body := "fake internet\n"
		switch {
		case meta:
			body = `{"Code":"Success","AccessKeyId":"ASIAFAKE","SecretAccessKey":"` + f.Net.Meta + `","Token":"x"}` + "\n"
		case strings.Contains(req, "redirect"):
			return "HTTP/1.1 302 Found\r\nLocation: http://evil.test/followed-redirect\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
		}
		return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\nConnection: close\r\n\r\n" + body
	}
}

// serveFake serves a fake-internet listener: each connection is one
// arrival, recorded as the server understood it ("sni=NAME\n" and the
// request for TLS, the request head and body for HTTP, the bytes
// otherwise).
func (l *Listener) serveFake(ln net.Listener, kind serverKind, tlsCfg *tls.Config, reply func(string) string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		l.begin()
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(3 * time.Second))
			var rec bytes.Buffer
			defer func() { l.record(rec.Bytes(), true) }()
			var conn net.Conn = c
			br := bufio.NewReader(c)
			if kind == serveTLS {
				first, err := br.Peek(1)
				if err != nil && len(first) == 0 {
					rec.WriteString("empty\n") // a connection that carried no byte
					return
				}
				if first[0] != 0x16 {
					rec.WriteString("not tls\n")
					b, _ := io.ReadAll(io.LimitReader(br, 4096))
					rec.Write(b)
					return
				}
				sni := ""
				cfg := tlsCfg.Clone()
				cfg.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
					sni = h.ServerName
					return nil, nil
				}
				tc := tls.Server(&bufferedConn{Conn: c, r: br}, cfg)
				err = tc.Handshake()
				fmt.Fprintf(&rec, "sni=%s\n", sni)
				if err != nil {
					fmt.Fprintf(&rec, "handshake: %v\n", err)
					return
				}
				conn, br = tc, bufio.NewReader(tc)
			}
			if kind == serveRaw {
				_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				b, _ := io.ReadAll(io.LimitReader(br, 4096))
				rec.Write(b)
				return
			}
			req, ok := readHTTP(br)
			rec.WriteString(req)
			if ok {
				_, _ = io.WriteString(conn, reply(req))
			}
		}()
	}
}

// readHTTP reads one request head and its Content-Length body (at most
// 8 KiB in all); anything that is not HTTP is read for 500 ms as it is.
func readHTTP(br *bufio.Reader) (string, bool) {
	var b strings.Builder
	for b.Len() < 8192 {
		line, err := br.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			return b.String(), false
		}
		if b.Len() < 16 && !strings.Contains(line, "HTTP/") {
			// Not a request line: keep what the client sends.
			rest, _ := io.ReadAll(io.LimitReader(br, 4096))
			b.Write(rest)
			return b.String(), false
		}
		if line == "\r\n" || line == "\n" {
			break
		}
	}
	n := 0
	for _, l := range strings.Split(b.String(), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "content-length") {
			n, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if n > 0 {
		body, _ := io.ReadAll(io.LimitReader(br, int64(min(n, 4096))))
		b.Write(body)
	}
	return b.String(), true
}

type bufferedConn struct {
	net.Conn
	r io.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// allowedHTTP is what allowed.test's plain HTTP server may legitimately
// get from an attacked session: requests whose every Host header names
// an allowlisted host, with no proxy credentials forwarded.
func allowedHTTP(a string) bool {
	hosts := 0
	for _, l := range strings.Split(a, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), ":")
		if !ok {
			continue
		}
		switch strings.ToLower(k) {
		case "host":
			h := strings.TrimSpace(v)
			if hp, err := netip.ParseAddrPort(h); err == nil {
				h = hp.Addr().String()
			} else if name, port, err := net.SplitHostPort(h); err == nil && port == "80" {
				h = name
			}
			if !allowedName(h) {
				return false
			}
			hosts++
		case "proxy-authorization", "proxy-connection":
			return false
		}
	}
	return hosts > 0
}

// allowedTLS is what allowed.test's TLS server may legitimately get: a
// handshake naming an allowlisted host, or a connection with no byte.
func allowedTLS(a string) bool {
	first, _, _ := strings.Cut(a, "\n")
	if first == "empty" {
		return true // the proxy may connect to an allowlisted host and send nothing
	}
	sni, ok := strings.CutPrefix(first, "sni=")
	return ok && allowedName(sni)
}

// fakeCertificate is a self-signed certificate for names (the probes
// do not verify it; the server needs one to see a whole handshake).
func fakeCertificate(names ...string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
