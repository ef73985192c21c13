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
	p, err := resolve(pol, ws, "id", idMap{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Limits.TimeoutMS <= 0 || p.Limits.OutputBytes <= 0 || p.TmpBytes <= 0 || p.HomeBytes <= 0 {
		t.Errorf("unset limits left unbounded: %+v tmp %d home %d", p.Limits, p.TmpBytes, p.HomeBytes)
	}
	pol.Limits.Output = 1 << 40
	if p, _ = resolve(pol, ws, "id", idMap{}, nil); p.Limits.OutputBytes > maxOutput {
		t.Errorf("output cap %d exceeds what a frame holds", p.Limits.OutputBytes)
	}
}

func TestResolveMounts(t *testing.T) {
	ws := t.TempDir()
	host := t.TempDir()
	for _, at := range []string{"/tmp", "/home/cordon", ws} {
		pol := policy.Default()
		pol.Filesystem.Read = append(pol.Filesystem.Read, policy.Mount{Path: host, At: at})
		if _, err := resolve(pol, ws, "id", idMap{}, nil); err == nil || !strings.Contains(err.Error(), "would cover") {
			t.Errorf("bind at %s: %v", at, err)
		}
	}
	pol := policy.Default()
	pol.Filesystem.Read = append(pol.Filesystem.Read, policy.Mount{Path: host, At: "/tmp/data"})
	if _, err := resolve(pol, ws, "id", idMap{}, nil); err != nil {
		t.Errorf("control: bind below /tmp: %v", err)
	}
	pol = policy.Default()
	pol.Filesystem.Read = append(pol.Filesystem.Read, policy.Mount{Path: "/nonexistent/cordon"})
	if _, err := resolve(pol, ws, "id", idMap{}, nil); err == nil || !strings.Contains(err.Error(), "/nonexistent/cordon") {
		t.Errorf("missing required mount: %v", err)
	}
	pol.Filesystem.Read[len(pol.Filesystem.Read)-1].Optional = true
	if _, err := resolve(pol, ws, "id", idMap{}, nil); err != nil {
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

func TestForeignCaller(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a foreign caller needs a root process to open sessions for others")
	}
	ws := t.TempDir() // root's, under a 0700 parent
	other := &Caller{UID: 65534, GID: 65534, Home: "/nonexistent"}
	if err := checkCaller(other, ws); err == nil {
		t.Errorf("uid 65534 opened a session over root's workspace")
	}
	dir, _ := os.MkdirTemp("", "cordon-foreign-")
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	own := filepath.Join(dir, "ws")
	os.Mkdir(own, 0o755)
	os.Chown(own, 65534, 65534)
	if err := checkCaller(other, own); err != nil {
		t.Errorf("control: uid 65534's own workspace: %v", err)
	}
	// A bind of a directory under root's private home is refused for
	// the foreign caller, and allowed for root itself.
	secret := filepath.Join(t.TempDir(), "sub")
	os.Mkdir(secret, 0o755)
	pol := policy.Default()
	pol.Filesystem.Read = append(pol.Filesystem.Read, policy.Mount{Path: secret, At: "/opt/secret"})
	if _, err := resolve(pol, own, "id", idMap{}, other); err == nil {
		t.Errorf("uid 65534 bound a path it cannot reach")
	}
	if _, err := resolve(pol, own, "id", idMap{}, nil); err != nil {
		t.Errorf("control: root binds it: %v", err)
	}
}
