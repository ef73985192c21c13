package policy

import (
	"net/netip"
	"strings"
	"testing"
)

// TestValidate pairs every rejected policy with a close accepted control.
func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		bad   string // body after "version: 1\n"
		good  string
		field string
		msg   string
	}{
		{"relative path",
			"filesystem:\n  read: [usr]\n", "filesystem:\n  read: [/usr]\n",
			"filesystem.read[0].path", "must be absolute or start with"},
		{"dotdot in path",
			"filesystem:\n  read: [/usr/../etc]\n", "filesystem:\n  read: [/usr/etc]\n",
			"filesystem.read[0].path", "not clean"},
		{"trailing slash",
			"filesystem:\n  read: [/usr/]\n", "filesystem:\n  read: [/usr]\n",
			"filesystem.read[0].path", "not clean"},
		{"double slash",
			"filesystem:\n  read: [//usr]\n", "filesystem:\n  read: [/usr]\n",
			"filesystem.read[0].path", "not clean"},
		{"NUL in path",
			"filesystem:\n  read: [\"/usr\\0x\"]\n", "filesystem:\n  read: [\"/usr\\tx\"]\n",
			"filesystem.read[0].path", "NUL"},
		{"empty path",
			"filesystem:\n  read: [{at: /x}]\n", "filesystem:\n  read: [{path: /y, at: /x}]\n",
			"filesystem.read[0].path", "empty"},
		{"tilde without slash",
			"filesystem:\n  read: [~go]\n", "filesystem:\n  read: [~/go]\n",
			"filesystem.read[0].path", "must be absolute"},
		{"tilde dotdot",
			"filesystem:\n  read: [~/../etc]\n", "filesystem:\n  read: [~/etc]\n",
			"filesystem.read[0].path", "not a clean path under ~/"},
		{"tilde alone",
			"filesystem:\n  read: [~/]\n", "filesystem:\n  read: [~/x]\n",
			"filesystem.read[0].path", "not a clean path under ~/"},
		{"bare dollar",
			"filesystem:\n  read: [/a/$HOME]\n", "filesystem:\n  read: [\"/a/${HOME}\"]\n",
			"filesystem.read[0].path", "must start ${NAME}"},
		{"literal dollar",
			"filesystem:\n  read: [/a/$]\n", "filesystem:\n  read: [/a/$$]\n",
			"filesystem.read[0].path", "must start ${NAME}"},
		{"bad var name",
			"filesystem:\n  read: [\"/a/${1X}\"]\n", "filesystem:\n  read: [\"/a/${X1}\"]\n",
			"filesystem.read[0].path", "invalid variable name"},
		{"unterminated var",
			"filesystem:\n  read: [\"${GOPATH/pkg\"]\n", "filesystem:\n  read: [\"${GOPATH}/pkg\"]\n",
			"filesystem.read[0].path", "unterminated"},
		{"var then dotdot",
			"filesystem:\n  read: [\"${GOPATH}/../x\"]\n", "filesystem:\n  read: [\"${GOPATH}/x\"]\n",
			"filesystem.read[0].path", "not clean"},
		{"relative at",
			"filesystem:\n  read: [{path: /x, at: y}]\n", "filesystem:\n  read: [{path: /x, at: /y}]\n",
			"filesystem.read[0].at", "must be absolute"},
		{"unclean at",
			"filesystem:\n  read: [{path: /x, at: /y/./z}]\n", "filesystem:\n  read: [{path: /x, at: /y/z}]\n",
			"filesystem.read[0].at", "not clean"},
		{"at root",
			"filesystem:\n  read: [{path: /x, at: /}]\n", "filesystem:\n  read: [{path: /x, at: /r}]\n",
			"filesystem.read[0].at", "cannot mount over /"},
		{"at proc",
			"filesystem:\n  read: [{path: /x, at: /proc}]\n", "filesystem:\n  read: [{path: /x, at: /procs}]\n",
			"filesystem.read[0].at", "/proc is built by cordon"},
		{"at under dev",
			"filesystem:\n  write: [{path: /x, at: /dev/shm}]\n", "filesystem:\n  write: [{path: /x, at: /devices/shm}]\n",
			"filesystem.write[0].at", "/dev is built by cordon"},
		{"path at sys",
			"filesystem:\n  read: [/sys/fs/cgroup]\n", "filesystem:\n  read: [{path: /sys/fs/cgroup, at: /host/cgroup}]\n",
			"filesystem.read[0].path", "set \"at\""},
		{"same at twice in read",
			"filesystem:\n  read: [/usr, {path: /opt, at: /usr}]\n", "filesystem:\n  read: [/usr, {path: /opt, at: /usr/opt}]\n",
			"filesystem.read[1]", "already mounted by filesystem.read[0]"},
		{"same at twice in write",
			"filesystem:\n  write: [/w, /w]\n", "filesystem:\n  write: [/w, /v]\n",
			"filesystem.write[1]", "already mounted"},
		{"write also in read",
			"filesystem:\n  read: [/data]\n  write: [/data]\n", "filesystem:\n  read: [/data]\n  write: [/data/out]\n",
			"filesystem.write[0]", "also in filesystem.read[0]"},
		{"relative hide",
			"filesystem:\n  hide: [etc/shadow]\n", "filesystem:\n  hide: [/etc/shadow]\n",
			"filesystem.hide[0]", "must be absolute"},
		{"unclean hide",
			"filesystem:\n  hide: [/etc/ssh/../shadow]\n", "filesystem:\n  hide: [/etc/ssh/shadow]\n",
			"filesystem.hide[0]", "not clean"},
		{"tilde hide",
			"filesystem:\n  hide: [~/.ssh]\n", "filesystem:\n  hide: [/home/cordon/.ssh]\n",
			"filesystem.hide[0]", "must be absolute"},
		{"hide root",
			"filesystem:\n  hide: [/]\n", "filesystem:\n  hide: [/x]\n",
			"filesystem.hide[0]", "cannot hide /"},
		{"hide twice",
			"filesystem:\n  hide: [/x, /x]\n", "filesystem:\n  hide: [/x, /y]\n",
			"filesystem.hide[1]", "already listed"},
		{"absolute protect",
			"workspace:\n  protect: [/.git/hooks]\n", "workspace:\n  protect: [.git/hooks]\n",
			"workspace.protect[0]", "relative to the workspace"},
		{"protect dotdot",
			"workspace:\n  protect: [../.git]\n", "workspace:\n  protect: [.../.git]\n",
			"workspace.protect[0]", "leaves the workspace"},
		{"protect inner dotdot",
			"workspace:\n  protect: [a/../b]\n", "workspace:\n  protect: [a/b]\n",
			"workspace.protect[0]", "leaves the workspace"},
		{"protect dot element",
			"workspace:\n  protect: [./.envrc]\n", "workspace:\n  protect: [.envrc]\n",
			"workspace.protect[0]", "not clean"},
		{"protect trailing slash",
			"workspace:\n  protect: [.vscode/]\n", "workspace:\n  protect: [.vscode]\n",
			"workspace.protect[0]", "not clean"},
		{"protect double slash",
			"workspace:\n  protect: [.git//hooks]\n", "workspace:\n  protect: [.git/hooks]\n",
			"workspace.protect[0]", "not clean"},
		{"protect the workspace",
			"workspace:\n  protect: [.]\n", "workspace:\n  protect: [.x]\n",
			"workspace.protect[0]", "workspace.access: read"},
		{"protect empty",
			"workspace:\n  protect: [\"\"]\n", "workspace:\n  protect: [x]\n",
			"workspace.protect[0]", "empty"},
		{"protect NUL",
			"workspace:\n  protect: [\"a\\0b\"]\n", "workspace:\n  protect: [\"a\\tb\"]\n",
			"workspace.protect[0]", "NUL"},
		{"protect double star",
			"workspace:\n  protect: [\"**/.git/hooks\"]\n", "workspace:\n  protect: [\"*/.git/hooks\"]\n",
			"workspace.protect[0]", "any depth"},
		{"protect two wildcard elements",
			"workspace:\n  protect: [\"*/.git/modules/*/hooks\"]\n", "workspace:\n  protect: [\".git/modules/*/hooks\"]\n",
			"workspace.protect[0]", "one at most"},
		{"protect long name",
			"workspace:\n  protect: [" + strings.Repeat("n", 256) + "]\n", "workspace:\n  protect: [" + strings.Repeat("n", 255) + "]\n",
			"workspace.protect[0]", "the limit is 255"},
		{"protect twice",
			"workspace:\n  protect: [.envrc, .envrc]\n", "workspace:\n  protect: [.envrc, .envrc.local]\n",
			"workspace.protect[1]", "already listed at workspace.protect[0]"},
		{"negative memory",
			"limits:\n  memory: -1GiB\n", "limits:\n  memory: 1GiB\n",
			"limits.memory", "must not be negative"},
		{"memory too small",
			"limits:\n  memory: 16383KiB\n", "limits:\n  memory: 16MiB\n",
			"limits.memory", "below the minimum of 16MiB"},
		{"negative output",
			"limits:\n  output: -1\n", "limits:\n  output: 1\n",
			"limits.output", "must not be negative"},
		{"negative tmp",
			"limits:\n  tmp: -1MiB\n", "limits:\n  tmp: 0\n",
			"limits.tmp", "must not be negative"},
		{"negative home",
			"limits:\n  home: -2\n", "limits:\n  home: 2\n",
			"limits.home", "must not be negative"},
		{"negative disk_free",
			"limits:\n  disk_free: -1GiB\n", "limits:\n  disk_free: 0\n",
			"limits.disk_free", "must not be negative"},
		{"negative disk_free_inodes",
			"limits:\n  disk_free_inodes: -1\n", "limits:\n  disk_free_inodes: 1\n",
			"limits.disk_free_inodes", "must not be negative"},
		{"negative pids",
			"limits:\n  pids: -1\n", "limits:\n  pids: 0\n",
			"limits.pids", "must not be negative"},
		{"pids too small",
			"limits:\n  pids: 7\n", "limits:\n  pids: 8\n",
			"limits.pids", "below the minimum of 8"},
		{"negative cpu",
			"limits:\n  cpu: -0.5\n", "limits:\n  cpu: 0.5\n",
			"limits.cpu", "must not be negative"},
		{"negative timeout",
			"limits:\n  timeout: -1s\n", "limits:\n  timeout: 1s\n",
			"limits.timeout", "must not be negative"},
		{"timeout too small",
			"limits:\n  timeout: 999us\n", "limits:\n  timeout: 1ms\n",
			"limits.timeout", "below the minimum of 1ms"},
		{"bad pass name",
			"env:\n  pass: [1TERM]\n", "env:\n  pass: [TERM1]\n",
			"env.pass[0]", "invalid variable name"},
		{"pass name with dash",
			"env:\n  pass: [MY-VAR]\n", "env:\n  pass: [MY_VAR]\n",
			"env.pass[0]", "invalid variable name"},
		{"pass twice",
			"env:\n  pass: [A, A]\n", "env:\n  pass: [A, B]\n",
			"env.pass[1]", "already listed"},
		{"bad set name",
			"env:\n  set: {\"A=B\": x}\n", "env:\n  set: {A_B: x}\n",
			"env.set.A=B", "invalid variable name"},
		{"NUL in set value",
			"env:\n  set: {A: \"x\\0y\"}\n", "env:\n  set: {A: \"x y\"}\n",
			"env.set.A", "NUL"},
		{"uppercase host",
			"network:\n  allow: [GitHub.com]\n", "network:\n  allow: [github.com]\n",
			"network.allow[0]", "lowercase"},
		{"host with underscore",
			"network:\n  allow: [my_host.com]\n", "network:\n  allow: [my-host.com]\n",
			"network.allow[0]", "not allowed"},
		{"star in middle",
			"network:\n  allow: [a.*.com]\n", "network:\n  allow: [\"*.a.com\"]\n",
			"network.allow[0]", "leading"},
		{"bare star",
			"network:\n  allow: [\"*\"]\n", "network:\n  allow: [\"*.com\"]\n",
			"network.allow[0]", "leading"},
		{"empty label",
			"network:\n  allow: [a..com]\n", "network:\n  allow: [a.b.com]\n",
			"network.allow[0]", "empty label"},
		{"trailing dot",
			"network:\n  allow: [github.com.]\n", "network:\n  allow: [github.com]\n",
			"network.allow[0]", "empty label"},
		{"label dash",
			"network:\n  allow: [-a.com]\n", "network:\n  allow: [a-b.com]\n",
			"network.allow[0]", "start or end"},
		{"port zero",
			"network:\n  allow: [\"a.com:0\"]\n", "network:\n  allow: [\"a.com:1\"]\n",
			"network.allow[0]", "1 to 65535"},
		{"port too big",
			"network:\n  allow: [\"a.com:65536\"]\n", "network:\n  allow: [\"a.com:65535\"]\n",
			"network.allow[0]", "1 to 65535"},
		{"port leading zero",
			"network:\n  allow: [\"a.com:0443\"]\n", "network:\n  allow: [\"a.com:443\"]\n",
			"network.allow[0]", "1 to 65535"},
		{"empty port",
			"network:\n  allow: [\"a.com:\"]\n", "network:\n  allow: [\"a.com\"]\n",
			"network.allow[0]", "1 to 65535"},
		{"bad ipv4",
			"network:\n  allow: [\"1.2.3.256\"]\n", "network:\n  allow: [\"1.2.3.255\"]\n",
			"network.allow[0]", "all-numeric"},
		{"ipv4 with port",
			"network:\n  allow: [\"1.2.3.4:99999\"]\n", "network:\n  allow: [\"1.2.3.4:443\"]\n",
			"network.allow[0]", "1 to 65535"},
		{"ipv6 port without brackets",
			"network:\n  allow: [\"::1:443:x\"]\n", "network:\n  allow: [\"[::1]:443\"]\n",
			"network.allow[0]", "not an IPv6 address"},
		{"ipv6 bracket junk",
			"network:\n  allow: [\"[::1]x\"]\n", "network:\n  allow: [\"[::1]\"]\n",
			"network.allow[0]", "after"},
		{"ipv4 in brackets",
			"network:\n  allow: [\"[1.2.3.4]\"]\n", "network:\n  allow: [\"::ffff:1.2.3.4\"]\n",
			"network.allow[0]", "IPv6"},
		{"ipv6 zone",
			"network:\n  allow: [\"[fe80::1%eth0]\"]\n", "network:\n  allow: [\"[fe80::1]\"]\n",
			"network.allow[0]", "IPv6"},
		{"host twice",
			"network:\n  allow: [a.com, a.com]\n", "network:\n  allow: [a.com, a.com:443]\n",
			"network.allow[1]", "already listed"},
		{"ipv6 twice",
			"network:\n  allow: [\"::1\", \"[::1]\"]\n", "network:\n  allow: [\"::1\", \"[::1]:80\"]\n",
			"network.allow[1]", "already listed at network.allow[0]"},
		{"private not a prefix",
			"network:\n  allow_private: [localhost]\n", "network:\n  allow_private: [127.0.0.1]\n",
			"network.allow_private[0]", "CIDR prefix"},
		{"private host bits",
			"network:\n  allow_private: [10.1.2.3/8]\n", "network:\n  allow_private: [10.0.0.0/8]\n",
			"network.allow_private[0]", "write 10.0.0.0/8"},
		{"private bad length",
			"network:\n  allow_private: [\"fd00::/129\"]\n", "network:\n  allow_private: [\"fd00::/8\"]\n",
			"network.allow_private[0]", "CIDR prefix"},
		{"private zone",
			"network:\n  allow_private: [\"fe80::1%eth0\"]\n", "network:\n  allow_private: [\"fe80::1\"]\n",
			"network.allow_private[0]", "CIDR prefix"},
		{"private mapped",
			"network:\n  allow_private: [\"::ffff:10.0.0.1\"]\n", "network:\n  allow_private: [10.0.0.1]\n",
			"network.allow_private[0]", "four decimal numbers"},
		{"private brackets",
			"network:\n  allow_private: [\"[::1]\"]\n", "network:\n  allow_private: [\"::1\"]\n",
			"network.allow_private[0]", "CIDR prefix"},
		{"private twice",
			"network:\n  allow_private: [127.0.0.1, 127.0.0.1/32]\n", "network:\n  allow_private: [127.0.0.1, 127.0.0.0/8]\n",
			"network.allow_private[1]", "already listed at network.allow_private[0]"},
		{"capability unknown layer",
			"capabilities:\n  ask: [disk.write]\n", "capabilities:\n  ask: [fs.write]\n",
			"capabilities.ask[0]", "does not start with a layer"},
		{"capability glob layer",
			"capabilities:\n  auto: [\"*.read\"]\n", "capabilities:\n  auto: [\"fs.*\"]\n",
			"capabilities.auto[0]", "does not start with a layer"},
		{"capability empty verb",
			"capabilities:\n  never: [\"fs.:/x\"]\n", "capabilities:\n  never: [\"fs.*:/x\"]\n",
			"capabilities.never[0]", "verb"},
		{"capability uppercase verb",
			"capabilities:\n  never: [fs.Read]\n", "capabilities:\n  never: [fs.read]\n",
			"capabilities.never[0]", "verb"},
		{"capability empty target",
			"capabilities:\n  ask: [\"net.connect:\"]\n", "capabilities:\n  ask: [\"net.connect:*\"]\n",
			"capabilities.ask[0]", "empty target"},
		{"capability relative fs target",
			"capabilities:\n  ask: [\"fs.read:*\"]\n", "capabilities:\n  ask: [\"fs.read:**\"]\n",
			"capabilities.ask[0]", "absolute path"},
		{"capability unclean fs target",
			"capabilities:\n  never: [\"fs.*:/root/\"]\n", "capabilities:\n  never: [\"fs.*:/root\"]\n",
			"capabilities.never[0]", "path element"},
		{"capability control char",
			"capabilities:\n  never: [\"net.connect:a\\tb\"]\n", "capabilities:\n  never: [\"net.connect:a b\"]\n",
			"capabilities.never[0]", "control character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good := mustParse(t, "version: 1\n"+tt.good)
			if err := good.Validate(); err != nil {
				t.Fatalf("control rejected:\n%s\n%v", tt.good, err)
			}
			bad := mustParse(t, "version: 1\n"+tt.bad)
			err := bad.Validate()
			if err == nil {
				t.Fatalf("accepted:\n%s", tt.bad)
			}
			wantProblem(t, err, bad.Line(tt.field), tt.field, tt.msg)
			if bad.Line(tt.field) < 2 {
				t.Errorf("no line recorded for %s", tt.field)
			}
		})
	}
}

