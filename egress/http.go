package egress

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"time"
)

// serveHTTP serves HTTP/1.1 proxy requests: absolute-URI requests are
// forwarded, each checked on its own (the host may change from one to the
// next on a keep-alive connection); a CONNECT turns the connection into a
// tunnel.
func (p *conn) serveHTTP(ctx context.Context) {
	for {
		p.head.n = maxRequestHead
		p.client.SetReadDeadline(time.Now().Add(p.timeout))
		req, err := http.ReadRequest(p.br)
		p.head.n = -1
		if err != nil {
			p.badHead(err)
			return
		}
		p.client.SetReadDeadline(time.Time{})
		if req.Method == http.MethodConnect {
			p.connect(ctx, req)
			return
		}
		if !p.forward(ctx, req) {
			return
		}
	}
}

// badHead answers a request head that could not be read: nothing when
// the client closed or went silent, 431 or 400 when it sent something
// this proxy will not parse.
func (p *conn) badHead(err error) {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), isTimeout(err), errors.Is(err, net.ErrClosed):
		return
	case errors.Is(err, errHeadTooLarge):
		p.count(OutcomeError)
		p.reply(http.StatusRequestHeaderFieldsTooLarge, fmt.Sprintf("cordon: request line and headers are larger than %d KiB", maxRequestHead>>10))
	default:
		p.count(OutcomeError)
		p.reply(http.StatusBadRequest, "cordon: malformed HTTP request: "+oneLine(err.Error()))
	}
}

// connect serves "CONNECT host:port": check, dial, "200 Connection
// established", then a tunnel.
func (p *conn) connect(ctx context.Context, req *http.Request) {
	t, err := parseHostPort(req.RequestURI)
	if err != nil {
		p.count(OutcomeError)
		p.reply(http.StatusBadRequest, "cordon: CONNECT takes host:port: "+oneLine(err.Error()))
		return
	}
	u, ok := p.openHTTP(ctx, t, protoConnect)
	if !ok {
		return
	}
	p.client.SetWriteDeadline(time.Now().Add(p.timeout))
	_, err = io.WriteString(p.client, "HTTP/1.1 200 Connection established\r\n\r\n")
	p.client.SetWriteDeadline(time.Time{})
	if err != nil {
		u.Close()
		p.count(OutcomeError)
		return
	}
	p.tunnel(ctx, t, protoConnect, u)
}

// forward relays one absolute-URI request and its response over a new
// upstream connection. It reports whether the client connection may carry
// another request.
func (p *conn) forward(ctx context.Context, req *http.Request) bool {
	switch {
	case req.URL.Scheme == "https":
		p.count(OutcomeError)
		p.reply(http.StatusBadRequest, "cordon: https:// URLs are not forwarded; an HTTPS request goes through CONNECT host:443 (set https_proxy, not only http_proxy)")
		return false
	case req.URL.Scheme != "http" || req.URL.Host == "":
		p.count(OutcomeError)
		p.reply(http.StatusBadRequest, "cordon: this is an HTTP proxy: send an absolute http:// URI (GET http://host/path) or CONNECT host:port")
		return false
	}
	port := 80
	if s := req.URL.Port(); s != "" {
		var err error
		if port, err = parsePort(s); err != nil {
			p.count(OutcomeError)
			p.reply(http.StatusBadRequest, "cordon: "+err.Error())
			return false
		}
	}
	t, err := newTarget(req.URL.Hostname(), port)
	if err != nil {
		p.count(OutcomeError)
		p.reply(http.StatusBadRequest, "cordon: "+oneLine(err.Error()))
		return false
	}
	u, ok := p.openHTTP(ctx, t, protoHTTP)
	if !ok {
		return false
	}
	p.count(OutcomeAllowed)
	keep := p.exchange(ctx, t, req, u)
	p.connected(t, protoHTTP, u)
	return keep
}

// openHTTP opens an upstream connection for a request or tunnel to t, or
// answers the client with 403 (refused), 502 (unreachable), and closes.
func (p *conn) openHTTP(ctx context.Context, t target, proto string) (*upstream, bool) {
	u, r, err := p.open(ctx, t)
	switch {
	case r != nil:
		p.refuse(t, proto, r)
		p.reply(http.StatusForbidden, r.message(t))
		return nil, false
	case err != nil:
		p.count(OutcomeError)
		why, _ := unreachable(err)
		p.reply(http.StatusBadGateway, fmt.Sprintf("cordon: could not connect to %s: %s", t, why))
		return nil, false
	}
	return u, true
}

