package egress

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

var loopback = []string{"127.0.0.1"}

func TestHTTPForward(t *testing.T) {
	up := upstreamHTTP(t, "origin")
	p := startProxy(t, []string{"allowed.test"}, loopback)
	c := p.client()

	resp, err := c.Get(fmt.Sprintf("http://allowed.test:%d/a?b=1", up))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "origin GET /a?b=1" {
		t.Fatalf("allowed request: %s %q", resp.Status, body)
	}
	e := p.wantConnect(fmt.Sprintf("allowed.test:%d", up), "http")
	if e.Detail["address"] != fmt.Sprintf("127.0.0.1:%d", up) || e.Detail["bytes_up"].(int64) == 0 || e.Detail["bytes_down"].(int64) <= int64(len(body)) {
		t.Errorf("net.connect detail %v", e.Detail)
	}

	evil := fmt.Sprintf("evil.test:%d", up)
	resp, err = c.Get("http://" + evil + "/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	want := "cordon: refused connection to " + evil + ": host is not in this session's network allowlist; request capability net.connect:evil.test\n"
	if resp.StatusCode != http.StatusForbidden || string(body) != want || !resp.Close ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("refusal: %s close=%v %q\n%q", resp.Status, resp.Close, resp.Header, body)
	}
	d := p.wantDeny(evil, RuleAllow, "net.connect:evil.test", "http")
	if d.Detail["reason"] != strings.TrimSuffix(want, "\n") {
		t.Errorf("event reason %q", d.Detail["reason"])
	}
	if n := len(p.dials()); n != 1 {
		t.Errorf("%d dials, want 1: a refused host is not dialled", n)
	}

	// Positive control: the same request once the host is granted.
	p.setAllow("evil.test")
	resp, err = c.Get("http://" + evil + "/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "origin GET /x" {
		t.Fatalf("after the grant: %s %q", resp.Status, body)
	}
	p.wantConnect(evil, "http")
	if p.outcome(OutcomeAllowed) != 2 || p.outcome(OutcomeDenied) != 1 || p.outcome(OutcomeError) != 0 {
		t.Errorf("outcomes %v", p.outcomes)
	}
}

// The upstream sees an origin-form request without hop-by-hop or Proxy-*
// headers, and the client a response without the upstream's hop-by-hop
// headers.
func TestHTTPHeaders(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan *http.Request, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		got <- r
		io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: X-Hop, keep-alive\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n"+
			"Proxy-Authenticate: Basic\r\nX-End: kept\r\nContent-Length: 2\r\n\r\nok")
	}()
	up := port(t, ln.Addr())
	p := startProxy(t, []string{"allowed.test"}, loopback)
	c := p.dial()
	fmt.Fprintf(c, "GET http://allowed.test:%d/p?q=1 HTTP/1.1\r\nHost: ignored.test\r\nProxy-Authorization: Basic c2VjcmV0\r\n"+
		"Proxy-Connection: keep-alive\r\nConnection: X-Secret\r\nX-Secret: 1\r\nTE: trailers\r\nX-End: kept\r\n\r\n", up)
	resp, body := readResponse(t, bufio.NewReader(c))
	r := <-got
	if r.RequestURI != "/p?q=1" || r.Host != fmt.Sprintf("allowed.test:%d", up) || !r.Close {
		t.Errorf("upstream saw %q for host %q", r.RequestURI, r.Host)
	}
	for _, h := range []string{"Proxy-Authorization", "Proxy-Connection", "X-Secret", "Te", "User-Agent"} {
		if v, ok := r.Header[h]; ok {
			t.Errorf("upstream got %s: %q", h, v)
		}
	}
	if r.Header.Get("X-End") != "kept" {
		t.Errorf("end-to-end header lost: %v", r.Header)
	}
	if resp.StatusCode != 200 || body != "ok" || resp.Header.Get("X-Hop") != "" || resp.Header.Get("Keep-Alive") != "" ||
		resp.Header.Get("Proxy-Authenticate") != "" || resp.Header.Get("X-End") != "kept" || resp.Close {
		t.Errorf("client got %s %q %v", resp.Status, body, resp.Header)
	}
}