func TestValidateGoBuilt(t *testing.T) {
	p := &Policy{Version: 1}
	if err := p.Validate(); err != nil {
		t.Fatalf("minimal Go-built policy: %v", err)
	}
	p.Version = 0
	p.Workspace.Access = "rw"
	err := p.Validate()
	wantProblem(t, err, 0, "version", "unsupported version 0")
	wantProblem(t, err, 0, "workspace.access", "invalid access")
	if !strings.HasPrefix(err.Error(), "policy: version:") {
		t.Errorf("unexpected format %q", err)
	}
}

func TestValidateListsEveryProblem(t *testing.T) {
	p := mustParse(t, "version: 1\nfilesystem:\n  read: [a, b]\nlimits:\n  pids: -1\n")
	err := p.Validate()
	perr := err.(*Error)
	if len(perr.Problems) != 3 {
		t.Fatalf("want 3 problems, got:\n%v", err)
	}
	for i, line := range []int{3, 3, 5} {
		if perr.Problems[i].Line != line {
			t.Errorf("problem %d at line %d, want %d", i, perr.Problems[i].Line, line)
		}
	}
}

func TestHostPatternsAccepted(t *testing.T) {
	for _, h := range []string{
		"github.com", "*.githubusercontent.com", "proxy.golang.org:443", "a", "x-1.y2.io",
		"10.0.0.1", "10.0.0.1:8080", "::1", "[::1]", "[2001:db8::1]:443", "*.co.uk:8443",
	} {
		if _, err := ParseHostPattern(h); err != nil {
			t.Errorf("%q rejected: %v", h, err)
		}
	}
}