// exchange sends req to u in origin form and relays the response. The
// request is written while the response is read, so that interim
// responses (100 Continue) and early answers reach the client. It
// reports whether the client connection may carry another request, and
// closes u: every request has its own upstream connection.
func (p *conn) exchange(ctx context.Context, t target, req *http.Request, u *upstream) bool {
	stop := context.AfterFunc(ctx, func() { u.Close() })
	defer stop()
	defer u.Close()

	clientClose := req.Close || !req.ProtoAtLeast(1, 1)
	removeHopHeaders(req.Header)
	if _, ok := req.Header["User-Agent"]; !ok {
		req.Header["User-Agent"] = []string{""} // or Write adds Go's own
	}
	req.Close = true // ask the upstream to close after its response
	upw := bufio.NewWriter(u)
	if req.Body != http.NoBody {
		req.Body = flushReader{req.Body, upw}
	}
	wrote := make(chan error, 1)
	go func() {
		err := req.Write(relayWriter{upw})
		if err == nil {
			err = upw.Flush()
		}
		wrote <- err
	}()
	// stopWriter ends the request writer, which may be waiting on either
	// connection, and waits for it.
	stopWriter := func() {
		u.Close()
		p.client.SetReadDeadline(time.Now())
		<-wrote
	}

	lim := &headLimit{r: u}
	cw := bufio.NewWriter(p.client)
	resp, err := p.readResponse(bufio.NewReader(lim), lim, req, cw)
	if err != nil {
		stopWriter()
		p.client.SetReadDeadline(time.Time{})
		p.reply(http.StatusBadGateway, fmt.Sprintf("cordon: bad response from %s: %s", t, oneLine(err.Error())))
		return false
	}
	removeHopHeaders(resp.Header)
	resp.Proto, resp.ProtoMajor, resp.ProtoMinor = "HTTP/1.1", 1, 1
	resp.Close = clientClose
	if !req.ProtoAtLeast(1, 1) && chunked(resp.TransferEncoding) {
		resp.TransferEncoding, resp.ContentLength = nil, -1 // HTTP/1.0 has no chunks
	}
	if resp.Body != http.NoBody {
		resp.Body = flushReader{resp.Body, cw}
	}
	err = resp.Write(relayWriter{cw})
	if err == nil {
		err = cw.Flush()
	}
	keep := err == nil && !resp.Close && (resp.ContentLength >= 0 || chunked(resp.TransferEncoding))

	// The writer is normally done: an upstream answers once it has the
	// request. One that answered early has not read the whole body, and
	// the rest of it is not worth sending.
	select {
	case werr := <-wrote:
		keep = keep && werr == nil
	case <-time.After(lingerTime):
		stopWriter()
		keep = false
	}
	return keep
}

// readResponse reads the final response to req from an upstream, relaying
// interim (1xx) responses to the client as they come.
func (p *conn) readResponse(br *bufio.Reader, lim *headLimit, req *http.Request, cw *bufio.Writer) (*http.Response, error) {
	for range 8 {
		lim.n = maxResponseHead
		resp, err := http.ReadResponse(br, req)
		lim.n = -1
		if errors.Is(err, errHeadTooLarge) {
			return nil, fmt.Errorf("response head larger than %d KiB", maxResponseHead>>10)
		}
		if err != nil {
			return nil, err
		}
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols:
			return nil, errors.New("101 Switching Protocols, though the proxy did not forward Upgrade")
		case resp.StatusCode >= 200:
			return resp, nil
		}
		removeHopHeaders(resp.Header)
		fmt.Fprintf(cw, "HTTP/1.1 %03d %s\r\n", resp.StatusCode, http.StatusText(resp.StatusCode))
		resp.Header.Write(cw)
		cw.WriteString("\r\n")
		if err := cw.Flush(); err != nil {
			return nil, err
		}
	}
	return nil, errors.New("too many interim responses")
}

// hopHeaders are the hop-by-hop headers of RFC 9110 section 7.6.1, and
// the non-standard ones clients send to proxies.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade"}

// removeHopHeaders removes the hop-by-hop headers, the headers named in
// Connection, and every Proxy-* header (credentials for this proxy go
// nowhere else).
func removeHopHeaders(h http.Header) {
	for _, v := range h.Values("Connection") {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
	for name := range h {
		if strings.HasPrefix(name, "Proxy-") {
			delete(h, name)
		}
	}
}

func chunked(te []string) bool {
	return len(te) > 0 && te[0] == "chunked"
}

// flushReader flushes w before every read from the body under it, so that
// what was relayed so far is sent before the relay waits for more.
type flushReader struct {
	io.ReadCloser
	w *bufio.Writer
}

func (f flushReader) Read(b []byte) (int, error) {
	if f.w.Buffered() > 0 {
		if err := f.w.Flush(); err != nil {
			return 0, err
		}
	}
	return f.ReadCloser.Read(b)
}

// relayWriter is what a message is written to: a *bufio.Writer without
// ReadFrom, which would read a body straight into the buffer flushReader
// flushes. WriteByte keeps net/http from adding a bufio.Writer of its own.
type relayWriter struct {
	w *bufio.Writer
}

func (r relayWriter) Write(b []byte) (int, error)       { return r.w.Write(b) }
func (r relayWriter) WriteString(s string) (int, error) { return r.w.WriteString(s) }
func (r relayWriter) WriteByte(c byte) error            { return r.w.WriteByte(c) }

// reply sends a final text/plain answer of one line and ends the
// connection.
func (p *conn) reply(status int, line string) {
	p.client.SetWriteDeadline(time.Now().Add(p.timeout))
	fmt.Fprintf(p.client, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s\n",
		status, http.StatusText(status), len(line)+1, line)
	p.linger()
}

// oneLine makes text from parsers (which may quote client input) safe to
// show as one line: control and non-ASCII bytes become "?", and it is
// cut at 200 bytes.
func oneLine(s string) string {
	b := []byte(s)
	if len(b) > 200 {
		b = append(b[:197], "..."...)
	}
	for i, c := range b {
		if c < ' ' || c >= 0x7f {
			b[i] = '?'
		}
	}
	return string(b)
}
