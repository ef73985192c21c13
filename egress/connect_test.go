package egress

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// upstreamTLS starts an HTTPS server on 127.0.0.1 and returns its port.
func upstreamTLS(t *testing.T) (*httptest.Server, int) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "tls %s", r.Host)
	}))
	// Refused handshakes are what the tests are about; don't log them.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, port(t, srv.Listener.Addr())
}

func TestConnect(t *testing.T) {
	_, up := upstreamTLS(t)
	p := startProxy(t, []string{"allowed.test"}, loopback)

	resp, err := p.client().Get(fmt.Sprintf("https://allowed.test:%d/", up))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != fmt.Sprintf("tls allowed.test:%d", up) {
		t.Fatalf("HTTPS through CONNECT: %s %q", resp.Status, body)
	}
	p.wantConnect(fmt.Sprintf("allowed.test:%d", up), "connect")

	evil := fmt.Sprintf("evil.test:%d", up)
	c, br, resp := p.connect(evil)
	body, _ = io.ReadAll(resp.Body)
	want := "cordon: refused connection to " + evil + ": host is not in this session's network allowlist; request capability net.connect:evil.test\n"
	if resp.StatusCode != 403 || string(body) != want || !resp.Close {
		t.Fatalf("refused CONNECT: %s %q", resp.Status, body)
	}
	p.wantDeny(evil, RuleAllow, "net.connect:evil.test", "connect")
	wantClosed(t, c, 2*time.Second)

	// Positive control: the same CONNECT and handshake after a grant.
	p.setAllow("evil.test")
	c, br, resp = p.connect(evil)
	if resp.StatusCode != 200 || resp.Status != "200 Connection established" {
		t.Fatalf("granted CONNECT: %s", resp.Status)
	}
	if err := tlsClient(c, br, "evil.test").Handshake(); err != nil {
		t.Fatalf("TLS after the grant: %v", err)
	}
}

func TestConnectIPLiteral(t *testing.T) {
	_, up := upstreamTLS(t)
	lit := fmt.Sprintf("127.0.0.1:%d", up)
	p := startProxy(t, []string{"allowed.test"}, loopback)
	_, _, resp := p.connect(lit)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 403 || !strings.Contains(string(body), "IP addresses are refused unless the address itself is in this session's network allowlist") {
		t.Fatalf("IP literal: %s %q", resp.Status, body)
	}
	p.wantDeny(lit, RuleIPLiteral, "net.connect:127.0.0.1", "connect")
	_, _, resp = p.connect(fmt.Sprintf("[::1]:%d", up))
	if resp.StatusCode != 403 {
		t.Fatalf("IPv6 literal: %s", resp.Status)
	}
	p.wantDeny(fmt.Sprintf("[::1]:%d", up), RuleIPLiteral, "net.connect:[::1]", "connect")
	if len(p.dials()) != 0 {
		t.Errorf("dialled %v", p.dials())
	}

	// Allowed once the literal itself is listed; no SNI is fine, and an
	// SNI naming something else is not.
	p.setAllow("127.0.0.1")
	c, br, resp := p.connect(lit)
	if resp.StatusCode != 200 {
		t.Fatalf("listed literal: %s", resp.Status)
	}
	tc := tlsClient(c, br, "")
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS without SNI to a listed literal: %v", err)
	}
	tc.Close()
	p.wantConnect(lit, "connect")
	c, br, _ = p.connect(lit)
	if err := tlsClient(c, br, "allowed.test").Handshake(); err == nil {
		t.Fatal("SNI allowed.test to CONNECT 127.0.0.1 passed")
	}
	p.wantDeny(lit, RuleSNI, "", "connect")
}

