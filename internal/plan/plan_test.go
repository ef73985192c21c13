package plan

import "testing"

func TestProtecting(t *testing.T) {
	p := &Plan{Workspace: "/w/ws", Protect: []Protect{
		{Path: ".git", Kind: ProtectPin, Dir: true, Entry: ".git/hooks"},
		{Path: ".git/hooks", Kind: ProtectReadOnly, Dir: true, Entry: ".git/hooks"},
		{Path: ".envrc", Kind: ProtectReadOnly, Entry: ".envrc"},
	}}
	for _, tt := range []struct {
		name string
		want string // Path of the protection, "" for none
	}{
		{".git/hooks/pre-commit", ".git/hooks"},
		{"/w/ws/.git/hooks/pre-commit", ".git/hooks"},
		{"/w/ws/.git/hooks", ".git/hooks"},
		{".git/hooks/../hooks/x", ".git/hooks"},
		{".envrc", ".envrc"},
		{".git/index", ""},   // under a pin only
		{".git", ""},         // a pin refuses nothing
		{".git/hooksx", ""},  // a sibling with a common prefix
		{".envrc.local", ""}, // likewise
		{"/w/wsx/.envrc", ""},
		{"/etc/passwd", ""},
	} {
		got := ""
		if pr := p.Protecting(tt.name); pr != nil {
			got = pr.Path
		}
		if got != tt.want {
			t.Errorf("Protecting(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}

	// A grant lifts what is at or beneath its path, nothing above it.
	p.Unprotect = []string{"/w/ws/.git/hooks/pre-commit"}
	if p.Protecting(".git/hooks/pre-commit") == nil {
		t.Error("a grant of a file beneath a protected directory lifted the directory")
	}
	p.Unprotect = []string{"/w/ws/.git"}
	if pr := p.Protecting(".git/hooks/pre-commit"); pr != nil {
		t.Errorf("a grant of .git left %s in force", pr.Path)
	}
	if p.Protecting(".envrc") == nil {
		t.Error("a grant of .git lifted .envrc")
	}
	if p.Lifted(p.Protect[0]) {
		t.Error("a pin counted as lifted")
	}
	p.Unprotect = []string{"/w/ws"}
	if p.Protecting(".envrc") != nil {
		t.Error("a grant of the workspace left .envrc in force")
	}
}

func TestHostWritable(t *testing.T) {
	p := &Plan{Workspace: "/w/ws", WorkspaceWritable: true, Binds: []Bind{
		{Source: "/usr", Target: "/usr", Kind: BindDir},
		{Source: "/srv/out", Target: "/out", Kind: BindDir, Writable: true},
		{Source: "/srv/log", Target: "/log.txt", Kind: BindFile, Writable: true},
		{Source: "/bin", Target: "/bin", Kind: BindSymlink, Link: "usr/bin", Writable: true},
	}}
	got := p.HostWritable()
	if want := []string{"/w/ws", "/out", "/log.txt"}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("HostWritable() = %q, want %q", got, want)
	}
	p.WorkspaceWritable = false
	if got := p.HostWritable(); len(got) != 2 || got[0] != "/out" {
		t.Errorf("read-only workspace: HostWritable() = %q", got)
	}
}
