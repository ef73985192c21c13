package egress

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/cordon-sandbox/cordon/policy"
)

// Allowlist is an immutable, parsed set of host patterns (the policy's
// network.allow plus runtime grants) and of the non-public address
// prefixes they may be reached at (network.allow_private). Its methods are
// safe for concurrent use.
type Allowlist struct {
	hosts    []string // entries as written, in order, without repeats
	patterns []policy.HostPattern
	private  []netip.Prefix
}

// ParseAllowlist parses host patterns in the syntax of the policy's
// network.allow and address prefixes in that of network.allow_private
// (see policy.ParseHostPattern and policy.ParseAddrPrefix). The error names
// the first entry that is not valid. An entry that means the same as an
// earlier one is dropped.
func ParseAllowlist(hosts []string, private []string) (*Allowlist, error) {
	a := &Allowlist{}
	for _, s := range private {
		p, err := policy.ParseAddrPrefix(s)
		if err != nil {
			return nil, fmt.Errorf("parsing allow_private: %w", err)
		}
		if !slices.Contains(a.private, p) {
			a.private = append(a.private, p)
		}
	}
	if err := a.add(hosts); err != nil {
		return nil, err
	}
	return a, nil
}

// With returns a copy of a widened by more host patterns, for runtime
// grants. The private prefixes stay those of a: only a policy widens them.
// A nil a is the empty allowlist.
func (a *Allowlist) With(hosts ...string) (*Allowlist, error) {
	if a == nil {
		a = &Allowlist{}
	}
	b := &Allowlist{
		hosts:    slices.Clone(a.hosts),
		patterns: slices.Clone(a.patterns),
		private:  a.private, // never modified after parsing
	}
	if err := b.add(hosts); err != nil {
		return nil, err
	}
	return b, nil
}

func (a *Allowlist) add(hosts []string) error {
	for _, s := range hosts {
		p, err := policy.ParseHostPattern(s)
		if err != nil {
			return fmt.Errorf("parsing allowlist: %w", err)
		}
		if p.Addr.IsValid() {
			p.Addr = p.Addr.Unmap() // "::ffff:1.2.3.4" is the address 1.2.3.4
		}
		if !slices.Contains(a.patterns, p) {
			a.patterns = append(a.patterns, p)
			a.hosts = append(a.hosts, s)
		}
	}
	return nil
}

// Hosts returns the host patterns, as written, in the order they were
// added.
func (a *Allowlist) Hosts() []string {
	if a == nil {
		return nil
	}
	return slices.Clone(a.hosts)
}

// Allows reports whether host:port is allowlisted. The host is a name or
// an IP literal (IPv6 with or without brackets); names are compared in
// lowercase and without a trailing dot. A name pattern never matches an IP
// literal, nor an IP pattern a name. A nil Allowlist allows nothing.
func (a *Allowlist) Allows(host string, port int) bool {
	t, err := newTarget(host, port)
	return err == nil && a.allows(t, true)
}

// allows reports whether a pattern matches t; with checkPort false, on
// any port.
func (a *Allowlist) allows(t target, checkPort bool) bool {
	if a == nil {
		return false
	}
	for _, p := range a.patterns {
		if checkPort && p.Port != 0 && p.Port != t.port {
			continue
		}
		switch {
		case t.ip.IsValid():
			if p.Addr == t.ip {
				return true
			}
		case p.Addr.IsValid():
		case p.Suffix:
			if strings.HasSuffix(t.host, "."+p.Name) {
				return true
			}
		case p.Name == t.host:
			return true
		}
	}
	return false
}

// nonPublic returns what kind of address a session may not reach a is
// ("loopback", "private", ...), or "" when a is public or covered by the
// allowlist's private prefixes. A cloud metadata address is covered only
// by a prefix of that single address.
func (a *Allowlist) nonPublic(addr netip.Addr) string {
	addr = embeddedIPv4(addr)
	kind := addressKind(addr)
	if kind == "" {
		return ""
	}
	var private []netip.Prefix
	if a != nil {
		private = a.private
	}
	for _, p := range private {
		if kind == kindMetadata {
			if p.IsSingleIP() && p.Addr() == addr {
				return ""
			}
			continue
		}
		if p.Contains(addr) {
			return ""
		}
	}
	return kind
}

const kindMetadata = "cloud metadata"

var (
	metadataAddrs = []netip.Addr{
		netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, ...
		netip.MustParseAddr("fd00:ec2::254"),   // AWS over IPv6
	}
	nat64 = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052: the last 32 bits are an IPv4 address
	// Ranges netip has no predicate for.
	specialRanges = []struct {
		prefix netip.Prefix
		kind   string
	}{
		{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\""},
		{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT"},
		{netip.MustParsePrefix("192.0.0.0/24"), "reserved"},
		{netip.MustParsePrefix("198.18.0.0/15"), "reserved (benchmarking)"},
		{netip.MustParsePrefix("240.0.0.0/4"), "reserved"}, // and 255.255.255.255
		{netip.MustParsePrefix("::/96"), "reserved (IPv4-compatible)"},
		{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64"},
		{netip.MustParsePrefix("fec0::/10"), "site-local"},
	}
)

// embeddedIPv4 returns the IPv4 address in an IPv4-mapped or NAT64
// address, and any other address as it is: the address the packets are
// really for.
func embeddedIPv4(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if nat64.Contains(a) {
		b := a.As16()
		return netip.AddrFrom4([4]byte(b[12:]))
	}
	return a
}

// addressKind names the kind of a non-public address, "" for a public one.
// Pass it the result of embeddedIPv4.
func addressKind(a netip.Addr) string {
	switch {
	case slices.Contains(metadataAddrs, a):
		return kindMetadata
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLoopback():
		return "loopback"
	case a.IsLinkLocalUnicast():
		return "link-local"
	case a.IsPrivate():
		return "private"
	case a.IsMulticast():
		return "multicast"
	}
	for _, r := range specialRanges {
		if r.prefix.Contains(a) {
			return r.kind
		}
	}
	return ""
}
