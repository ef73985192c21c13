package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cordon-sandbox/cordon/internal/plan"
	"github.com/cordon-sandbox/cordon/policy"
)

// tree makes files (content "x"), directories (a trailing "/") and
// symbolic links ("name -> target") under dir.
func tree(t *testing.T, dir string, specs ...string) {
	t.Helper()
	for _, sp := range specs {
		p := filepath.Join(dir, sp)
		var err error
		switch name, target, link := strings.Cut(sp, " -> "); {
		case link:
			p = filepath.Join(dir, name)
			os.MkdirAll(filepath.Dir(p), 0o755)
			err = os.Symlink(target, p)
		case strings.HasSuffix(sp, "/"):
			err = os.MkdirAll(p, 0o755)
		default:
			os.MkdirAll(filepath.Dir(p), 0o755)
			err = os.WriteFile(p, []byte("x"), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func describeProtect(ps []plan.Protect) []string {
	var out []string
	for _, p := range ps {
		d := ""
		if p.Dir {
			d = "/"
		}
		out = append(out, string(p.Kind)+" "+p.Path+d)
	}
	return out
}

func TestResolveProtect(t *testing.T) {
	ws := t.TempDir()
	tree(t, ws,
		".git/config", ".git/HEAD", ".git/hooks/pre-commit.sample", ".git/info/exclude",
		".git/hooks/pre-commit -> ../../scripts/pre-commit", "scripts/pre-commit", "scripts/other",
		".git/hooks/up -> ..", // holds the link: not followed
		".git/hooks/out -> /etc/passwd",
		".git/modules/a/config", ".git/modules/a/hooks/", ".git/modules/b/config",
		"sub/.git", // a gitfile where "*/.git/config" expects a directory
		"vendor/x/", "nested/.git/hooks/", "nested/.git/config",
		".vscode -> /etc", // a link: warned, not followed
		".claude/settings.json", ".claude/skills -> ../skills", "skills/run.sh",
		".idea/g -> ../.git", // a pinned directory: not protected
		".envrc",
	)
	if err := os.Link(filepath.Join(ws, ".envrc"), filepath.Join(ws, "envrc-copy")); err != nil {
		t.Fatal(err)
	}
	entries := []string{".git/config", ".git/hooks", ".git/info", ".git/modules/*/config", ".git/modules/*/hooks",
		"*/.git/config", ".vscode", ".claude", ".idea", ".envrc", ".absent", ".git/absent/x"}
	ps, warnings, err := resolveProtect(ws, entries)
	if err != nil {
		t.Fatal(err)
	}
	got := describeProtect(ps)
	want := []string{
		"read_only .claude/", "read_only .envrc", "pin .git/", "read_only .idea/", "pin nested/", "pin scripts/",
		"read_only skills/", "pin sub/",
		"read_only .git/config", "read_only .git/hooks/", "read_only .git/info/", "pin .git/modules/", "pin nested/.git/",
		"read_only scripts/pre-commit", "read_only sub/.git",
		"pin .git/modules/a/", "pin .git/modules/b/", "read_only nested/.git/config",
		"read_only .git/modules/a/config", "read_only .git/modules/a/hooks/", "read_only .git/modules/b/config",
	}
	if !slices.Equal(got, want) {
		t.Errorf("protections:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, w := range []string{".vscode is a symbolic link", ".git/hooks/up links to .git", ".idea/g links to .git", "1 protected files have other hard links, which stay writable: .envrc"} {
		if !slices.ContainsFunc(warnings, func(s string) bool { return strings.Contains(s, w) }) {
			t.Errorf("no warning %q in %q", w, warnings)
		}
	}
	if len(warnings) != 4 {
		t.Errorf("warnings: %q", warnings)
	}
	for _, p := range ps {
		if p.Entry == "" {
			t.Errorf("%s names no entry", p.Path)
		}
	}

	// A read-only directory covers what is beneath it; its pin is
	// upgraded, whichever entry comes first.
	for _, entries := range [][]string{{".git", ".git/hooks"}, {".git/hooks", ".git"}} {
		ps, _, err := resolveProtect(ws, entries)
		if err != nil {
			t.Fatal(err)
		}
		if got := describeProtect(ps); !slices.Equal(got, []string{"read_only .git/", "pin scripts/", "read_only scripts/pre-commit"}) {
			t.Errorf("%q: %q", entries, got)
		}
	}
}

// TestResolveProtectBudget checks that a huge protected directory costs
// a bounded scan and says so.
func TestResolveProtectBudget(t *testing.T) {
	ws := t.TempDir()
	big := filepath.Join(ws, ".idea")
	os.Mkdir(big, 0o755)
	for i := range maxProtectScan + 10 {
		os.WriteFile(filepath.Join(big, fmt.Sprintf("f%05d", i)), nil, 0o644)
	}
	ps, warnings, err := resolveProtect(ws, []string{".idea"})
	if err != nil || len(ps) != 1 {
		t.Fatalf("%v %v", ps, err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "were not examined") {
		t.Errorf("warnings: %q", warnings)
	}
}

// BenchmarkResolveProtect measures the host's part of protecting the
// default list in a workspace that has most of what it names (a git
// repository with its sample hooks, editor and agent directories); set
// CORDON_BENCH_WS to measure another tree, CORDON_BENCH_PROTECT (entries
// separated by commas) another list.
func BenchmarkResolveProtect(b *testing.B) {
	ws := os.Getenv("CORDON_BENCH_WS")
	if ws == "" {
		ws = b.TempDir()
		if out, err := exec.Command("git", "init", "-q", ws).CombinedOutput(); err != nil {
			b.Fatalf("git init: %v %s", err, out)
		}
		for _, d := range []string{".vscode", ".idea", ".claude", ".devcontainer"} {
			os.Mkdir(filepath.Join(ws, d), 0o755)
			os.WriteFile(filepath.Join(ws, d, "settings.json"), []byte("{}"), 0o644)
		}
		os.WriteFile(filepath.Join(ws, ".envrc"), nil, 0o644)
	}
	entries := policy.Default().Workspace.Protect
	if e := os.Getenv("CORDON_BENCH_PROTECT"); e != "" {
		entries = strings.Split(e, ",")
	}
	var n int
	for b.Loop() {
		ps, _, err := resolveProtect(ws, entries)
		if err != nil {
			b.Fatal(err)
		}
		n = len(ps)
	}
	b.ReportMetric(float64(n), "protections")
}
