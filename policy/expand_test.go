package policy

import (
	"testing"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestExpand(t *testing.T) {
	text := `version: 1
filesystem:
  read:
    - ~/src
    - {path: "${GOPATH}/pkg/mod", at: /home/cordon/go/pkg/mod}
    - {path: "${MISSING}/x", optional: true}
    - "/opt/$$cash"
    - "${TRAILING}/y"
  write:
    - {path: "${MISSING}/w", optional: true}
    - ~/out
`
	p := mustParse(t, text)
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	q, err := p.Expand("/home/ann", env(map[string]string{"GOPATH": "/home/ann/go", "TRAILING": "/t/"}))
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{
		{Path: "/home/ann/src"},
		{Path: "/home/ann/go/pkg/mod", At: "/home/cordon/go/pkg/mod"},
		{Path: "/opt/$cash"},
		{Path: "/t/y"},
	}
	if len(q.Filesystem.Read) != len(want) {
		t.Fatalf("read = %+v", q.Filesystem.Read)
	}
	for i := range want {
		if q.Filesystem.Read[i] != want[i] {
			t.Errorf("read[%d] = %+v, want %+v", i, q.Filesystem.Read[i], want[i])
		}
	}
	if len(q.Filesystem.Write) != 1 || q.Filesystem.Write[0].Path != "/home/ann/out" {
		t.Errorf("write = %+v", q.Filesystem.Write)
	}
	// Positions follow the kept mounts.
	if got := q.Line("filesystem.read[2]"); got != 7 {
		t.Errorf("line of read[2] after expand = %d, want 7", got)
	}
	if got := q.Line("filesystem.write[0]"); got != 11 {
		t.Errorf("line of write[0] after expand = %d, want 11", got)
	}
	// The original is untouched.
	if p.Filesystem.Read[0].Path != "~/src" || len(p.Filesystem.Read) != 5 {
		t.Error("Expand modified its receiver")
	}
}

func TestExpandErrors(t *testing.T) {
	tests := []struct {
		name  string
		mount string
		home  string
		env   map[string]string
		msg   string
	}{
		{"unset required var", `"${NOPE}/x"`, "/h", nil, "${NOPE} is not set"},
		{"no home", `~/x`, "", nil, "home directory"},
		{"relative home", `~/x`, "h", nil, "home directory"},
		{"relative expansion", `"${REL}/x"`, "/h", map[string]string{"REL": "rel"}, "not absolute"},
		{"dotdot expansion", `"${UP}/x"`, "/h", map[string]string{"UP": "/a/../b"}, `contains ".."`},
		{"NUL expansion", `"${Z}/x"`, "/h", map[string]string{"Z": "/a\x00"}, "NUL"},
		{"expands into proc", `"${P}"`, "/h", map[string]string{"P": "/proc/1"}, "built by cordon"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, "version: 1\nfilesystem:\n  read:\n    - "+tt.mount+"\n")
			_, err := p.Expand(tt.home, env(tt.env))
			if err == nil {
				t.Fatal("Expand accepted")
			}
			wantProblem(t, err, 4, "", tt.msg)
		})
	}
	// Control: optional mount with an unset variable is dropped, not an error.
	p := mustParse(t, "version: 1\nfilesystem:\n  read:\n    - {path: \"${NOPE}/x\", optional: true}\n")
	q, err := p.Expand("/h", nil)
	if err != nil || len(q.Filesystem.Read) != 0 {
		t.Fatalf("optional mount: %v %+v", err, q)
	}
}

func TestExpandDuplicateAfterExpansion(t *testing.T) {
	p := mustParse(t, "version: 1\nfilesystem:\n  read:\n    - ~/a\n    - /home/ann/a\n")
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	_, err := p.Expand("/home/ann", nil)
	wantProblem(t, err, 5, "filesystem.read[1]", "already mounted")
	// Control: another home does not collide.
	if _, err := p.Expand("/home/bob", nil); err != nil {
		t.Fatal(err)
	}
}

func TestMarshalExpanded(t *testing.T) {
	p := mustParse(t, "version: 1\nfilesystem:\n  read: [\"/opt/$$x/${V}\"]\n")
	q, err := p.Expand("/h", env(map[string]string{"V": "v"}))
	if err != nil {
		t.Fatal(err)
	}
	if q.Filesystem.Read[0].Path != "/opt/$x/v" || !q.Expanded() || p.Expanded() {
		t.Fatalf("expanded = %+v", q.Filesystem.Read)
	}
	out, err := q.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	r := mustParse(t, string(out))
	s, err := r.Expand("/h", nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Filesystem.Read[0].Path != "/opt/$x/v" {
		t.Fatalf("re-expanded = %+v\n%s", s.Filesystem.Read, out)
	}
	// Expanding twice is a no-op.
	again, err := q.Expand("/other", nil)
	if err != nil || !again.Equal(q) {
		t.Fatalf("second Expand: %v", err)
	}
}
