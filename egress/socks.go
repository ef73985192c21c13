package egress

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"time"
)

// SOCKS5 (RFC 1928) constants.
const (
	socksVersion         = 0x05
	socksNoAuth          = 0x00
	socksNoMethod        = 0xff
	socksCmdConnect      = 0x01
	socksAtypIPv4        = 0x01
	socksAtypDomain      = 0x03
	socksAtypIPv6        = 0x04
	socksSucceeded       = 0x00
	socksFailure         = 0x01 // general SOCKS server failure
	socksNotAllowed      = 0x02 // connection not allowed by ruleset
	socksNetUnreachable  = 0x03
	socksHostUnreachable = 0x04
	socksConnRefused     = 0x05
	socksCmdUnsupported  = 0x07
	socksAtypUnsupported = 0x08

	// socksNoReply is no reply code: it tells serveSOCKS to send none.
	socksNoReply = 0xff
)

// serveSOCKS serves one SOCKS5 session: the no-authentication method and
// the CONNECT command, to a domain name, an IPv4 or an IPv6 address.
func (p *conn) serveSOCKS(ctx context.Context) {
	p.client.SetReadDeadline(time.Now().Add(p.timeout))
	t, code, err := p.socksRequest()
	if err != nil {
		p.count(OutcomeError)
		if code != socksNoReply {
			p.socksReply(code, netip.AddrPort{})
		}
		return
	}
	p.client.SetReadDeadline(time.Time{})
	u, r, err := p.open(ctx, t)
	switch {
	case r != nil:
		p.refuse(t, protoSOCKS5, r)
		p.socksReply(socksNotAllowed, netip.AddrPort{})
		return
	case err != nil:
		p.count(OutcomeError)
		_, code := unreachable(err)
		p.socksReply(code, netip.AddrPort{})
		return
	}
	// The bound address is left zero: the host's own address is none of
	// the session's business, and CONNECT clients do not use it.
	if !p.socksReply(socksSucceeded, netip.AddrPort{}) {
		u.Close()
		p.count(OutcomeError)
		return
	}
	p.tunnel(ctx, t, protoSOCKS5, u)
}

// socksRequest reads the greeting (choosing no authentication) and the
// request. On an error, code is the reply to send, or socksNoReply when
// the client went away or was already answered.
func (p *conn) socksRequest() (target, byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(p.br, hdr[:]); err != nil {
		return target{}, socksNoReply, err
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(p.br, methods); err != nil {
		return target{}, socksNoReply, err
	}
	method := byte(socksNoMethod)
	for _, m := range methods {
		if m == socksNoAuth {
			method = socksNoAuth
		}
	}
	if !p.write([]byte{socksVersion, method}) || method == socksNoMethod {
		return target{}, socksNoReply, errors.New("socks5: the client offers no method without authentication")
	}

	var req [4]byte // VER CMD RSV ATYP
	if _, err := io.ReadFull(p.br, req[:]); err != nil {
		return target{}, socksNoReply, err
	}
	if req[0] != socksVersion {
		return target{}, socksNoReply, errors.New("socks5: request of another version")
	}
	if req[1] != socksCmdConnect {
		return target{}, socksCmdUnsupported, errors.New("socks5: only CONNECT is supported")
	}
	var host string
	switch req[3] {
	case socksAtypIPv4, socksAtypIPv6:
		b := make([]byte, 4)
		if req[3] == socksAtypIPv6 {
			b = make([]byte, 16)
		}
		if _, err := io.ReadFull(p.br, b); err != nil {
			return target{}, socksNoReply, err
		}
		a, _ := netip.AddrFromSlice(b)
		host = a.String()
	case socksAtypDomain:
		n, err := p.br.ReadByte()
		if err != nil {
			return target{}, socksNoReply, err
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(p.br, b); err != nil {
			return target{}, socksNoReply, err
		}
		host = string(b)
	default:
		return target{}, socksAtypUnsupported, errors.New("socks5: unknown address type")
	}
	var port [2]byte
	if _, err := io.ReadFull(p.br, port[:]); err != nil {
		return target{}, socksNoReply, err
	}
	t, err := newTarget(host, int(port[0])<<8|int(port[1]))
	if err != nil {
		return target{}, socksFailure, err
	}
	return t, socksSucceeded, nil
}

// socksReply sends a reply with the given code and bound address (the
// zero AddrPort is 0.0.0.0:0). It reports whether it was sent.
func (p *conn) socksReply(code byte, bound netip.AddrPort) bool {
	b := []byte{socksVersion, code, 0}
	a := bound.Addr().Unmap()
	if a.Is6() {
		b = append(b, socksAtypIPv6)
		b = append(b, a.AsSlice()...)
	} else {
		b = append(b, socksAtypIPv4)
		if a.Is4() {
			b = append(b, a.AsSlice()...)
		} else {
			b = append(b, 0, 0, 0, 0)
		}
	}
	b = append(b, byte(bound.Port()>>8), byte(bound.Port()))
	return p.write(b)
}

// write sends a small handshake message to the client, within the
// handshake timeout.
func (p *conn) write(b []byte) bool {
	p.client.SetWriteDeadline(time.Now().Add(p.timeout))
	_, err := p.client.Write(b)
	p.client.SetWriteDeadline(time.Time{})
	return err == nil
}