// Every request on a keep-alive connection is checked by itself.
func TestHTTPKeepAlive(t *testing.T) {
	up := upstreamHTTP(t, "origin")
	for _, tt := range []struct {
		name  string
		allow []string
		want  []int
	}{
		{"second host refused", []string{"allowed.test"}, []int{200, 403}},
		{"both allowed", []string{"allowed.test", "evil.test"}, []int{200, 200, 200}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := startProxy(t, tt.allow, loopback)
			c := p.dial()
			br := bufio.NewReader(c)
			for i, host := range []string{"allowed.test", "evil.test", "allowed.test"}[:len(tt.want)] {
				fmt.Fprintf(c, "GET http://%s:%d/%d HTTP/1.1\r\nHost: %[1]s:%[2]d\r\n\r\n", host, up, i)
				resp, body := readResponse(t, br)
				if resp.StatusCode != tt.want[i] {
					t.Fatalf("request %d to %s: %s %q", i, host, resp.Status, body)
				}
				if resp.StatusCode == 200 && body != fmt.Sprintf("origin GET /%d", i) {
					t.Fatalf("request %d: body %q", i, body)
				}
			}
			if tt.want[len(tt.want)-1] == 403 {
				p.wantConnect(fmt.Sprintf("allowed.test:%d", up), "http")
				p.wantDeny(fmt.Sprintf("evil.test:%d", up), RuleAllow, "net.connect:evil.test", "http")
				wantClosed(t, c, 2*time.Second)
			}
		})
	}
}

// A grant (a new allowlist in the pointer) applies to the next request,
// on the same connection.
func TestRuntimeGrant(t *testing.T) {
	up := upstreamHTTP(t, "origin")
	p := startProxy(t, []string{"allowed.test"}, loopback)
	get := func(c net.Conn, br *bufio.Reader, host string) int {
		fmt.Fprintf(c, "GET http://%s:%d/ HTTP/1.1\r\nHost: %[1]s\r\n\r\n", host, up)
		resp, _ := readResponse(t, br)
		return resp.StatusCode
	}
	c := p.dial()
	if s := get(c, bufio.NewReader(c), "evil.test"); s != 403 {
		t.Fatalf("before the grant: %d", s)
	}
	c = p.dial()
	br := bufio.NewReader(c)
	if s := get(c, br, "allowed.test"); s != 200 {
		t.Fatalf("allowed host: %d", s)
	}
	p.setAllow("evil.test")
	if s := get(c, br, "evil.test"); s != 200 {
		t.Fatalf("after the grant, same connection: %d", s)
	}
}

func TestHTTPDialFailure(t *testing.T) {
	closed := closedPort(t)
	p := startProxy(t, []string{"allowed.test", "nowhere.test"}, loopback)
	for _, tt := range []struct{ url, want string }{
		{fmt.Sprintf("http://allowed.test:%d/", closed), "connection refused"},
		{"http://nowhere.test/", "the host name does not resolve"},
	} {
		resp, err := p.client().Get(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway || !strings.HasPrefix(string(body), "cordon: could not connect to ") ||
			!strings.HasSuffix(string(body), ": "+tt.want+"\n") {
			t.Errorf("%s: %s %q", tt.url, resp.Status, body)
		}
	}
	p.noEvent()
	if p.outcome(OutcomeError) != 2 {
		t.Errorf("outcomes %v", p.outcomes)
	}
}

// Bodies are streamed both ways, and interim responses (100 Continue) are
// relayed.
func TestHTTPBodies(t *testing.T) {
	const size = 4 << 20
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/download" {
			w.Header().Set("Content-Length", fmt.Sprint(size))
			io.CopyN(w, pattern{}, size)
			return
		}
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	}))
	t.Cleanup(srv.Close)
	up := port(t, srv.Listener.Addr())
	p := startProxy(t, []string{"allowed.test"}, loopback)

	// A chunked upload of unknown length.
	pr, pw := io.Pipe()
	go func() {
		io.CopyN(pw, pattern{}, size)
		pw.Close()
	}()
	resp, err := p.client().Post(fmt.Sprintf("http://allowed.test:%d/upload", up), "application/octet-stream", pr)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	h := sha256.New()
	io.CopyN(h, pattern{}, size)
	if want := fmt.Sprintf("%d %x", size, h.Sum(nil)); string(body) != want {
		t.Errorf("upload: %q, want %q", body, want)
	}

	resp, err = p.client().Get(fmt.Sprintf("http://allowed.test:%d/download", up))
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != size {
		t.Errorf("download: %d bytes, %v", n, err)
	}

	// Expect: 100-continue: the client sends the body only after the
	// upstream's 100, which must come through.
	c := p.dial()
	br := bufio.NewReader(c)
	fmt.Fprintf(c, "POST http://allowed.test:%d/upload HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", up)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("interim response: %q, %v", line, err)
	}
	for line != "\r\n" {
		if line, err = br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	io.WriteString(c, "hello")
	resp, body2 := readResponse(t, br)
	if resp.StatusCode != 200 || !strings.HasPrefix(body2, "5 ") {
		t.Errorf("after 100 Continue: %s %q", resp.Status, body2)
	}
}