func TestConnectSNIMismatch(t *testing.T) {
	_, up := upstreamTLS(t)
	target := fmt.Sprintf("allowed.test:%d", up)
	p := startProxy(t, []string{"allowed.test", "evil.test"}, loopback)

	c, br, resp := p.connect(target)
	if resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	if err := tlsClient(c, br, "evil.test").Handshake(); err == nil {
		t.Fatal("domain fronting: handshake with SNI evil.test through CONNECT allowed.test succeeded")
	}
	e := p.wantDeny(target, RuleSNI, "", "connect")
	if want := `TLS SNI "evil.test" does not match the requested host "allowed.test"`; !strings.HasSuffix(e.Detail["reason"].(string), want) {
		t.Errorf("reason %q", e.Detail["reason"])
	}
	if p.outcome(OutcomeDenied) != 1 || p.outcome(OutcomeAllowed) != 0 {
		t.Errorf("outcomes %v", p.outcomes)
	}

	// Positive controls: case and a trailing dot do not matter.
	for _, name := range []string{"allowed.test", "Allowed.TEST"} {
		c, br, _ = p.connect(target)
		tc := tlsClient(c, br, name)
		if err := tc.Handshake(); err != nil {
			t.Fatalf("SNI %q: %v", name, err)
		}
		tc.Close()
		p.wantConnect(target, "connect")
	}
}

