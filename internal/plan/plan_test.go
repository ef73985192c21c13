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
