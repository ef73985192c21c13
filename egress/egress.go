// Package egress is cordon's egress proxy: the only way out of a session's
// network namespace. Each connection a session opens to its proxy port is
// handed to Serve, which speaks HTTP/1.1 forwarding, HTTP CONNECT and
// SOCKS5 on it, decides every request against the session's allowlist,
// resolves names itself, refuses non-public addresses, dials the exact
// address it checked, and relays.
//
// Every refusal is a deny event with the rule that refused and, where a
// grant can help, the capability to request; every allowed connection is a
// net.connect event with its byte counts when it ends. docs/network.md
// describes the behaviour for agents and operators.
//
// The package knows nothing of namespaces or file descriptors: the caller
// accepts (or is handed) connections and calls Serve on each in its own
// goroutine.
package egress

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cordon-sandbox/cordon/events"
)

// DefaultHandshakeTimeout is Config.HandshakeTimeout when that is zero.
const DefaultHandshakeTimeout = 30 * time.Second

// Outcomes passed to Config.Count: one per HTTP request, CONNECT tunnel
// or SOCKS5 connection.
const (
	OutcomeAllowed = "allowed" // forwarded or relayed
	OutcomeDenied  = "denied"  // refused by policy; a deny event says why
	OutcomeError   = "error"   // malformed input, or the target could not be reached
)

// Rules of the deny events the proxy emits.
const (
	RuleAllow     = "network.allow"      // the host (or port) is not allowlisted
	RuleIPLiteral = "network.ip_literal" // an IP literal that is not itself allowlisted
	RulePrivate   = "network.private"    // a loopback, private or other non-public address
	RuleSNI       = "network.sni"        // the TLS server name is not the requested host, or no TLS where it is required
)

// Protocols, as named in event details.
const (
	protoHTTP    = "http"
	protoConnect = "connect"
	protoSOCKS5  = "socks5"
)

const (
	dialTimeout     = 10 * time.Second // resolving, and then each dial
	maxRequestHead  = 64 << 10         // request line and headers from a client
	maxResponseHead = 1 << 20          // status line and headers from an upstream
	lingerTime      = 500 * time.Millisecond
	lingerBytes     = 256 << 10
)

// Config is what Serve needs to know about the session. Only Allow is
// required; a nil Allow, or one that returns nil, allows nothing.
type Config struct {
	// Session is the session id, put in events.
	Session string
	// Allow returns the current allowlist. It is called for every request,
	// so that a grant (an atomic.Pointer swap) applies to the next one.
	Allow func() *Allowlist
	// Resolve resolves a host name. nil: net.DefaultResolver.
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
	// Dial connects to an "ip:port" the proxy has checked. nil: a
	// net.Dialer with a 10s timeout.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Emit receives the deny and net.connect events. May be nil.
	Emit func(*events.Event)
	// Call returns the id of the tool call to attribute events to ("" if
	// unknown). May be nil.
	Call func() string
	// Count is told the outcome of every request: OutcomeAllowed,
	// OutcomeDenied or OutcomeError. May be nil.
	Count func(outcome string)
	// HandshakeTimeout bounds how long a client may take to send a request
	// head (HTTP request line and headers, the SOCKS5 greeting and request,
	// a TLS ClientHello in a tunnel), and how long a keep-alive HTTP
	// connection may sit idle between requests. 0 means
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
}

