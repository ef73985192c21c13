package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// tlsPorts are the ports whose tunnels must start with a TLS ClientHello.
var tlsPorts = map[int]bool{443: true, 8443: true}

// tunnel relays bytes both ways between the client and u, a connection to
// t that policy allowed and the client has been told is open (CONNECT 200,
// SOCKS5 success), until both directions end or ctx does. It closes u.
//
// Before the client's first bytes reach u they are inspected: a TLS
// ClientHello must not name another server than t (domain fronting), and
// on a TLS port the tunnel must start with one. The reply to the client
// is already sent, so a refusal here closes the tunnel; the deny event
// says why.
func (p *conn) tunnel(ctx context.Context, t target, proto string, u *upstream) {
	stop := context.AfterFunc(ctx, func() {
		p.client.Close()
		u.Close()
	})
	defer stop()
	defer u.Close()

	// The upstream may speak first (SMTP, SSH): relay it from the start.
	down := make(chan struct{})
	go func() {
		defer close(down)
		pipe(p.client, u)
	}()

	hello, r, err := p.inspect(t)
	if r != nil || err != nil {
		p.client.Close()
		u.Close()
		<-down
		if r != nil {
			p.refuse(t, proto, r)
		} else {
			p.count(OutcomeError)
		}
		return
	}
	p.count(OutcomeAllowed)
	if _, err := u.Write(hello); err == nil {
		pipe(u, p.br)
	} else {
		u.Close()
	}
	<-down
	p.connected(t, proto, u)
}

// inspect reads the client's first bytes in a tunnel to t. When they are
// a TLS handshake record it reads the whole ClientHello and checks its
// server name, returning the bytes it consumed, to be relayed first. An
// error means the client went away or stayed silent on a TLS port.
func (p *conn) inspect(t target) ([]byte, *refusal, error) {
	tlsPort := tlsPorts[t.port]
	var deadline time.Time // none: a client may wait for the server to speak
	if tlsPort {
		deadline = time.Now().Add(p.timeout)
	}
	p.client.SetReadDeadline(deadline)
	first, err := p.br.Peek(1)
	if err != nil {
		if tlsPort {
			return nil, nil, err
		}
		return nil, nil, nil // nothing to inspect; the relay sees the end
	}
	var hello []byte
	var sni string
	err = errNotTLS
	if first[0] == recordHandshake {
		p.client.SetReadDeadline(time.Now().Add(p.timeout))
		hello, sni, err = readClientHello(p.br)
	}
	p.client.SetReadDeadline(time.Time{})
	switch {
	case errors.Is(err, errNotTLS) && tlsPort:
		return nil, &refusal{rule: RuleSNI,
			reason: fmt.Sprintf("port %d is for TLS, and the connection did not start with a TLS ClientHello", t.port)}, nil
	case errors.Is(err, errNotTLS):
		return nil, nil, nil
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), isTimeout(err):
		return nil, nil, err
	case err != nil:
		return nil, &refusal{rule: RuleSNI,
			reason: "the TLS ClientHello is malformed, so the server it names cannot be checked"}, nil
	case sni != "" && !t.sameHost(sni):
		return nil, &refusal{rule: RuleSNI,
			reason: fmt.Sprintf("TLS SNI %q does not match the requested host %q", sni, t.host)}, nil
	}
	return hello, nil, nil
}

// pipe copies src to dst. When src ends cleanly it half-closes dst, so
// that the other direction can still finish; on an error it closes dst,
// which ends the other direction too.
func pipe(dst net.Conn, src io.Reader) {
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
