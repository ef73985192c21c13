package egress

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/cordon-sandbox/cordon/policy"
)

func TestAllowlistAllows(t *testing.T) {
	al, err := ParseAllowlist([]string{
		"github.com", "*.githubusercontent.com", "proxy.golang.org:443",
		"10.0.0.1", "10.0.0.2:8080", "::1", "[2001:db8::1]:443", "::ffff:192.0.2.7",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host string
		port int
		want bool
	}{
		{"github.com", 443, true},
		{"github.com", 22, true},
		{"GitHub.COM.", 443, true}, // lowercased, trailing dot dropped
		{"api.github.com", 443, false},
		{"evilgithub.com", 443, false},
		{"raw.githubusercontent.com", 443, true},
		{"a.b.githubusercontent.com", 80, true},
		{"githubusercontent.com", 443, false}, // a suffix pattern needs a subdomain
		{"xgithubusercontent.com", 443, false},
		{"proxy.golang.org", 443, true},
		{"proxy.golang.org", 80, false},
		{"10.0.0.1", 1, true},
		{"10.0.0.2", 8080, true},
		{"10.0.0.2", 80, false},
		{"10.0.0.3", 80, false},
		{"::1", 80, true},
		{"[::1]", 80, true},
		{"::ffff:10.0.0.1", 80, true}, // the same address, mapped
		{"2001:db8::1", 443, true},
		{"[2001:DB8::1]", 443, true},
		{"2001:db8::1", 80, false},
		{"192.0.2.7", 80, true},
		{"", 443, false},
		{"github.com", 0, false},
		{"github.com:443", 443, false},
		{"fe80::1%eth0", 80, false},
	}
	for _, tt := range tests {
		if got := al.Allows(tt.host, tt.port); got != tt.want {
			t.Errorf("Allows(%q, %d) = %v, want %v", tt.host, tt.port, got, tt.want)
		}
	}
	var none *Allowlist
	if none.Allows("github.com", 443) || none.Hosts() != nil {
		t.Error("a nil Allowlist allows something")
	}
	if one, err := none.With("github.com"); err != nil || !one.Allows("github.com", 443) {
		t.Errorf("nil.With: %v", err)
	}
}

// A name pattern never matches an IP literal, nor an IP pattern a name.
func TestAllowlistNamesAndAddresses(t *testing.T) {
	names, _ := ParseAllowlist([]string{"*.1.2.3.example", "localhost"}, nil)
	addrs, _ := ParseAllowlist([]string{"127.0.0.1"}, nil)
	for _, tt := range []struct {
		al   *Allowlist
		host string
	}{{names, "127.0.0.1"}, {names, "4.1.2.3"}, {addrs, "localhost"}} {
		if tt.al.Allows(tt.host, 80) {
			t.Errorf("%v allows %s", tt.al.Hosts(), tt.host)
		}
	}
	if !names.Allows("localhost", 80) || !addrs.Allows("127.0.0.1", 80) {
		t.Error("positive control failed")
	}
}

// ParseAllowlist accepts exactly what the policy accepts, and names the
// entry it rejects.
func TestParseAllowlistAgreesWithPolicy(t *testing.T) {
	for _, h := range []string{
		"github.com", "*.a.com:443", "10.0.0.1", "[::1]:80", "::1",
		"GitHub.com", "a.*.com", "*", "a..com", "github.com.", "-a.com", "a.com:0", "a.com:65536",
		"1.2.3.256", "::1:443:x", "[::1]x", "[1.2.3.4]", "[fe80::1%eth0]", "my_host.com", "",
	} {
		p := &policy.Policy{Version: 1, Network: policy.Network{Allow: []string{h}}}
		perr := p.Validate()
		_, err := ParseAllowlist([]string{h}, nil)
		if (err == nil) != (perr == nil) {
			t.Errorf("%q: ParseAllowlist error %v, policy error %v", h, err, perr)
		}
		if err != nil && h != "" && !strings.Contains(err.Error(), `"`+h+`"`) {
			t.Errorf("%q: error does not name the entry: %v", h, err)
		}
	}
	for _, s := range []string{"10.1.2.3/8", "localhost", "::ffff:10.0.0.1"} {
		if _, err := ParseAllowlist(nil, []string{s}); err == nil || !strings.Contains(err.Error(), `"`+s+`"`) {
			t.Errorf("private %q: error %v", s, err)
		}
	}
}

func TestAllowlistWith(t *testing.T) {
	a, err := ParseAllowlist([]string{"a.test", "a.test", "[::1]", "::1"}, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Hosts(); !slices.Equal(got, []string{"a.test", "[::1]"}) {
		t.Errorf("Hosts() = %q: repeats are dropped", got)
	}
	b, err := a.With("b.test", "a.test")
	if err != nil {
		t.Fatal(err)
	}
	if !b.Allows("b.test", 1) || !b.Allows("a.test", 1) || a.Allows("b.test", 1) {
		t.Error("With must widen a copy and leave the original alone")
	}
	if got := b.Hosts(); !slices.Equal(got, []string{"a.test", "[::1]", "b.test"}) {
		t.Errorf("Hosts() = %q", got)
	}
	if b.nonPublic(netip.MustParseAddr("127.0.0.1")) != "" {
		t.Error("With dropped the private prefixes")
	}
	if _, err := a.With("Bad.test"); err == nil || !strings.Contains(err.Error(), `"Bad.test"`) {
		t.Errorf("With(Bad.test): %v", err)
	}
	h := a.Hosts()
	h[0] = "changed"
	if a.Hosts()[0] != "a.test" {
		t.Error("Hosts returns the allowlist's own slice")
	}
}

func TestNonPublic(t *testing.T) {
	for addr, want := range map[string]string{
		"1.1.1.1":                "",
		"2606:4700::1111":        "",
		"127.0.0.1":              "loopback",
		"127.9.9.9":              "loopback",
		"::1":                    "loopback",
		"::ffff:127.0.0.1":       "loopback",
		"64:ff9b::7f00:1":        "loopback", // NAT64 form of 127.0.0.1
		"64:ff9b::101:101":       "",         // NAT64 form of 1.1.1.1
		"0.0.0.0":                "unspecified",
		"::":                     "unspecified",
		"0.1.2.3":                "\"this network\"",
		"10.1.2.3":               "private",
		"172.16.0.1":             "private",
		"192.168.1.1":            "private",
		"fd12::1":                "private",
		"169.254.1.1":            "link-local",
		"fe80::1":                "link-local",
		"169.254.169.254":        kindMetadata,
		"::ffff:169.254.169.254": kindMetadata,
		"fd00:ec2::254":          kindMetadata,
		"100.64.0.1":             "carrier-grade NAT",
		"100.100.100.200":        "carrier-grade NAT",
		"224.0.0.1":              "multicast",
		"ff02::1":                "multicast",
		"255.255.255.255":        "reserved",
		"198.18.0.1":             "reserved (benchmarking)",
		"192.0.0.192":            "reserved",
		"fec0::1":                "site-local",
		"::7f00:1":               "reserved (IPv4-compatible)",
	} {
		if got := (*Allowlist)(nil).nonPublic(netip.MustParseAddr(addr)); got != want {
			t.Errorf("nonPublic(%s) = %q, want %q", addr, got, want)
		}
	}
}

func TestAllowPrivate(t *testing.T) {
	al, err := ParseAllowlist(nil, []string{"127.0.0.1", "10.0.0.0/8", "169.254.0.0/16", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]string{
		"127.0.0.1":        "",
		"::ffff:127.0.0.1": "",
		"127.0.0.2":        "loopback",
		"::1":              "loopback",
		"10.200.0.1":       "",
		"169.254.1.1":      "",
		"fd00::1":          "",
		"fd00:ec2::254":    kindMetadata, // a prefix does not cover a metadata address
		"169.254.169.254":  kindMetadata,
		"192.168.0.1":      "private",
	} {
		if got := al.nonPublic(netip.MustParseAddr(addr)); got != want {
			t.Errorf("nonPublic(%s) = %q, want %q", addr, got, want)
		}
	}
	exact, _ := ParseAllowlist(nil, []string{"169.254.169.254", "fd00:ec2::254"})
	for _, a := range []string{"169.254.169.254", "fd00:ec2::254"} {
		if got := exact.nonPublic(netip.MustParseAddr(a)); got != "" {
			t.Errorf("metadata %s listed alone: %q", a, got)
		}
	}
	all, _ := ParseAllowlist(nil, []string{"0.0.0.0/0"})
	if got := all.nonPublic(netip.MustParseAddr("169.254.169.254")); got != kindMetadata {
		t.Errorf("0.0.0.0/0 covers the metadata address: %q", got)
	}
}

func TestNewTarget(t *testing.T) {
	for _, tt := range []struct {
		host, want, capability string
	}{
		{"Example.COM.", "example.com", "net.connect:example.com"},
		{"a_b.example", "a_b.example", "net.connect:a_b.example"},
		{"1.2.3.4", "1.2.3.4", "net.connect:1.2.3.4"},
		{"[::1]", "::1", "net.connect:[::1]"},
		{"2001:DB8::1", "2001:db8::1", "net.connect:[2001:db8::1]"},
		{"::ffff:1.2.3.4", "::ffff:1.2.3.4", "net.connect:1.2.3.4"},
	} {
		tg, err := newTarget(tt.host, 443)
		if err != nil || tg.host != tt.want || tg.capability() != tt.capability {
			t.Errorf("newTarget(%q) = %+v %q, %v", tt.host, tg, tg.capability(), err)
		}
	}
	for _, h := range []string{"", ".", "a..b", "a b", "a/b", "évil.example", "127.1", "0x7f.0.0.1", "2130706433",
		"[1.2.3.4]", "[example.com]", "fe80::1%eth0", strings.Repeat("a", 64) + ".example", strings.Repeat("a.", 127) + "ab"} {
		if tg, err := newTarget(h, 443); err == nil {
			t.Errorf("newTarget(%q) = %+v, want an error", h, tg)
		}
	}
	for _, port := range []int{0, -1, 65536} {
		if _, err := newTarget("example.com", port); err == nil {
			t.Errorf("port %d accepted", port)
		}
	}
	tg, _ := newTarget("allowed.test", 443)
	for name, want := range map[string]bool{"allowed.test": true, "ALLOWED.test.": true, "evil.test": false,
		"allowed.test..": false, "": false} {
		if tg.sameHost(name) != want {
			t.Errorf("sameHost(%q) = %v", name, !want)
		}
	}
	// No Unicode case folding: the Kelvin sign is not a "k".
	if k, _ := newTarget("k.test", 443); k.sameHost("\u212a.test") || !k.sameHost("K.test") {
		t.Error("sameHost folds Unicode, or not ASCII")
	}
}