// On port 443 the tunnel must carry TLS; elsewhere anything goes.
func TestConnectTLSPort(t *testing.T) {
	tlsSrv, _ := upstreamTLS(t)
	plain := upstreamHTTP(t, "plain")
	p := startProxy(t, []string{"allowed.test"}, loopback)
	p.redirectTo("127.0.0.1:443", fmt.Sprintf("127.0.0.1:%d", plain))

	c, br, resp := p.connect("allowed.test:443")
	if resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, _ := io.Copy(io.Discard, br); n != 0 {
		t.Fatalf("plain HTTP on port 443 got %d bytes of answer", n)
	}
	e := p.wantDeny("allowed.test:443", RuleSNI, "", "connect")
	if !strings.Contains(e.Detail["reason"].(string), "port 443 is for TLS") {
		t.Errorf("reason %q", e.Detail["reason"])
	}

	// Positive control: TLS on 443, and plain HTTP on another port.
	p.redirectTo("127.0.0.1:443", tlsSrv.Listener.Addr().String())
	c, br, _ = p.connect("allowed.test:443")
	if err := tlsClient(c, br, "allowed.test").Handshake(); err != nil {
		t.Fatalf("TLS on 443: %v", err)
	}
	c, br, _ = p.connect(fmt.Sprintf("allowed.test:%d", plain))
	io.WriteString(c, "GET /x HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
	if resp, body := readResponse(t, br); resp.StatusCode != 200 || body != "plain GET /x" {
		t.Fatalf("plain HTTP through CONNECT: %s %q", resp.Status, body)
	}
}

func TestPrivateAddresses(t *testing.T) {
	_, up := upstreamTLS(t)
	rebind := fmt.Sprintf("rebind.test:%d", up)

	p := startProxy(t, []string{"rebind.test", "mixed.test", "dual.test"}, nil)
	_, _, resp := p.connect(rebind)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 403 || !strings.Contains(string(body), "host resolves to a loopback address") {
		t.Fatalf("name resolving to loopback: %s %q", resp.Status, body)
	}
	p.wantDeny(rebind, RulePrivate, "", "connect")
	if len(p.dials()) != 0 {
		t.Errorf("dialled %v", p.dials())
	}

	// Positive control: allowed where the policy allows loopback.
	p = startProxy(t, []string{"rebind.test", "mixed.test", "dual.test"}, loopback)
	if _, _, resp = p.connect(rebind); resp.StatusCode != 200 {
		t.Fatalf("with allow_private: %s", resp.Status)
	}
	// Any one address of a name that is not covered refuses.
	for _, name := range []string{"mixed.test", "dual.test"} {
		tg := fmt.Sprintf("%s:%d", name, up)
		if _, _, resp = p.connect(tg); resp.StatusCode != 403 {
			t.Fatalf("%s: %s", name, resp.Status)
		}
		p.wantDeny(tg, RulePrivate, "", "connect")
	}
	p = startProxy(t, []string{"dual.test"}, []string{"127.0.0.1", "::1"})
	if _, _, resp = p.connect(fmt.Sprintf("dual.test:%d", up)); resp.StatusCode != 200 {
		t.Fatalf("dual.test with both covered: %s", resp.Status)
	}
	if d := p.dials(); len(d) != 1 || d[0] != fmt.Sprintf("127.0.0.1:%d", up) {
		t.Errorf("dialled %v, want the first checked address only", d)
	}
}

// The metadata address is refused by name and as a literal, even where a
// prefix covers the link-local range; listed by itself, it is allowed.
func TestMetadataAddress(t *testing.T) {
	up := upstreamHTTP(t, "metadata")
	allow := []string{"metadata.test", "169.254.169.254"}
	for _, private := range [][]string{nil, {"169.254.0.0/16"}, {"0.0.0.0/0"}} {
		p := startProxy(t, allow, private)
		c := p.client()
		for _, u := range []string{"http://metadata.test/latest/meta-data/", "http://169.254.169.254/latest/meta-data/"} {
			resp, err := c.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 403 || !strings.Contains(string(body), "cloud metadata address") {
				t.Errorf("%s with allow_private %v: %s %q", u, private, resp.Status, body)
			}
			p.wantDeny(strings.Split(u, "/")[2]+":80", RulePrivate, "", "http")
		}
		if len(p.dials()) != 0 {
			t.Errorf("dialled %v", p.dials())
		}
	}
	// Positive control; the dial is redirected to a loopback stand-in.
	p := startProxy(t, allow, []string{"169.254.169.254"})
	p.redirectTo("169.254.169.254:80", fmt.Sprintf("127.0.0.1:%d", up))
	resp, err := p.client().Get("http://169.254.169.254/latest/meta-data/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("listed metadata address: %s", resp.Status)
	}
}

func TestWildcardAndPort(t *testing.T) {
	up := upstreamHTTP(t, "origin")
	other := upstreamHTTP(t, "other")
	p := startProxy(t, []string{"*.wild.test", fmt.Sprintf("other-port.test:%d", up)}, loopback)
	c := p.client()
	for _, tt := range []struct {
		target string
		status int
		says   string
	}{
		{fmt.Sprintf("sub.wild.test:%d", up), 200, ""},
		{fmt.Sprintf("wild.test:%d", up), 403, "host is not in this session's network allowlist; request capability net.connect:wild.test"},
		{fmt.Sprintf("other-port.test:%d", up), 200, ""},
		{fmt.Sprintf("other-port.test:%d", other), 403, fmt.Sprintf("port %d of this host is not in this session's network allowlist; request capability net.connect:other-port.test", other)},
	} {
		resp, err := c.Get("http://" + tt.target + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || tt.status == 403 && !strings.HasSuffix(string(body), tt.says+"\n") {
			t.Errorf("%s: %s %q", tt.target, resp.Status, body)
		}
		if tt.status == 403 {
			p.wantDeny(tt.target, RuleAllow, "net.connect:"+strings.Split(tt.target, ":")[0], "http")
		} else {
			p.wantConnect(tt.target, "http")
		}
	}
}

// A tunnel's net.connect event counts the bytes each way.
func TestNetConnectBytes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.ReadFull(c, make([]byte, 1000))
			c.Write(bytes.Repeat([]byte("d"), 3000))
			c.Close()
		}
	}()
	up := port(t, ln.Addr())
	target := fmt.Sprintf("allowed.test:%d", up)
	p := startProxy(t, []string{"allowed.test"}, loopback)

	check := func(proto string, c net.Conn, r io.Reader) {
		t.Helper()
		c.Write(bytes.Repeat([]byte("u"), 1000))
		n, err := io.Copy(io.Discard, r)
		if n != 3000 || err != nil {
			t.Fatalf("%s: read %d bytes, %v", proto, n, err)
		}
		c.Close()
		e := p.wantConnect(target, proto)
		if e.Detail["bytes_up"] != int64(1000) || e.Detail["bytes_down"] != int64(3000) ||
			e.Detail["address"] != fmt.Sprintf("127.0.0.1:%d", up) || e.Detail["duration_ms"].(int64) < 0 {
			t.Errorf("%s: detail %v", proto, e.Detail)
		}
	}
	c, br, _ := p.connect(target)
	check("connect", c, br)
	c = p.dial()
	if code := socksConnect(t, c, socksDomain("allowed.test"), up); code != socksSucceeded {
		t.Fatalf("SOCKS5 reply %d", code)
	}
	check("socks5", c, c)
}
