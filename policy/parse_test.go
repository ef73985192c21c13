package policy

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

// minimal is the smallest valid policy text.
const minimal = "version: 1\n"

func mustParse(t *testing.T, text string) *Policy {
	t.Helper()
	p, err := Parse([]byte(text), "test.yaml")
	if err != nil {
		t.Fatalf("Parse:\n%s\nerror: %v", text, err)
	}
	return p
}

// wantProblem asserts err is an *Error with a problem on line (0: any
// line) whose message contains substr.
func wantProblem(t *testing.T, err error, line int, field, substr string) {
	t.Helper()
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("error %v (%T) is not *Error", err, err)
	}
	for _, p := range perr.Problems {
		if (line == 0 || p.Line == line) && (field == "" || p.Field == field) && strings.Contains(p.Message, substr) {
			return
		}
	}
	t.Fatalf("no problem at line %d field %q containing %q in:\n%v", line, field, substr, err)
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		line  int
		field string
		msg   string
	}{
		{"unknown top-level key", "version: 1\nnetwrk: {}\n", 2, "netwrk", `unknown key "netwrk"; valid keys: version, workspace`},
		{"unknown nested key", "version: 1\nfilesystem:\n  read: []\n  reed: []\n", 4, "filesystem.reed", `unknown key "reed"; valid keys: read, write, hide`},
		{"unknown mount key", "version: 1\nfilesystem:\n  read:\n    - /usr\n    - {path: /x, ta: /y}\n", 5, "filesystem.read[1].ta", `unknown key "ta"`},
		{"bad byte size", "version: 1\nlimits:\n  pids: 100\n  memory: 2XB\n", 4, "limits.memory", `unknown unit "XB"`},
		{"byte size fraction of a byte", "version: 1\nlimits:\n  output: 0.1KiB\n", 3, "limits.output", "not a whole number of bytes"},
		{"byte size mapping", "version: 1\nlimits:\n  tmp: {a: 1}\n", 3, "limits.tmp", "invalid byte size"},
		{"bad duration", "version: 1\nlimits:\n  timeout: 10\n", 3, "limits.timeout", "invalid duration"},
		{"bad access", "version: 1\nworkspace:\n  access: rw\n", 3, "workspace.access", `invalid access "rw"`},
		{"duplicate top-level key", "version: 1\nlimits: {}\nversion: 1\n", 3, "version", `duplicate key "version" (first at line 1)`},
		{"duplicate nested key", "version: 1\nlimits:\n  pids: 10\n  pids: 20\n", 4, "limits.pids", "duplicate key"},
		{"duplicate env.set key", "version: 1\nenv:\n  set:\n    A: x\n    A: y\n", 5, "env.set.A", "duplicate key"},
		{"duplicate key in flow mapping", "version: 1\nenv: {set: {A: 1, A: 2}}\n", 2, "env.set.A", "duplicate key"},
		{"duplicate mount key", "version: 1\nfilesystem:\n  read:\n    - path: /a\n      path: /b\n", 5, "filesystem.read[0].path", "duplicate key"},
		{"wrong type int", "version: 1\nlimits:\n  pids: many\n", 3, "limits.pids", `wrong type: want an integer, got string "many"`},
		{"wrong type list", "version: 1\nfilesystem:\n  hide: /etc/shadow\n", 3, "filesystem.hide", "want a list"},
		{"wrong type mapping", "version: 1\nlimits: 5\n", 2, "limits", "want a mapping"},
		{"wrong type version", "version: \"1\"\n", 1, "version", "want an integer"},
		{"wrong type optional", "version: 1\nfilesystem:\n  read:\n    - {path: /x, optional: maybe}\n", 4, "filesystem.read[0].optional", "want true or false"},
		{"mount is a list", "version: 1\nfilesystem:\n  read:\n    - [/x]\n", 4, "filesystem.read[0]", "a mount is a path or a mapping"},
		{"version 2", "version: 2\n", 1, "version", "unsupported version 2"},
		{"version missing", "limits: {}\n", 0, "version", "missing"},
		{"cpu nan", "version: 1\nlimits:\n  cpu: .nan\n", 3, "limits.cpu", "finite"},
		{"empty", "", 0, "", "policy is empty"},
		{"whitespace", " \n\t\n  \n", 0, "", "policy is empty"},
		{"comment only", "# nothing\n", 0, "", "policy is empty"},
		{"null document", "---\n", 0, "", "policy is empty"},
		{"two documents", "version: 1\n---\nversion: 1\n", 2, "", "more than one YAML document"},
		{"not a mapping", "- version\n", 1, "", "a policy is a mapping"},
		{"syntax error", "version: 1\nlimits:\n  pids: [1\n", 0, "", ""},
		{"anchor", "version: 1\nenv:\n  pass: &p [A]\n", 3, "env.pass", "anchors"},
		{"alias", "version: 1\nenv:\n  pass: [A]\n  set: *x\n", 0, "", ""},
		{"merge key", "version: 1\nlimits:\n  <<: {pids: 10}\n", 3, "limits", "merge keys"},
		{"explicit tag", "version: 1\nlimits:\n  pids: !!str 10\n", 3, "limits.pids", "explicit YAML tags"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte(tt.text), "test.yaml")
			if err == nil {
				t.Fatalf("Parse accepted:\n%s\nas %+v", tt.text, p)
			}
			wantProblem(t, err, tt.line, tt.field, tt.msg)
			if !strings.HasPrefix(err.Error(), "test.yaml:") {
				t.Errorf("error %q does not start with the source", err)
			}
		})
	}
}