// pattern is an endless reader of a fixed byte sequence.
type pattern struct{}

func (pattern) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(i % 251)
	}
	return len(b), nil
}

func TestMalformedHTTP(t *testing.T) {
	up := upstreamHTTP(t, "origin")
	p := startProxy(t, []string{"allowed.test"}, loopback)
	for _, tt := range []struct {
		name, req string
		status    int
		says      string
	}{
		{"garbage", "GARBAGE\r\n\r\n", 400, "malformed HTTP request"},
		{"binary", "\x16\x03\x01\x00\x05hello\r\n\r\n", 400, "malformed"},
		{"origin form", "GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n", 400, "absolute http:// URI"},
		{"https url", "GET https://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n", 400, "CONNECT"},
		{"ftp url", "GET ftp://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n", 400, "absolute http:// URI"},
		{"connect without port", "CONNECT allowed.test HTTP/1.1\r\nHost: allowed.test\r\n\r\n", 400, "host:port"},
		{"connect port 0", "CONNECT allowed.test:0 HTTP/1.1\r\n\r\n", 400, "from 1 to 65535"},
		{"bad host", "CONNECT bad_host!.test:80 HTTP/1.1\r\n\r\n", 400, "not a valid host name"},
		{"empty label", "GET http://a..test/ HTTP/1.1\r\nHost: a..test\r\n\r\n", 400, "not a valid host name"},
		{"url port too big", "GET http://allowed.test:99999/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n", 400, "from 1 to 65535"},
		{"two lengths", fmt.Sprintf("POST http://allowed.test:%d/ HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", up), 400, "Content-Length"},
		{"unknown coding", fmt.Sprintf("POST http://allowed.test:%d/ HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", up), 400, "transfer encoding"},
		{"huge header", "GET http://allowed.test/ HTTP/1.1\r\nX-Big: " + strings.Repeat("a", 70<<10) + "\r\n\r\n", 431, "larger than 64 KiB"},
		{"endless request line", "GET http://allowed.test/" + strings.Repeat("a", 70<<10), 431, "larger than 64 KiB"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := p.dial()
			go io.WriteString(c, tt.req) // the proxy may stop reading early
			resp, body := readResponse(t, bufio.NewReader(c))
			if resp.StatusCode != tt.status || !resp.Close || !strings.HasPrefix(body, "cordon: ") ||
				!strings.Contains(body, tt.says) || strings.Count(body, "\n") != 1 {
				t.Errorf("%s %q", resp.Status, body)
			}
			wantClosed(t, c, 2*time.Second)
		})
	}
	p.noEvent()
	if len(p.dials()) != 0 {
		t.Errorf("malformed requests dialled %v", p.dials())
	}
	// Positive control: a well-formed request on the same proxy.
	resp, err := p.client().Get(fmt.Sprintf("http://allowed.test:%d/", up))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("control: %v %v", resp, err)
	}
	resp.Body.Close()
}

// A client that sends nothing, or stops in the middle of a head, is
// dropped after the handshake timeout.
func TestSilentClient(t *testing.T) {
	tlsSrv, _ := upstreamTLS(t)
	p := startProxy(t, []string{"allowed.test"}, loopback, func(c *Config) { c.HandshakeTimeout = 200 * time.Millisecond })
	p.redirectTo("127.0.0.1:443", tlsSrv.Listener.Addr().String())
	p.redirectTo("127.0.0.1:8080", tlsSrv.Listener.Addr().String())
	for _, tt := range []struct{ name, send string }{
		{"nothing", ""},
		{"half a request line", "GET http://allowed.test/"},
		{"headers without an end", "GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n"},
		{"socks greeting", "\x05"},
		{"socks request", "\x05\x01\x00\x05\x01\x00\x03"},
		{"no ClientHello on 443", "CONNECT allowed.test:443 HTTP/1.1\r\n\r\n"},
		{"half a ClientHello", "CONNECT allowed.test:8080 HTTP/1.1\r\n\r\n\x16\x03\x01\x02\x00\x01"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := p.dial()
			io.WriteString(c, tt.send)
			start := time.Now()
			wantClosed(t, c, 3*time.Second)
			if d := time.Since(start); d < 150*time.Millisecond {
				t.Errorf("closed after %v, before the timeout", d)
			}
		})
	}
	// Positive control: a prompt client on the same proxy is served.
	c := p.dial()
	io.WriteString(c, "CONNECT allowed.test:443 HTTP/1.1\r\n\r\n")
	br := bufio.NewReader(c)
	if resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"}); err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	tc := tlsClient(c, br, "allowed.test")
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS through the tunnel: %v", err)
	}
}