func TestParseHostPattern(t *testing.T) {
	for s, want := range map[string]HostPattern{
		"github.com":              {Name: "github.com"},
		"*.githubusercontent.com": {Name: "githubusercontent.com", Suffix: true},
		"*.co.uk:8443":            {Name: "co.uk", Suffix: true, Port: 8443},
		"10.0.0.1:8080":           {Addr: netip.MustParseAddr("10.0.0.1"), Port: 8080},
		"::1":                     {Addr: netip.IPv6Loopback()},
		"[2001:db8::1]:443":       {Addr: netip.MustParseAddr("2001:db8::1"), Port: 443},
		"a.com:65535":             {Name: "a.com", Port: 65535},
	} {
		got, err := ParseHostPattern(s)
		if err != nil || got != want {
			t.Errorf("ParseHostPattern(%q) = %+v, %v; want %+v", s, got, err, want)
		}
	}
	if _, err := ParseHostPattern("GitHub.com"); err == nil || !strings.Contains(err.Error(), `"GitHub.com"`) {
		t.Errorf("error does not name the entry: %v", err)
	}
}

func TestParseAddrPrefix(t *testing.T) {
	for s, want := range map[string]string{
		"127.0.0.1": "127.0.0.1/32", "10.0.0.0/8": "10.0.0.0/8", "::1": "::1/128",
		"fd00::/8": "fd00::/8", "0.0.0.0/0": "0.0.0.0/0", "169.254.169.254": "169.254.169.254/32",
	} {
		got, err := ParseAddrPrefix(s)
		if err != nil || got.String() != want {
			t.Errorf("ParseAddrPrefix(%q) = %v, %v; want %s", s, got, err, want)
		}
	}
	for _, s := range []string{"", "10.0.0.0/33", "10.0.0.0/", "/8", "10.0.0.1/8", "::ffff:0:0/96", "a.com", "1.2.3.4:80"} {
		if p, err := ParseAddrPrefix(s); err == nil {
			t.Errorf("ParseAddrPrefix(%q) = %v, want an error", s, p)
		}
	}
}

