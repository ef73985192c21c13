package egress

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/proxy"
)

// socksAddr is a SOCKS5 ATYP and address.
type socksAddr []byte

func socksDomain(name string) socksAddr {
	return append(socksAddr{socksAtypDomain, byte(len(name))}, name...)
}

func socksIP(s string) socksAddr {
	a := netip.MustParseAddr(s)
	if a.Is4() {
		return append(socksAddr{socksAtypIPv4}, a.AsSlice()...)
	}
	return append(socksAddr{socksAtypIPv6}, a.AsSlice()...)
}

// socksConnect does a no-auth SOCKS5 CONNECT on c and returns the reply
// code.
func socksConnect(t *testing.T, c net.Conn, addr socksAddr, port int) byte {
	t.Helper()
	return socksRequest(t, c, socksCmdConnect, addr, port)
}

func socksRequest(t *testing.T, c net.Conn, cmd byte, addr socksAddr, port int) byte {
	t.Helper()
	c.Write([]byte{socksVersion, 1, socksNoAuth})
	var sel [2]byte
	if _, err := io.ReadFull(c, sel[:]); err != nil || sel != [2]byte{socksVersion, socksNoAuth} {
		t.Fatalf("method selection %v, %v", sel, err)
	}
	req := append([]byte{socksVersion, cmd, 0}, addr...)
	req = binary.BigEndian.AppendUint16(req, uint16(port))
	c.Write(req)
	var reply [4]byte
	if _, err := io.ReadFull(c, reply[:]); err != nil {
		t.Fatalf("reading reply: %v", err)
	}
	n := 4
	if reply[3] == socksAtypIPv6 {
		n = 16
	}
	if _, err := io.ReadFull(c, make([]byte, n+2)); err != nil {
		t.Fatalf("reading bound address: %v", err)
	}
	return reply[1]
}

func TestSOCKS5(t *testing.T) {
	up := upstreamHTTP(t, "origin")
	p := startProxy(t, []string{"allowed.test"}, loopback)

	// A real client: x/net's SOCKS5 dialer, which sends names as names.
	d, err := proxy.SOCKS5("tcp", p.addr, nil, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{DialContext: d.(proxy.ContextDialer).DialContext, DisableKeepAlives: true}
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := hc.Get(fmt.Sprintf("http://allowed.test:%d/s", up))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "origin GET /s" {
		t.Fatalf("through SOCKS5: %q", body)
	}
	p.wantConnect(fmt.Sprintf("allowed.test:%d", up), "socks5")

	if _, err := hc.Get(fmt.Sprintf("http://evil.test:%d/", up)); err == nil {
		t.Fatal("evil.test through SOCKS5 was allowed")
	}
	p.wantDeny(fmt.Sprintf("evil.test:%d", up), RuleAllow, "net.connect:evil.test", "socks5")

	// Positive control after a grant.
	p.setAllow("evil.test")
	if resp, err = hc.Get(fmt.Sprintf("http://evil.test:%d/", up)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func TestSOCKS5Replies(t *testing.T) {
	up := upstreamHTTP(t, "origin")
	closed := closedPort(t)
	p := startProxy(t, []string{"allowed.test", "nowhere.test"}, loopback)

	for _, tt := range []struct {
		name string
		cmd  byte
		addr socksAddr
		port int
		want byte
	}{
		{"not allowlisted", socksCmdConnect, socksDomain("evil.test"), up, socksNotAllowed},
		{"IPv4 literal", socksCmdConnect, socksIP("127.0.0.1"), up, socksNotAllowed},
		{"IPv6 literal", socksCmdConnect, socksIP("::1"), up, socksNotAllowed},
		{"BIND", 0x02, socksDomain("allowed.test"), up, socksCmdUnsupported},
		{"UDP ASSOCIATE", 0x03, socksDomain("allowed.test"), up, socksCmdUnsupported},
		{"unknown address type", socksCmdConnect, socksAddr{0x09, 1, 2, 3, 4}, up, socksAtypUnsupported},
		{"invalid name", socksCmdConnect, socksDomain("bad name"), up, socksFailure},
		{"port 0", socksCmdConnect, socksDomain("allowed.test"), 0, socksFailure},
		{"refused", socksCmdConnect, socksDomain("allowed.test"), closed, socksConnRefused},
		{"does not resolve", socksCmdConnect, socksDomain("nowhere.test"), up, socksHostUnreachable},
		{"allowed", socksCmdConnect, socksDomain("allowed.test"), up, socksSucceeded},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := p.dial()
			if got := socksRequest(t, c, tt.cmd, tt.addr, tt.port); got != tt.want {
				t.Errorf("reply %#x, want %#x", got, tt.want)
			}
		})
	}
	p.wantDeny(fmt.Sprintf("evil.test:%d", up), RuleAllow, "net.connect:evil.test", "socks5")
	p.wantDeny(fmt.Sprintf("127.0.0.1:%d", up), RuleIPLiteral, "net.connect:127.0.0.1", "socks5")
	p.wantDeny(fmt.Sprintf("[::1]:%d", up), RuleIPLiteral, "net.connect:[::1]", "socks5")

	// Positive control for the literal: listed, it is allowed.
	p.setAllow("127.0.0.1")
	c := p.dial()
	if got := socksConnect(t, c, socksIP("127.0.0.1"), up); got != socksSucceeded {
		t.Fatalf("listed IPv4 literal: reply %#x", got)
	}
	fmt.Fprintf(c, "GET /lit HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if b, _ := io.ReadAll(c); !bytes.HasSuffix(b, []byte("origin GET /lit")) {
		t.Fatalf("through the literal: %q", b)
	}

	// A client offering only username/password gets "no acceptable method".
	c = p.dial()
	c.Write([]byte{socksVersion, 1, 0x02})
	if b, _ := io.ReadAll(c); string(b) != "\x05\xff" {
		t.Fatalf("no acceptable method: %q", b)
	}
}
