package egress

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cordon-sandbox/cordon/events"
)

// testNames is the resolver of every test: fake names, all on loopback,
// except metadata.test, which names the cloud metadata address (never
// dialled: see safeDial).
var testNames = map[string][]netip.Addr{
	"allowed.test":    {netip.MustParseAddr("127.0.0.1")},
	"evil.test":       {netip.MustParseAddr("127.0.0.1")},
	"rebind.test":     {netip.MustParseAddr("127.0.0.1")},
	"wild.test":       {netip.MustParseAddr("127.0.0.1")},
	"sub.wild.test":   {netip.MustParseAddr("127.0.0.1")},
	"dual.test":       {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
	"metadata.test":   {netip.MustParseAddr("169.254.169.254")},
	"mixed.test":      {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.1.2.3")},
	"nowhere.test":    nil,
	"slow-dns.test":   nil,
	"upper-sni.test":  {netip.MustParseAddr("127.0.0.1")},
	"other-port.test": {netip.MustParseAddr("127.0.0.1")},
}

func testResolve(ctx context.Context, host string) ([]netip.Addr, error) {
	addrs, ok := testNames[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return addrs, nil
}

// testProxy is a test listener on 127.0.0.1 that calls Serve for every
// connection it accepts, recording events, outcomes and dials.
type testProxy struct {
	t      *testing.T
	addr   string
	allow  atomic.Pointer[Allowlist]
	events chan *events.Event
	cfg    Config

	mu       sync.Mutex
	outcomes map[string]int
	dialled  []string
	// redirect maps an address the proxy dials to the loopback address
	// really dialled (a test server standing in for port 443).
	redirect map[string]string
}

// startProxy starts a proxy allowing hosts, with private prefixes; opts
// adjust its Config. The test's cleanup ends every Serve and waits for it.
func startProxy(t *testing.T, hosts, private []string, opts ...func(*Config)) *testProxy {
	t.Helper()
	al, err := ParseAllowlist(hosts, private)
	if err != nil {
		t.Fatal(err)
	}
	p := &testProxy{t: t, events: make(chan *events.Event, 64), outcomes: map[string]int{}, redirect: map[string]string{}}
	p.allow.Store(al)
	p.cfg = Config{
		Session: "s1",
		Allow:   p.allow.Load,
		Resolve: testResolve,
		Dial:    p.safeDial,
		Emit:    func(e *events.Event) { p.events <- e },
		Call:    func() string { return "c7" },
		Count: func(o string) {
			p.mu.Lock()
			p.outcomes[o]++
			p.mu.Unlock()
		},
		HandshakeTimeout: 5 * time.Second,
	}
	for _, o := range opts {
		o(&p.cfg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { Serve(ctx, c, &p.cfg) })
		}
	})
	t.Cleanup(func() {
		cancel()
		ln.Close()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after its context ended")
		}
	})
	return p
}

// safeDial dials only loopback addresses, after redirection: the tests
// send nothing anywhere else, whatever the proxy decides.
func (p *testProxy) safeDial(ctx context.Context, network, addr string) (net.Conn, error) {
	p.mu.Lock()
	p.dialled = append(p.dialled, addr)
	if to, ok := p.redirect[addr]; ok {
		addr = to
	}
	p.mu.Unlock()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().IsLoopback() {
		return nil, fmt.Errorf("test dialer: %s is not loopback: %w", addr, errors.ErrUnsupported)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

func (p *testProxy) dials() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.dialled...)
}

func (p *testProxy) outcome(o string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.outcomes[o]
}

// redirectTo makes the proxy's dials of from reach to instead.
func (p *testProxy) redirectTo(from, to string) {
	p.mu.Lock()
	p.redirect[from] = to
	p.mu.Unlock()
}

// setAllow replaces the allowlist, as a runtime grant does.
func (p *testProxy) setAllow(hosts ...string) {
	p.t.Helper()
	al, err := p.allow.Load().With(hosts...)
	if err != nil {
		p.t.Fatal(err)
	}
	p.allow.Store(al)
}

// event waits for the next event.
func (p *testProxy) event() *events.Event {
	p.t.Helper()
	select {
	case e := <-p.events:
		return e
	case <-time.After(5 * time.Second):
		p.t.Fatal("no event")
		return nil
	}
}