func TestValidEnvName(t *testing.T) {
	for s, want := range map[string]bool{"A": true, "_": true, "a1_B": true, "": false, "1A": false, "A-B": false, "A.B": false, "É": false} {
		if ValidEnvName(s) != want {
			t.Errorf("ValidEnvName(%q) = %v", s, !want)
		}
	}
}

func TestCheckHost(t *testing.T) {
	for _, h := range []string{"github.com", "proxy.golang.org:443", "10.0.0.1", "[::1]:8080", "::1"} {
		if err := CheckHost(h); err != nil {
			t.Errorf("%q rejected: %v", h, err)
		}
	}
	for _, h := range []string{"", "*.github.com", "GitHub.com", "a..b", "a.com:0", "a.com:65536", "[::1", "a b"} {
		if CheckHost(h) == nil {
			t.Errorf("%q accepted", h)
		}
	}
}

func TestMatchName(t *testing.T) {
	for _, tt := range []struct {
		el, name string
		want     bool
	}{
		{"*", ".git", true},
		{"*", "vendor", true},
		{"*", "", true},
		{"?", "a", true},
		{"?", "ab", false},
		{".git", ".git", true},
		{".git", ".gitx", false},
		{"*.json", "settings.json", true},
		{"*.json", "settings.jsonc", false},
		{"[ab]", "a", false}, // "[" is literal
		{"[ab]", "[ab]", true},
		{"*", "a/b", false}, // one name only
	} {
		if got := MatchName(tt.el, tt.name); got != tt.want {
			t.Errorf("MatchName(%q, %q) = %v, want %v", tt.el, tt.name, got, tt.want)
		}
	}
}

// TestDefaultProtect checks that the default policy protects what the
// red-team catalog's W03 names, and nothing that is ordinary project
// content.
func TestDefaultProtect(t *testing.T) {
	got := map[string]bool{}
	for _, e := range Default().Workspace.Protect {
		got[e] = true
	}
	for _, want := range []string{".git/config", ".git/hooks", ".git/info", ".vscode", ".idea", ".claude", ".envrc", ".devcontainer", ".githooks", ".husky"} {
		if !got[want] {
			t.Errorf("default workspace.protect lacks %s", want)
		}
	}
	for _, not := range []string{".git", ".gitmodules", ".gitattributes", "Makefile", ".env"} {
		if got[not] {
			t.Errorf("default workspace.protect has %s, which sessions must be able to write", not)
		}
	}
}
