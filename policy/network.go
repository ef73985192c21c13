package policy

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// HostPattern is one parsed network.allow entry: a host name, a "*."
// suffix pattern or an IP literal, with an optional port.
type HostPattern struct {
	// Name is the lowercase host name; for a suffix pattern, the part after
	// "*.". Empty for an IP literal.
	Name string
	// Suffix is set for "*.name": it matches every name that ends in
	// ".name", not name itself.
	Suffix bool
	// Addr is the IP literal; the zero Addr for names.
	Addr netip.Addr
	// Port is the one port allowed; 0 allows every port.
	Port int
}

// ParseHostPattern parses a network allow entry. Accepted: "host",
// "*.suffix", an IPv4 literal, an IPv6 literal (bare, or in brackets),
// each with an optional ":port" (IPv6 with a port needs the brackets).
// Host names are written in lowercase, without a trailing dot. The error
// names the entry and says what is wrong with it.
func ParseHostPattern(s string) (HostPattern, error) {
	bad := func(why string) (HostPattern, error) {
		return HostPattern{}, fmt.Errorf("invalid host %q: %s", s, why)
	}
	if s == "" {
		return HostPattern{}, fmt.Errorf("host is empty")
	}
	// IPv6: "[addr]" or "[addr]:port" or bare "addr".
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return bad("missing \"]\"")
		}
		a, err := netip.ParseAddr(s[1:end])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return bad("not an IPv6 address in brackets")
		}
		h := HostPattern{Addr: a}
		if rest := s[end+1:]; rest != "" {
			if !strings.HasPrefix(rest, ":") {
				return bad("unexpected text after \"]\"")
			}
			if h.Port, err = parsePort(rest[1:]); err != nil {
				return bad(err.Error())
			}
		}
		return h, nil
	}
	if strings.Count(s, ":") > 1 {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return bad("not an IPv6 address (write \"[addr]:port\" to give a port)")
		}
		return HostPattern{Addr: a}, nil
	}
	var h HostPattern
	host, port, hasPort := strings.Cut(s, ":")
	if hasPort {
		var err error
		if h.Port, err = parsePort(port); err != nil {
			return bad(err.Error())
		}
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if !a.Is4() {
			return bad("not an IPv4 address")
		}
		h.Addr = a
		return h, nil
	}
	h.Name, h.Suffix = strings.CutPrefix(host, "*.")
	if len(h.Name) > 253 {
		return bad("name longer than 253 characters")
	}
	labels := strings.Split(h.Name, ".")
	for _, l := range labels {
		if l == "" {
			return bad("empty label (\"..\", or a leading or trailing \".\")")
		}
		if len(l) > 63 {
			return bad("label longer than 63 characters")
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return bad("a label cannot start or end with \"-\"")
		}
		for _, c := range []byte(l) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				if c == '*' {
					return bad("\"*\" is allowed only as a leading \"*.\"")
				}
				if c >= 'A' && c <= 'Z' {
					return bad("host names are written in lowercase")
				}
				return bad(fmt.Sprintf("character %q is not allowed in a host name", c))
			}
		}
	}
	if leadingDigits(labels[len(labels)-1]) == labels[len(labels)-1] {
		return bad("all-numeric top-level label; write an IP address as four decimal numbers")
	}
	return h, nil
}

func parsePort(s string) (int, error) {
	bad := fmt.Errorf("port %q must be a number from 1 to 65535", s)
	if s == "" || leadingDigits(s) != s || s[0] == '0' || len(s) > 5 {
		return 0, bad
	}
	n, _ := strconv.Atoi(s)
	if n > 65535 {
		return 0, bad
	}
	return n, nil
}

// ParseAddrPrefix parses a network.allow_private entry: a CIDR prefix
// ("10.0.0.0/8", "fd00::/8") or a single address ("127.0.0.1", "::1"),
// which is the prefix of just that address. Zones, host bits set below the
// prefix length and IPv4-mapped IPv6 forms are errors.
func ParseAddrPrefix(s string) (netip.Prefix, error) {
	bad := func(why string) (netip.Prefix, error) {
		return netip.Prefix{}, fmt.Errorf("invalid address prefix %q: %s", s, why)
	}
	if s == "" {
		return netip.Prefix{}, fmt.Errorf("address prefix is empty")
	}
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return bad("want a CIDR prefix such as 10.0.0.0/8 or fd00::/8, or a single address")
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return bad("want a CIDR prefix such as 10.0.0.0/8 or fd00::/8, or a single address")
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Is4In6() {
		return bad("write an IPv4 address as four decimal numbers, not in IPv6 form")
	}
	if m := p.Masked(); m != p {
		return bad(fmt.Sprintf("bits are set below the prefix length; write %s", m))
	}
	return p, nil
}

func (v *validator) network() {
	checkEntries(v, "network.allow", v.p.Network.Allow, ParseHostPattern)
	checkEntries(v, "network.allow_private", v.p.Network.AllowPrivate, ParseAddrPrefix)
}