// Serve serves one client connection until it closes or ctx ends; it
// closes c. The first byte decides the protocol: 0x05 is SOCKS5, anything
// else HTTP/1.1. Serve does not panic on any input and returns once every
// goroutine it started has ended.
func Serve(ctx context.Context, c net.Conn, cfg *Config) {
	if cfg == nil {
		cfg = &Config{}
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	p := &conn{cfg: cfg, client: c, timeout: cfg.HandshakeTimeout, head: &headLimit{r: c, n: -1}}
	if p.timeout <= 0 {
		p.timeout = DefaultHandshakeTimeout
	}
	p.br = bufio.NewReader(p.head)
	p.client.SetReadDeadline(time.Now().Add(p.timeout))
	first, err := p.br.Peek(1)
	if err != nil {
		return
	}
	if first[0] == socksVersion {
		p.serveSOCKS(ctx)
	} else {
		p.serveHTTP(ctx)
	}
}

// conn is the proxy's side of one client connection.
type conn struct {
	cfg     *Config
	client  net.Conn
	head    *headLimit // under br: caps request heads
	br      *bufio.Reader
	timeout time.Duration
}

// refusal is policy's no to a target.
type refusal struct {
	rule       string
	reason     string // what is wrong, for the agent; ends with the capability to request, if any
	capability string // the grant that would help; "" when none can
}

// check decides t against an allowlist, before anything is resolved: a
// name that is not allowlisted is never looked up.
func check(al *Allowlist, t target) *refusal {
	switch {
	case al.allows(t, true):
		return nil
	case t.ip.IsValid():
		return &refusal{rule: RuleIPLiteral, capability: t.capability(),
			reason: "IP addresses are refused unless the address itself is in this session's network allowlist; use the host name, or request capability " + t.capability()}
	case al.allows(t, false):
		return &refusal{rule: RuleAllow, capability: t.capability(),
			reason: fmt.Sprintf("port %d of this host is not in this session's network allowlist; request capability %s", t.port, t.capability())}
	default:
		return &refusal{rule: RuleAllow, capability: t.capability(),
			reason: "host is not in this session's network allowlist; request capability " + t.capability()}
	}
}

// checkAddr refuses an address the session may not reach.
func checkAddr(al *Allowlist, t target, a netip.Addr) *refusal {
	kind := al.nonPublic(a)
	if kind == "" {
		return nil
	}
	what := "host resolves to"
	if t.ip.IsValid() {
		what = "this is"
	}
	return &refusal{rule: RulePrivate,
		reason: fmt.Sprintf("%s a %s address, which this session may not reach; a capability grant cannot change that, only the policy's network.allow_private", what, kind)}
}

// message is the one line an agent reads about a refusal.
func (r *refusal) message(t target) string {
	return fmt.Sprintf("cordon: refused connection to %s: %s", t, r.reason)
}

// upstream is a connection the proxy dialled, counting its bytes.
type upstream struct {
	net.Conn
	addr     netip.AddrPort // the checked address it was dialled at
	start    time.Time
	up, down atomic.Int64 // bytes written to it, read from it
}

func (u *upstream) Read(b []byte) (int, error) {
	n, err := u.Conn.Read(b)
	u.down.Add(int64(n))
	return n, err
}

func (u *upstream) Write(b []byte) (int, error) {
	n, err := u.Conn.Write(b)
	u.up.Add(int64(n))
	return n, err
}

// CloseWrite half-closes the connection where it can.
func (u *upstream) CloseWrite() error {
	if cw, ok := u.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// open decides t against the current allowlist, resolves a name, checks
// every address it resolves to (any non-public one refuses), and dials the
// checked addresses in turn, never resolving again. It returns a refusal
// when policy says no, or an error when t cannot be reached.
func (p *conn) open(ctx context.Context, t target) (*upstream, *refusal, error) {
	al := p.allowlist()
	if r := check(al, t); r != nil {
		return nil, r, nil
	}
	addrs := []netip.Addr{t.ip}
	if !t.ip.IsValid() {
		var err error
		if addrs, err = p.resolve(ctx, t.host); err != nil {
			return nil, nil, err
		}
	}
	for _, a := range addrs {
		if r := checkAddr(al, t, a); r != nil {
			return nil, r, nil
		}
	}
	var err error
	for _, a := range addrs {
		ap := netip.AddrPortFrom(a.Unmap(), uint16(t.port))
		var c net.Conn
		if c, err = p.dial(ctx, ap); err == nil {
			return &upstream{Conn: c, addr: ap, start: time.Now()}, nil, nil
		}
	}
	return nil, nil, err
}

func (p *conn) allowlist() *Allowlist {
	if p.cfg.Allow == nil {
		return nil
	}
	return p.cfg.Allow()
}

func (p *conn) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	var addrs []netip.Addr
	var err error
	if p.cfg.Resolve != nil {
		addrs, err = p.cfg.Resolve(ctx, host)
	} else {
		addrs, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	}
	if err == nil && len(addrs) == 0 {
		err = &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
	}
	return addrs, err
}

func (p *conn) dial(ctx context.Context, ap netip.AddrPort) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if p.cfg.Dial != nil {
		return p.cfg.Dial(ctx, "tcp", ap.String())
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", ap.String())
}

// unreachable describes why a target could not be reached, for the agent
// (without addresses or other details of the host's network), with the
// SOCKS5 reply code that says the same.
func unreachable(err error) (string, byte) {
	var dns *net.DNSError
	switch {
	case errors.As(err, &dns):
		return "the host name does not resolve", socksHostUnreachable
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused", socksConnRefused
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable", socksNetUnreachable
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable", socksHostUnreachable
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timed out", socksHostUnreachable
	}
	return "connection failed", socksFailure
}

// refuse reports a refusal: a deny event and the denied outcome.
func (p *conn) refuse(t target, proto string, r *refusal) {
	e := p.event(events.Deny, t)
	e.Rule = r.rule
	if r.capability != "" {
		e.Remedy = &events.Remedy{Capability: r.capability}
	}
	e.Detail = map[string]any{"reason": r.message(t), "protocol": proto}
	p.emit(e)
	p.count(OutcomeDenied)
}

// connected reports an allowed connection that has ended.
func (p *conn) connected(t target, proto string, u *upstream) {
	e := p.event(events.NetConnect, t)
	e.Detail = map[string]any{
		"protocol":    proto,
		"address":     u.addr.String(),
		"bytes_up":    u.up.Load(),
		"bytes_down":  u.down.Load(),
		"duration_ms": time.Since(u.start).Milliseconds(),
	}
	p.emit(e)
}

func (p *conn) event(kind events.Kind, t target) *events.Event {
	e := &events.Event{Time: time.Now(), Session: p.cfg.Session, Kind: kind,
		Layer: events.LayerNet, Op: "net.connect", Target: t.String()}
	if p.cfg.Call != nil {
		e.Call = p.cfg.Call()
	}
	return e
}

func (p *conn) emit(e *events.Event) {
	if p.cfg.Emit != nil {
		p.cfg.Emit(e)
	}
}

func (p *conn) count(outcome string) {
	if p.cfg.Count != nil {
		p.cfg.Count(outcome)
	}
}

// linger ends the client connection after a final reply: it stops
// sending, then reads and drops what the client is still sending (a
// request body) for a moment, so that closing does not reset the
// connection before the client has read the reply.
func (p *conn) linger() {
	if cw, ok := p.client.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		p.head.n = -1
		p.client.SetReadDeadline(time.Now().Add(lingerTime))
		io.CopyN(io.Discard, p.br, lingerBytes)
	}
	p.client.Close()
}

// headLimit caps how many bytes may be read while n >= 0, so that a
// request head cannot grow without bound; n < 0 is no limit.
type headLimit struct {
	r io.Reader
	n int64
}

var errHeadTooLarge = errors.New("request head too large")

func (l *headLimit) Read(b []byte) (int, error) {
	if l.n == 0 {
		return 0, errHeadTooLarge
	}
	if l.n > 0 && int64(len(b)) > l.n {
		b = b[:l.n]
	}
	n, err := l.r.Read(b)
	if l.n > 0 {
		l.n -= int64(n)
	}
	return n, err
}
