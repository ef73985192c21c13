package sandbox_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/policy"
	"github.com/cordon-sandbox/cordon/sandbox"
)

// protectedRepo makes a workspace holding a git repository (made by the
// host's git, so its hooks directory has the samples) and what the
// default workspace.protect list names, and returns it with the
// protected paths that exist in it.
func protectedRepo(t *testing.T) (string, []string) {
	t.Helper()
	ws := workspace(t)
	git := exec.Command("git", "init", "-q", ws)
	git.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + ws}
	if out, err := git.CombinedOutput(); err != nil {
		t.Fatalf("git init: %v %s", err, out)
	}
	files := map[string]string{
		".vscode/tasks.json":              "{}",
		".claude/settings.json":           "{}",
		".devcontainer/devcontainer.json": "{}",
		".envrc":                          "export A=1\n",
		"src/main.go":                     "package main\n",
		"scripts/pre-commit":              "#!/bin/sh\nexit 0\n",
	}
	for name, content := range files {
		p := filepath.Join(ws, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The usual way to keep a hook in the repository: the link cannot
	// change once .git/hooks is protected, so its target is protected.
	if err := os.Symlink("../../scripts/pre-commit", filepath.Join(ws, ".git/hooks/pre-commit")); err != nil {
		t.Fatal(err)
	}
	return ws, []string{".git/config", ".git/hooks", ".git/info", ".vscode", ".claude", ".devcontainer", ".envrc", "scripts/pre-commit"}
}

// snapshot records the names, modes and contents under the given
// workspace paths.
func snapshot(t *testing.T, ws string, paths []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range paths {
		root := filepath.Join(ws, p)
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				out[path] = "error: " + err.Error()
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			v := fi.Mode().String()
			if fi.Mode().IsRegular() {
				data, _ := os.ReadFile(path)
				v += fmt.Sprintf(" %x", sha256.Sum256(data))
			}
			out[path] = v
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// attack is shell text that tries every way to change $p, printing "OK
// what" for each that works.
const attack = `cd "$WS"
if [ -d "$p" ] && [ ! -L "$p" ]; then
  (echo pwned > "$p/planted") 2>/dev/null && echo "OK create $p/planted"
  mkdir "$p/sub" 2>/dev/null && echo "OK mkdir $p/sub"
  for f in "$p"/*; do
    [ -f "$f" ] && [ ! -L "$f" ] && (echo pwned >> "$f") 2>/dev/null && echo "OK append $f"
  done
else
  (echo pwned >> "$p") 2>/dev/null && echo "OK append $p"
  ln -f "$p" "$p.hardlink" 2>/dev/null && echo "OK hard link $p"
fi
chmod 0777 "$p" 2>/dev/null && echo "OK chmod $p"
touch -d 2001-01-01 "$p" 2>/dev/null && echo "OK touch $p"
mv "$p" "$p.moved" 2>/dev/null && echo "OK rename $p"
mkdir -p x.$$ && mv -T x.$$ "$p" 2>/dev/null && echo "OK replace $p"
rm -rf "$p" 2>/dev/null; [ -e "$p" ] || echo "OK remove $p"
rm -rf x.$$
parent=$(dirname "$p")
if [ "$parent" != . ]; then
  mv "$parent" "$parent.moved" 2>/dev/null && echo "OK rename $parent" && mv "$parent.moved" "$parent"
fi
true`

// TestProtect checks workspace.protect with the default policy: each
// protected path that exists at open resists every way a command or a
// file tool can change it, with positive controls (a sibling is
// writable, git commits; with workspace.protect: [] the same writes
// land).
func TestProtect(t *testing.T) {
	ctx := context.Background()
	ws, protected := protectedRepo(t)
	s, sub := open(t, ws, nil)
	start := <-sub.C
	if start.Kind != events.SessionStart {
		t.Fatalf("first event %s", start.Kind)
	}
	got, _ := start.Detail["protected"].([]string)
	for _, p := range protected {
		if !slices.Contains(got, p) {
			t.Errorf("session.start does not list %s as protected: %q", p, got)
		}
	}
	if w := fmt.Sprint(start.Detail["warnings"]); strings.Contains(w, "workspace.protect") {
		t.Errorf("protection warnings for an ordinary repository: %v", w)
	}
	if us := start.Timing["view_protect_us"]; us <= 0 {
		t.Errorf("no view_protect_us timing: %v", start.Timing)
	}
	before := snapshot(t, ws, protected)

	for _, p := range protected {
		r := sh(t, s, fmt.Sprintf("WS=%q p=%q; %s", ws, p, attack))
		if strings.Contains(string(r.Stdout), "OK") {
			t.Errorf("%s changed by a command:\n%s", p, r.Stdout)
		}
		// The write observer names the protection behind the EROFS.
		if !slices.ContainsFunc(r.Denials, func(d *events.Event) bool {
			return d.Rule == "policy.workspace.protect" && d.Remedy != nil && d.Remedy.Capability == "fs.write:"+filepath.Join(ws, p)
		}) {
			t.Errorf("%s: no policy.workspace.protect denial for the command: %v", p, r.Denials)
		}
		target := p
		if fi, err := os.Lstat(filepath.Join(ws, p)); err == nil && fi.IsDir() {
			target = p + "/planted.json"
		}
		err := s.WriteFile(ctx, target, []byte("pwned"))
		var se *sandbox.Error
		if !errors.As(err, &se) || se.Code != sandbox.CodeDenied || len(se.Denials) != 1 {
			t.Errorf("write_file %s: %v", target, err)
			continue
		}
		d := se.Denials[0]
		if d.Rule != "policy.workspace.protect" || d.Remedy == nil || d.Remedy.Capability != "fs.write:"+filepath.Join(ws, p) {
			t.Errorf("write_file %s: denial %+v remedy %+v", target, d, d.Remedy)
		}
	}
	if after := snapshot(t, ws, protected); !mapsEqual(before, after) {
		t.Errorf("protected paths changed on the host:\nbefore %v\nafter  %v", before, after)
	}

	// Controls: the rest of the workspace is writable, git works.
	if err := s.WriteFile(ctx, "src/new.go", []byte("package main\n")); err != nil {
		t.Errorf("control: write_file beside the protected paths: %v", err)
	}
	r := sh(t, s, `echo x > src/other && mv src/other src/other2 && rm src/other2 && echo wrote &&
git add -A && git -c user.name=a -c user.email=a@example.com commit -qm init && git branch b && git log --oneline | wc -l &&
(git config core.fsmonitor 'touch /tmp/pwned' 2>/dev/null && echo "OK git config") ; git config --get core.fsmonitor; true`)
	if out := strings.TrimSpace(string(r.Stdout)); out != "wrote\n1" {
		t.Errorf("control: sibling write, commit and branch, but not git config: %q %q", out, r.Stderr)
	}

	// A grant of fs.write on a protected path lifts that one protection
	// (root-started sessions: the host mounts the grant over it), and
	// revoking it puts it back.
	vscode := filepath.Join(ws, ".vscode")
	err := s.ApplyGrants([]string{"fs.write:" + vscode})
	var se *sandbox.Error
	if os.Geteuid() != 0 {
		if !errors.As(err, &se) || se.Code != sandbox.CodeUnsupported {
			t.Errorf("a filesystem grant in a rootless session: %v", err)
		}
	} else {
		if err != nil {
			t.Fatalf("granting %s: %v", vscode, err)
		}
		if r := sh(t, s, "echo '{}' > .vscode/granted.json && echo wrote"); strings.TrimSpace(string(r.Stdout)) != "wrote" {
			t.Errorf("granted .vscode is not writable: %q %q", r.Stdout, r.Stderr)
		}
		if _, err := os.Stat(filepath.Join(vscode, "granted.json")); err != nil {
			t.Errorf("the granted write did not reach the host: %v", err)
		}
		err := s.WriteFile(ctx, ".claude/still.json", []byte("{}"))
		if !errors.As(err, &se) || len(se.Denials) != 1 || se.Denials[0].Rule != "policy.workspace.protect" {
			t.Errorf("the grant of .vscode lifted .claude too: %v", err)
		}
		if err := s.ApplyGrants(nil); err != nil {
			t.Fatalf("revoking: %v", err)
		}
		err = s.WriteFile(ctx, ".vscode/after.json", []byte("{}"))
		if !errors.As(err, &se) || len(se.Denials) != 1 || se.Denials[0].Rule != "policy.workspace.protect" {
			t.Errorf("after the revocation .vscode is not protected again: %v", err)
		}
	}

	// workspace.protect: [] lets the very same attacks through.
	bare := policy.Default()
	bare.Workspace.Protect = nil
	ws2, _ := protectedRepo(t)
	s2, _ := open(t, ws2, bare)
	for _, p := range protected {
		r := sh(t, s2, fmt.Sprintf("WS=%q p=%q; %s", ws2, p, attack))
		for _, want := range []string{"OK rename " + p, "OK remove " + p} {
			if !strings.Contains(string(r.Stdout), want) {
				t.Errorf("control: without protection, %q missing:\n%s%s", want, r.Stdout, r.Stderr)
			}
		}
	}
	if err := s2.WriteFile(ctx, ".git/config", []byte("[core]\n")); err != nil {
		t.Errorf("control: write_file .git/config without protection: %v", err)
	}
}

// TestProtectLinks plants symbolic links where the default list expects
// directories: the supervisor must not mount over where they point (the
// view is the same as with no protection at all, outside the
// workspace), the links are reported, and what they point to stays as
// writable as it was.
func TestProtectLinks(t *testing.T) {
	ws := workspace(t)
	elsewhere := t.TempDir()
	for _, d := range []string{".git", "docs"} {
		os.Mkdir(filepath.Join(ws, d), 0o755)
	}
	os.WriteFile(filepath.Join(ws, ".git/config"), []byte("[core]\n"), 0o644)
	links := map[string]string{
		".vscode":    "/etc",
		".git/hooks": elsewhere,
		".claude":    sandbox.DefaultHome,
		".idea":      "/tmp",
		".envrc":     "docs/envrc",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(ws, name)); err != nil {
			t.Fatal(err)
		}
	}
	s, sub := open(t, ws, nil)
	start := <-sub.C
	warnings := fmt.Sprint(start.Detail["warnings"])
	for name := range links {
		if !strings.Contains(warnings, name+" is a symbolic link") {
			t.Errorf("no warning about %s: %s", name, warnings)
		}
	}
	if got, _ := start.Detail["protected"].([]string); !slices.Equal(got, []string{".git/config"}) {
		t.Errorf("protected %q, want only .git/config", got)
	}
	r := sh(t, s, `touch /tmp/ok ~/ok docs/envrc .idea/ok .claude/ok && echo writable`)
	if strings.TrimSpace(string(r.Stdout)) != "writable" {
		t.Errorf("what the links point to is not writable as before: %q %q", r.Stdout, r.Stderr)
	}

	bare := policy.Default()
	bare.Workspace.Protect = nil
	s2, _ := open(t, ws, bare)
	outside := func(s *sandbox.Session) []string {
		var out []string
		for _, line := range strings.Split(string(sh(t, s, "cat /proc/self/mountinfo").Stdout), "\n") {
			f := strings.Fields(line)
			if len(f) > 4 && f[4] != ws && !strings.HasPrefix(f[4], ws+"/") {
				out = append(out, f[4]+" "+f[5])
			}
		}
		sort.Strings(out)
		return out
	}
	if a, b := outside(s), outside(s2); !slices.Equal(a, b) {
		t.Errorf("mounts outside the workspace differ from a session without protection:\n%q\n%q", a, b)
	}
	if r := sh(t, s, "grep -c '"+ws+"/' /proc/self/mountinfo"); strings.TrimSpace(string(r.Stdout)) != "2" {
		t.Errorf("want 2 mounts in the workspace (.git pinned, .git/config): %s", sh(t, s, "grep '"+ws+"' /proc/self/mountinfo").Stdout)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// BenchmarkOpenProtect measures opening a session on a repository with
// the default workspace.protect list and with none: the difference is
// what protection costs at open.
func BenchmarkOpenProtect(b *testing.B) {
	ws := b.TempDir()
	os.Chmod(ws, 0o755)
	git := exec.Command("git", "init", "-q", ws)
	git.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + ws}
	if out, err := git.CombinedOutput(); err != nil {
		b.Fatalf("git init: %v %s", err, out)
	}
	for _, d := range []string{".vscode", ".idea", ".claude", ".devcontainer"} {
		os.Mkdir(filepath.Join(ws, d), 0o755)
		os.WriteFile(filepath.Join(ws, d, "settings.json"), []byte("{}"), 0o644)
	}
	os.WriteFile(filepath.Join(ws, ".envrc"), nil, 0o644)
	none := policy.Default()
	none.Workspace.Protect = nil
	for _, c := range []struct {
		name string
		pol  *policy.Policy
	}{{"none", none}, {"default", policy.Default()}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			var views time.Duration
			for b.Loop() {
				bus := events.NewBus()
				sub := bus.Subscribe(16)
				s, err := sandbox.Open(ctx, sandbox.Options{Workspace: ws, Policy: c.pol, Bus: bus})
				if err != nil {
					b.Fatal(err)
				}
				e := <-sub.C
				views += time.Duration(e.Timing["view_us"]) * time.Microsecond
				b.StopTimer()
				s.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(views.Microseconds())/float64(b.N), "view_us/op")
		})
	}
}
