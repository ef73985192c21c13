package policy

import (
	"strings"
	"testing"
)

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"", "", true},
		{"", "a", false},
		{"abc", "abc", true},
		{"abc", "abd", false},
		{"*", "", true},
		{"*", "abc", true},
		{"*", "a/b", false},
		{"**", "a/b", true},
		{"**", "", true},
		{"/root/**", "/root/a/b", true},
		{"/root/**", "/root", false},
		{"/home/*/.ssh/**", "/home/ann/.ssh/id", true},
		{"/home/*/.ssh/**", "/home/ann/x/.ssh/id", false},
		{"/home/*/.ssh/**", "/home/ann/.ssh", false},
		{"*.github.com", "api.github.com", true},
		{"*.github.com", "a.b.github.com", true},
		{"*.github.com", "github.com", false},
		{"*.github.com", "evilgithub.com", false},
		{"a?c", "abc", true},
		{"a?c", "a/c", false},
		{"*a*b*c*", "xxaxxbxxcxx", true},
		{"*a*b*c*", "xxaxxcxxbxx", false},
		{"[::1]:*", "[::1]:443", true},
	}
	for _, tt := range tests {
		if got := glob(tt.pattern, tt.s); got != tt.want {
			t.Errorf("glob(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
	// Linear-ish on adversarial input.
	long := strings.Repeat("a", 4000)
	if glob(strings.Repeat("*a", 50)+"b", long) {
		t.Error("adversarial glob matched")
	}
}

func TestDecide(t *testing.T) {
	c := Capabilities{
		Auto:  []string{"net.connect:*.github.com", "fs.read:/opt/**", "limit.memory"},
		Ask:   []string{"net.connect", "fs.*", "proc.ptrace"},
		Never: []string{"fs.*:/opt/secret/**", "net.connect:evil.github.com"},
	}
	tests := []struct {
		capability string
		want       Decision
	}{
		{"net.connect:api.github.com", DecisionAuto},
		{"net.connect:API.GitHub.com", DecisionAuto},       // host names compared in lowercase
		{"net.connect:evil.github.com", DecisionNever},     // never beats auto
		{"net.connect:EVIL.github.com", DecisionNever},     // ... in any case
		{"net.connect:example.com", DecisionAsk},           // ask without a target covers every target
		{"net.connect", DecisionNever},                     // covers evil.github.com, which never allows
		{"fs.read:/opt/data/x", DecisionAuto},              //
		{"fs.read:/opt/secret/key", DecisionNever},         //
		{"fs.write:/opt/secret/key", DecisionNever},        // fs.* covers write
		{"fs.write:/opt/data/x", DecisionAsk},              //
		{"fs.read:/opt/data/../secret/key", DecisionNever}, // not clean: fails closed
		{"fs.read:opt/data", DecisionNever},                // not absolute: fails closed
		{"limit.memory:8GiB", DecisionAuto},                //
		{"limit.pids:4096", DecisionNever},                 // no match = never
		{"proc.ptrace", DecisionAsk},                       //
		{"proc.kill", DecisionNever},                       //
		{"disk.write:/x", DecisionNever},                   // unknown layer
		{"", DecisionNever},                                //
		{"net.connect:", DecisionNever},                    // empty target
		{"net.connect:a\nb", DecisionNever},                // control character
		{"fs.Read:/opt/data", DecisionNever},               // bad verb
	}
	for _, tt := range tests {
		if got := c.Decide(tt.capability); got != tt.want {
			t.Errorf("Decide(%q) = %s, want %s", tt.capability, got, tt.want)
		}
	}
	// An invalid pattern anywhere fails closed.
	bad := c.clone()
	bad.Ask = append(bad.Ask, "fs.read:relative")
	if got := bad.Decide("net.connect:api.github.com"); got != DecisionNever {
		t.Errorf("with an invalid pattern Decide = %s, want never", got)
	}
	var empty Capabilities
	if got := empty.Decide("net.connect:a.com"); got != DecisionNever {
		t.Errorf("empty capabilities Decide = %s", got)
	}
}

func TestDecideDefault(t *testing.T) {
	c := Default().Capabilities
	tests := []struct {
		capability string
		want       Decision
	}{
		{"net.connect:github.com", DecisionAsk},
		{"fs.read:/opt/data", DecisionAsk},
		{"fs.write:/home/ann/.cache/go-build", DecisionAsk},
		{"fs.read:/home/ann/.ssh/id_ed25519", DecisionNever},
		{"fs.read:/home/ann/.ssh", DecisionNever},
		{"fs.write:/home/ann/.aws/credentials", DecisionNever},
		{"fs.read:/home/ann/.config/gcloud/credentials.db", DecisionNever},
		{"fs.read:/root", DecisionNever},
		{"fs.read:/root/.bashrc", DecisionNever},
		{"fs.read:/rootfs", DecisionAsk},
		{"fs.read:/etc/shadow", DecisionNever},
		{"fs.write:/run/cordon/daemon.sock", DecisionNever},
		{"fs.write:/var/lib/cordon/audit.log", DecisionNever},
		{"fs.write:/home/ann/.local/state/cordon/audit.jsonl", DecisionNever},
		{"fs.write:/run/user/1000/cordon.sock", DecisionNever},
		{"fs.read:/run/user/1000/cordon-mcp-123/grants.sock", DecisionNever},
		{"fs.read:/run/user/1000/cordon-mcp-123", DecisionNever},
		{"fs.read:/tmp/cordon-mcp-123", DecisionNever},
		{"fs.read:/tmp", DecisionNever},
		{"fs.read:/tmp/build-cache", DecisionAsk},
		{"fs.write:/home/ann/.local/state/other", DecisionAsk},
		{"limit.memory:8GiB", DecisionAsk},
		{"proc.ptrace", DecisionAsk},
		{"proc.kill", DecisionNever},
	}
	for _, tt := range tests {
		if got := c.Decide(tt.capability); got != tt.want {
			t.Errorf("Decide(%q) = %s, want %s", tt.capability, got, tt.want)
		}
	}
}

func TestCheckCapability(t *testing.T) {
	for _, ok := range []string{"net.connect:github.com", "fs.write:/home/me/.cache/go-build", "fs.read:/opt/data", "proc.ptrace", "limit.memory:4GiB"} {
		if err := CheckCapability(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"net", "net.", "fs.read:", "fs.read:x", "fs.read:/a/../b", "fs.*:/a", "x.read", "fs.read:/a\x00"} {
		if CheckCapability(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestDecideRule(t *testing.T) {
	c := Capabilities{
		Auto:  []string{"limit.pids", "net.connect:*.github.com", "net.connect:api.github.com"},
		Ask:   []string{"net.connect"},
		Never: []string{"fs.*:/root/**", "net.connect:evil.github.com"},
	}
	tests := []struct {
		capability string
		want       Decision
		rule       string
	}{
		{"net.connect:api.github.com", DecisionAuto, "capabilities.auto[1]"}, // the first match names the rule
		{"net.connect:evil.github.com", DecisionNever, "capabilities.never[1]"},
		{"net.connect:example.com", DecisionAsk, "capabilities.ask[0]"},
		{"fs.read:/root/x", DecisionNever, "capabilities.never[0]"},
		{"fs.read:/opt/x", DecisionNever, ""}, // no match
		{"fs.read:x", DecisionNever, ""},      // invalid name
	}
	for _, tt := range tests {
		got, rule := c.DecideRule(tt.capability)
		if got != tt.want || rule != tt.rule {
			t.Errorf("DecideRule(%q) = %s, %q; want %s, %q", tt.capability, got, rule, tt.want, tt.rule)
		}
		if d := c.Decide(tt.capability); d != got {
			t.Errorf("Decide(%q) = %s, DecideRule says %s", tt.capability, d, got)
		}
	}
	bad := c.clone()
	bad.Ask = append(bad.Ask, "fs.read:relative")
	if got, rule := bad.DecideRule("limit.pids:9"); got != DecisionNever || rule != "" {
		t.Errorf("with an invalid pattern DecideRule = %s, %q; want never and no rule", got, rule)
	}
}

func TestParseCapability(t *testing.T) {
	for name, want := range map[string]Capability{
		"fs.write:/opt/x":          {"fs", "write", "/opt/x"},
		"proc.ptrace":              {"proc", "ptrace", ""},
		"net.connect:[::1]:443":    {"net", "connect", "[::1]:443"},
		"limit.timeout:1h30m":      {"limit", "timeout", "1h30m"},
		"net.connect:github.com:x": {"net", "connect", "github.com:x"},
	} {
		got, err := ParseCapability(name)
		if err != nil || got != want {
			t.Errorf("ParseCapability(%q) = %+v, %v; want %+v", name, got, err, want)
			continue
		}
		if got.String() != name {
			t.Errorf("%+v.String() = %q, want %q", got, got.String(), name)
		}
	}
	for _, bad := range []string{"", "fs.read:", "fs.read:rel", "x.y", "fs.Read:/a"} {
		if _, err := ParseCapability(bad); err == nil {
			t.Errorf("ParseCapability(%q) accepted", bad)
		}
	}
}

func TestGlobPrefix(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"/home/*/.ssh/**", "/", true},
		{"/home/*/.ssh/**", "/home/", true},
		{"/home/*/.ssh/**", "/home/ann/", true},
		{"/home/*/.ssh/**", "/home/ann/.ssh/", true},
		{"/home/*/.ssh/**", "/home/ann/.ssh/a/b/", true},
		{"/home/*/.ssh/**", "/home/ann/src/", false},
		{"/home/*/.ssh/**", "/opt/", false},
		{"/root", "/", true},
		{"/root", "/ro", true},
		{"/root", "/root/", false},
		{"/a?c", "/ab", true},
		{"/a?c", "/a/", false},
		{"", "", true},
		{"abc", "", true},
	}
	for _, tt := range tests {
		if got := globPrefix(tt.pattern, tt.s); got != tt.want {
			t.Errorf("globPrefix(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

// TestDecideNeverCovers: a never pattern refuses names that would include
// what it matches; the positive controls show the same names asked for
// where nothing beneath them is refused.
func TestDecideNeverCovers(t *testing.T) {
	c := Default().Capabilities
	for _, name := range []string{"fs.read:/", "fs.read:/home", "fs.read:/home/ann", "fs.write:/home/ann", "fs.read:/var/lib", "fs.write:/etc", "fs.read:/run"} {
		if d, rule := c.DecideRule(name); d != DecisionNever || rule == "" {
			t.Errorf("DecideRule(%q) = %s, %q; want never by a rule", name, d, rule)
		}
	}
	for _, name := range []string{"fs.read:/home/ann/src", "fs.write:/home/ann/.cache/go-build", "fs.read:/opt", "fs.read:/var/cache", "fs.read:/home/ann/.sshx"} {
		if d := c.Decide(name); d != DecisionAsk {
			t.Errorf("control: Decide(%q) = %s, want ask", name, d)
		}
	}
	open := Capabilities{Ask: []string{"net.connect"}}
	if d := open.Decide("net.connect"); d != DecisionAsk {
		t.Errorf("control: net.connect with no never pattern = %s, want ask", d)
	}
}
