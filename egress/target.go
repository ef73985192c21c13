package egress

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// target is the host and port a client asked to connect to.
type target struct {
	host string     // lowercase, no trailing dot; an IPv6 literal without brackets
	port int        // 1 to 65535
	ip   netip.Addr // when host is an IP literal: the address, unmapped
}

// newTarget checks and normalises a host and port as a client named them.
// The host is a DNS name (letters, digits, "-" and "_" in labels of up to
// 63 bytes, at most 253 bytes, not all-numeric at the end, since some
// resolvers read "127.1" as an address) or an IP literal, IPv6 with or
// without brackets.
func newTarget(host string, port int) (target, error) {
	if port < 1 || port > 65535 {
		return target{}, fmt.Errorf("port %d is not from 1 to 65535", port)
	}
	h := strings.ToLower(host)
	bracketed := strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]")
	if bracketed {
		h = h[1 : len(h)-1]
	}
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Zone() != "" || bracketed && !a.Is6() {
			return target{}, fmt.Errorf("%q is not an address a session can name", host)
		}
		return target{host: h, port: port, ip: a.Unmap()}, nil
	}
	if bracketed {
		return target{}, fmt.Errorf("%q is not an IPv6 address in brackets", host)
	}
	h = strings.TrimSuffix(h, ".")
	if err := checkHostName(h); err != nil {
		return target{}, fmt.Errorf("%q is not a valid host name: %w", host, err)
	}
	return target{host: h, port: port}, nil
}

// parseHostPort reads "host:port", IPv6 in brackets, as in a CONNECT
// request.
func parseHostPort(s string) (target, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return target{}, fmt.Errorf("%q is not host:port", s)
	}
	n, err := parsePort(port)
	if err != nil {
		return target{}, err
	}
	return newTarget(host, n)
}

// parsePort reads a decimal port from 1 to 65535.
func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 || s[0] == '+' || s[0] == '-' {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	return n, nil
}

func checkHostName(h string) error {
	if h == "" || len(h) > maxHostLen {
		return errors.New("empty or longer than 253 bytes")
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return errors.New("a label is empty or longer than 63 bytes")
		}
		for _, c := range []byte(l) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("byte %q is not allowed", c)
			}
		}
	}
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" {
		return errors.New("all-numeric top-level label; write an IP address as four decimal numbers")
	}
	return nil
}

// String returns "host:port", an IPv6 host in brackets.
func (t target) String() string {
	return net.JoinHostPort(t.host, strconv.Itoa(t.port))
}

// capability names the grant that would allow t on every port.
func (t target) capability() string {
	switch {
	case t.ip.Is4():
		return "net.connect:" + t.ip.String()
	case t.ip.Is6():
		return "net.connect:[" + t.ip.String() + "]"
	}
	return "net.connect:" + t.host
}

// sameHost reports whether a TLS server name names t's host: compared in
// ASCII lowercase (no Unicode folding), a trailing dot ignored.
func (t target) sameHost(serverName string) bool {
	return asciiLower(strings.TrimSuffix(serverName, ".")) == t.host
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