// Controls for TestParseErrors: the same shapes, written correctly.
func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		check func(*Policy) bool
	}{
		{"minimal", minimal, func(p *Policy) bool { return p.Version == 1 }},
		{"known keys", "version: 1\nnetwork: {}\nfilesystem:\n  read: []\n", nil},
		{"mount forms", "version: 1\nfilesystem:\n  read:\n    - /usr\n    - {path: /x, at: /y}\n    - path: /z\n      optional: true\n",
			func(p *Policy) bool {
				r := p.Filesystem.Read
				return len(r) == 3 && r[0] == Mount{Path: "/usr"} && r[1] == Mount{Path: "/x", At: "/y"} && r[2] == Mount{Path: "/z", Optional: true}
			}},
		{"byte sizes", "version: 1\nlimits:\n  memory: 2GiB\n  output: 0.5KiB\n  tmp: 1048576\n  home: 1.5GB\n",
			func(p *Policy) bool {
				l := p.Limits
				return l.Memory == 2*GiB && l.Output == 512 && l.Tmp == MiB && l.Home == 1500000000
			}},
		{"disk floors", "version: 1\nlimits:\n  disk_free: 1.5GiB\n  disk_free_inodes: 5000\n",
			func(p *Policy) bool { return p.Limits.DiskFree == 3*GiB/2 && p.Limits.DiskFreeInodes == 5000 }},
		{"duration", "version: 1\nlimits:\n  timeout: 1h30m\n", func(p *Policy) bool { return p.Limits.Timeout.String() == "1h30m" }},
		{"duration zero", "version: 1\nlimits:\n  timeout: 0\n", func(p *Policy) bool { return p.Limits.Timeout == 0 }},
		{"access read", "version: 1\nworkspace:\n  access: read\n", func(p *Policy) bool { return p.Workspace.Access == AccessRead }},
		{"access empty", "version: 1\nworkspace: {}\n", func(p *Policy) bool { return p.Workspace.Access.OrDefault() == AccessWrite }},
		{"env set", "version: 1\nenv:\n  set:\n    A: x\n    B: y\n", func(p *Policy) bool { return p.Env.Set["A"] == "x" && p.Env.Set["B"] == "y" }},
		{"int as env value", "version: 1\nenv: {set: {A: 1}}\n", func(p *Policy) bool { return p.Env.Set["A"] == "1" }},
		{"optional false", "version: 1\nfilesystem:\n  read:\n    - {path: /x, optional: false}\n", func(p *Policy) bool { return !p.Filesystem.Read[0].Optional }},
		{"null sections", "version: 1\nlimits:\nenv:\n", nil},
		{"explicit document start", "---\nversion: 1\n", nil},
		{"json", `{"version": 1, "filesystem": {"read": ["/usr", {"path": "/x", "optional": true}]}, "limits": {"memory": "1GiB", "timeout": "5s"}}`,
			func(p *Policy) bool { return len(p.Filesystem.Read) == 2 && p.Limits.Memory == GiB }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, tt.text)
			if tt.check != nil && !tt.check(p) {
				t.Fatalf("unexpected result %+v", p)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	text := "version: 1\nfilesystem:\n  read:\n    - /usr\n    - {path: /x, at: relative}\nlimits:\n  memory: 1MiB\n  pids: -1\n"
	p := mustParse(t, text)
	err := p.Validate()
	want := `test.yaml:5: filesystem.read[1].at: "relative" must be absolute
test.yaml:7: limits.memory: 1MiB is below the minimum of 16MiB
test.yaml:8: limits.pids: must not be negative (got -1); 0 means unset`
	if err == nil || err.Error() != want {
		t.Fatalf("got\n%v\nwant\n%s", err, want)
	}
	_, err = Parse(nil, "")
	if err == nil || err.Error() != "policy: policy is empty" {
		t.Fatalf("got %q", err)
	}
}

func TestParseReportsAllTypeErrors(t *testing.T) {
	_, err := Parse([]byte("version: 1\nlimits:\n  memory: lots\n  pids: many\n  timeout: soon\n"), "x")
	for _, f := range []string{"limits.memory", "limits.pids", "limits.timeout"} {
		wantProblem(t, err, 0, f, "")
	}
}

func TestDefault(t *testing.T) {
	p := Default()
	if err := p.Validate(); err != nil {
		t.Fatalf("default policy does not validate:\n%v", err)
	}
	if p.Source() != DefaultSource {
		t.Errorf("Source() = %q", p.Source())
	}
	// A fresh copy each call.
	p.Filesystem.Read[0].Path = "/changed"
	p.Env.Set["PATH"] = "/changed"
	p.Capabilities.Never[0] = "fs.read:/x"
	q := Default()
	if q.Filesystem.Read[0].Path != "/usr" || q.Env.Set["PATH"] == "/changed" || q.Capabilities.Never[0] == "fs.read:/x" {
		t.Fatal("Default returned shared state")
	}
	// The content the brief asks for.
	if q.Workspace.Access != AccessWrite || q.Limits.Memory != 4*GiB || q.Limits.Pids != 1024 ||
		q.Limits.Timeout.String() != "10m" || q.Limits.Output != 16*MiB || q.Limits.Tmp != GiB || q.Limits.Home != GiB ||
		q.Limits.DiskFree != GiB || q.Limits.DiskFreeInodes != 10000 {
		t.Errorf("unexpected limits/workspace: %+v %+v", q.Workspace, q.Limits)
	}
	if len(q.Filesystem.Write) != 0 || len(q.Capabilities.Auto) != 0 || len(q.Network.AllowPrivate) != 0 {
		t.Error("default must allow no extra writes, no auto grants, no private addresses")
	}
	// The public registries development needs, over TLS only.
	for _, h := range []string{"proxy.golang.org:443", "sum.golang.org:443", "registry.npmjs.org:443", "pypi.org:443", "files.pythonhosted.org:443", "github.com:443"} {
		if !slices.Contains(q.Network.Allow, h) {
			t.Errorf("default network.allow lacks %s", h)
		}
	}
	for _, h := range q.Network.Allow {
		if !strings.HasSuffix(h, ":443") {
			t.Errorf("default network.allow entry %s is not limited to port 443", h)
		}
	}
	if _, ok := q.Env.Set["GOFLAGS"]; ok {
		t.Error("GOFLAGS must stay unset")
	}
	if string(DefaultYAML()) == "" || !strings.Contains(string(DefaultYAML()), "# ") {
		t.Error("DefaultYAML lost its comments")
	}
	// DefaultYAML returns a copy.
	b := DefaultYAML()
	b[0] = 'X'
	if DefaultYAML()[0] == 'X' {
		t.Error("DefaultYAML returned shared bytes")
	}
}

func TestDefaultExpands(t *testing.T) {
	p, err := Default().Expand("/home/ann", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, m := range p.Filesystem.Read {
		if m.At == "/home/cordon/go/pkg/mod" {
			found = m.Path == "/home/ann/go/pkg/mod"
		}
	}
	if !found {
		t.Errorf("module cache mount not expanded: %+v", p.Filesystem.Read)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	for _, text := range []string{
		string(DefaultYAML()),
		minimal,
		"version: 1\nfilesystem:\n  read: [/a, {path: /b, at: /c}, {path: '/d', optional: true}]\nlimits:\n  memory: -5\n  output: 1000\n  cpu: 1.5\n  timeout: 1h0m1s\n",
		"version: 1\nnetwork:\n  allow: [a.com, \"[::1]:443\"]\n  allow_private: [127.0.0.1, fd00::/8]\n",
		"version: 1\nenv:\n  set:\n    EMPTY: ''\n    SPACES: '  a  '\n    QUOTE: \"it's \\\"x\\\"\"\n",
	} {
		p := mustParse(t, text)
		out, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		q := mustParse(t, string(out))
		if !p.Equal(q) {
			t.Errorf("round trip changed the policy:\n%s\n->\n%s", text, out)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	p := Default()
	p.Limits.Output = 1000
	p.Filesystem.Write = []Mount{{Path: "/w"}, {Path: "/v", At: "/x", Optional: true}}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var q Policy
	if err := json.Unmarshal(b, &q); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if !p.Equal(&q) {
		t.Fatalf("JSON round trip changed the policy:\n%s", b)
	}
	// JSON text also goes through Parse (JSON is YAML).
	r, err := Parse(b, "p.json")
	if err != nil {
		t.Fatal(err)
	}
	if !p.Equal(r) {
		t.Fatal("Parse of the JSON form differs")
	}
	// Strictness of the custom JSON decoders.
	for _, bad := range []string{`{"path": "/x", "bogus": 1}`, `5`} {
		var m Mount
		if json.Unmarshal([]byte(bad), &m) == nil {
			t.Errorf("Mount accepted %s", bad)
		}
	}
	var a Access
	if json.Unmarshal([]byte(`"rw"`), &a) == nil {
		t.Error("Access accepted rw")
	}
}

func TestEqual(t *testing.T) {
	a := mustParse(t, "version: 1\nfilesystem:\n  write: []\n")
	b := &Policy{Version: 1}
	if !a.Equal(b) {
		t.Error("empty list should equal missing list")
	}
	c := mustParse(t, "version: 1\nnetwork:\n  allow_private: []\n")
	if !c.Equal(b) {
		t.Error("empty allow_private should equal a missing one")
	}
	c.Network.AllowPrivate = []string{"10.0.0.0/8"}
	d := c.Clone()
	d.Network.AllowPrivate[0] = "127.0.0.1"
	if c.Network.AllowPrivate[0] != "10.0.0.0/8" || c.Equal(d) {
		t.Error("Clone shares network.allow_private, or Equal ignores it")
	}
	b.Limits.Pids = 10
	if a.Equal(b) {
		t.Error("different policies compare equal")
	}
	var n *Policy
	if !n.Equal(nil) || a.Equal(nil) {
		t.Error("nil handling")
	}
}
