package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cordon-sandbox/cordon/policy"
)

func TestResolveDefaults(t *testing.T) {
	ws := t.TempDir()
	pol := policy.Default()
	pol.Limits = policy.Limits{} // everything unset
	p, _, err := resolve(pol, ws, "id", idMap{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Limits.TimeoutMS <= 0 || p.Limits.OutputBytes <= 0 || p.TmpBytes <= 0 || p.HomeBytes <= 0 {
		t.Errorf("unset limits left unbounded: %+v tmp %d home %d", p.Limits, p.TmpBytes, p.HomeBytes)
	}
	pol.Limits.Output = 1 << 40
	if p, _, _ = resolve(pol, ws, "id", idMap{}, nil); p.Limits.OutputBytes > maxOutput {
		t.Errorf("output cap %d exceeds what a frame holds", p.Limits.OutputBytes)
	}
}

func TestResolveMounts(t *testing.T) {
	ws := t.TempDir()
	host := t.TempDir()
	for _, at := range []string{"/tmp", "/home/cordon", ws} {
		pol := policy.Default()
		pol.Filesystem.Read = append(pol.Filesystem.Read, policy.Mount{Path: host, At: at})
		if _, _, err := resolve(pol, ws, "id", idMap{}, nil); err == nil || !strings.Contains(err.Error(), "would cover") {
			t.Errorf("bind at %s: %v", at, err)
		}
	}
	pol := policy.Default()
	pol.Filesystem.Read = append(pol.Filesystem.Read, policy.Mount{Path: host, At: "/tmp/data"})
	if _, _, err := resolve(pol, ws, "id", idMap{}, nil); err != nil {
		t.Errorf("control: bind below /tmp: %v", err)
	}
	pol = policy.Default()
	pol.Filesystem.Read = append(pol.Filesystem.Read, policy.Mount{Path: "/nonexistent/cordon"})
	if _, _, err := resolve(pol, ws, "id", idMap{}, nil); err == nil || !strings.Contains(err.Error(), "/nonexistent/cordon") {
		t.Errorf("missing required mount: %v", err)
	}
	pol.Filesystem.Read[len(pol.Filesystem.Read)-1].Optional = true
	if _, _, err := resolve(pol, ws, "id", idMap{}, nil); err != nil {
		t.Errorf("control: missing optional mount: %v", err)
	}
}

func TestCheckWorkspace(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o644)
	for _, ws := range []string{"", "/", "/proc", "/proc/self", "/nonexistent/cordon", file} {
		if _, err := checkWorkspace(ws); err == nil {
			t.Errorf("workspace %q accepted", ws)
		}
	}
	dir := t.TempDir()
	link := filepath.Join(t.TempDir(), "ws")
	os.Symlink(dir, link)
	if got, err := checkWorkspace(link); err != nil || got != dir {
		t.Errorf("control: workspace through a symlink: %q %v", got, err)
	}
}

func TestWalkOpen(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to open paths for another uid")
	}
	const other = 65534
	private := t.TempDir() // root's, under a 0700 parent
	if f, err := walkOpen(private, other); err == nil {
		f.Close()
		t.Errorf("uid %d walked into root's private directory", other)
	}
	if f, err := walkOpen(private, -1); err != nil {
		t.Errorf("control: without a uid to check: %v", err)
	} else {
		f.Close()
	}
	dir, _ := os.MkdirTemp("", "cordon-walk-")
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	own := filepath.Join(dir, "ws")
	os.Mkdir(own, 0o755)
	os.Chown(own, other, other)
	if f, err := walkOpen(own, other); err != nil {
		t.Errorf("control: uid %d's own directory: %v", other, err)
	} else {
		f.Close()
	}
	// A symlink anywhere on the way is refused, whatever it points to.
	link := filepath.Join(dir, "link")
	os.Symlink(own, link)
	if f, err := walkOpen(link, other); err == nil {
		f.Close()
		t.Errorf("walked through a symlink")
	}
	if f, err := walkOpen(link+"/../ws", -1); err == nil {
		f.Close()
		t.Errorf("accepted an unclean path")
	}
}