// noEvent checks that no event comes for a moment.
func (p *testProxy) noEvent() {
	p.t.Helper()
	select {
	case e := <-p.events:
		p.t.Fatalf("unexpected event %+v", e)
	case <-time.After(50 * time.Millisecond):
	}
}

// wantDeny waits for a deny event and checks it.
func (p *testProxy) wantDeny(target, rule, capability, proto string) *events.Event {
	p.t.Helper()
	e := p.event()
	if e.Kind != events.Deny || e.Layer != events.LayerNet || e.Op != "net.connect" || e.Target != target || e.Rule != rule ||
		e.Session != "s1" || e.Call != "c7" || e.Detail["protocol"] != proto {
		p.t.Fatalf("deny event %+v, want target %s rule %s protocol %s", e, target, rule, proto)
	}
	got := ""
	if e.Remedy != nil {
		got = e.Remedy.Capability
	}
	if got != capability {
		p.t.Fatalf("remedy %q, want %q", got, capability)
	}
	reason, _ := e.Detail["reason"].(string)
	if !strings.HasPrefix(reason, "cordon: refused connection to "+target+": ") || strings.Contains(reason, "\n") {
		p.t.Fatalf("reason %q", reason)
	}
	return e
}

// wantConnect waits for a net.connect event and checks it.
func (p *testProxy) wantConnect(target, proto string) *events.Event {
	p.t.Helper()
	e := p.event()
	if e.Kind != events.NetConnect || e.Target != target || e.Detail["protocol"] != proto || e.Session != "s1" || e.Call != "c7" {
		p.t.Fatalf("net.connect event %+v, want target %s protocol %s", e, target, proto)
	}
	return e
}

// dial opens a raw connection to the proxy.
func (p *testProxy) dial() net.Conn {
	p.t.Helper()
	c, err := net.DialTimeout("tcp", p.addr, 5*time.Second)
	if err != nil {
		p.t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	p.t.Cleanup(func() { c.Close() })
	return c
}

// client returns an HTTP client that uses the proxy for http and https
// and trusts any certificate.
func (p *testProxy) client() *http.Client {
	tr := &http.Transport{
		Proxy:             http.ProxyURL(mustURL(p.t, "http://"+p.addr)),
		DisableKeepAlives: true,
	}
	tr.TLSClientConfig = insecureTLS()
	p.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// upstream starts an HTTP server on 127.0.0.1 that answers with its name
// and the request's path, and returns its port.
func upstreamHTTP(t *testing.T, name string) int {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s", name, r.Method, r.URL.RequestURI())
	}))
	t.Cleanup(srv.Close)
	return port(t, srv.Listener.Addr())
}

func port(t *testing.T, a net.Addr) int {
	t.Helper()
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return int(ap.Port())
}

// closedPort returns a loopback port that nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return port(t, ln.Addr())
}

// readResponse reads one response from a raw connection, with its body.
func readResponse(t *testing.T, br *bufio.Reader) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp, string(body)
}

// wantClosed checks that the proxy closes c (after whatever it still
// sends) within the given time.
func wantClosed(t *testing.T, c net.Conn, within time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(within))
	if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Fatalf("connection not closed within %v: %v", within, err)
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// insecureTLS trusts any certificate: the test servers' certificates are
// for example.com and 127.0.0.1, and the tests name their servers
// allowed.test (so that the TLS server name matches the CONNECT host).
func insecureTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true}
}

// tlsClient starts TLS over a tunnel whose reply was read through br.
func tlsClient(c net.Conn, br *bufio.Reader, serverName string) *tls.Conn {
	cfg := insecureTLS()
	cfg.ServerName = serverName
	return tls.Client(&bufConn{Conn: c, r: br}, cfg)
}

// bufConn reads a connection through a bufio.Reader that already holds
// some of it.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// connect sends "CONNECT hostport" on a new connection and returns the
// connection, its reader and the proxy's reply.
func (p *testProxy) connect(hostport string) (net.Conn, *bufio.Reader, *http.Response) {
	p.t.Helper()
	c := p.dial()
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %[1]s\r\n\r\n", hostport)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		p.t.Fatalf("CONNECT %s: %v", hostport, err)
	}
	return c, br, resp
}
