package supervisor

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/internal/plan"
)

// TestProtectWorkspace makes protections in a private mount namespace
// (a child of the test in new user and mount namespaces, so it runs
// rootless too) and checks them from there: read-only paths refuse
// writes, renames and removal, a pin refuses a rename and keeps its
// contents writable, a path turned into a symbolic link (or into another
// kind of file, or gone) is refused rather than followed, and a lifted
// protection is not made.
func TestProtectWorkspace(t *testing.T) {
	if ws := os.Getenv("CORDON_TEST_PROTECT_WS"); ws != "" {
		if err := protectChild(ws); err != nil {
			fmt.Println("FAIL:", err)
			os.Exit(1)
		}
		fmt.Println("CHILD OK")
		os.Exit(0)
	}
	ws := t.TempDir()
	for _, d := range []string{".git/hooks", "a/b", "b", "real"} {
		if err := os.MkdirAll(filepath.Join(ws, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{".git/config", ".envrc"} {
		if err := os.WriteFile(filepath.Join(ws, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/etc", filepath.Join(ws, ".vscode")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestProtectWorkspace$", "-test.count=1")
	cmd.Env = []string{"CORDON_TEST_PROTECT_WS=" + ws}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER | unix.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("CHILD OK")) {
		t.Fatalf("in a mount namespace: %v\n%s", err, out)
	}
	// Nothing reached the host: the namespace went with the child.
	if err := os.WriteFile(filepath.Join(ws, ".git/hooks/pre-commit"), nil, 0o755); err != nil {
		t.Errorf("host side: %v", err)
	}
}

func protectChild(ws string) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return err
	}
	if err := unix.Mount(ws, ws, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	fd, err := unix.Open(ws, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	mounts := func() string { b, _ := os.ReadFile("/proc/self/mountinfo"); return string(b) }
	before := mounts()

	// Refused, not followed: a link where the plan has a directory, a
	// directory where it has a file.
	for _, pr := range []plan.Protect{
		{Path: ".vscode", Kind: plan.ProtectReadOnly, Dir: true},
		{Path: "b", Kind: plan.ProtectReadOnly, Dir: false},
		{Path: "gone", Kind: plan.ProtectReadOnly},
	} {
		if err := protectWorkspace(fd, &plan.Plan{Workspace: ws, Protect: []plan.Protect{pr}}); err == nil || !strings.Contains(err.Error(), "changed while the session was opening") {
			return fmt.Errorf("%s: %v", pr.Path, err)
		}
	}
	if mounts() != before {
		return errors.New("a refused protection left a mount")
	}

	p := &plan.Plan{Workspace: ws, Protect: []plan.Protect{
		{Path: ".git", Kind: plan.ProtectPin, Dir: true},
		{Path: ".envrc", Kind: plan.ProtectReadOnly},
		{Path: "b", Kind: plan.ProtectReadOnly, Dir: true},
		{Path: ".git/config", Kind: plan.ProtectReadOnly},
		{Path: ".git/hooks", Kind: plan.ProtectReadOnly, Dir: true},
		{Path: "a/b", Kind: plan.ProtectReadOnly, Dir: true},
	}, Unprotect: []string{ws + "/a"}}
	if err := protectWorkspace(fd, p); err != nil {
		return err
	}
	refused := func(err error, want unix.Errno, what string) error {
		if !errors.Is(err, want) {
			return fmt.Errorf("%s: %v, want %v", what, err, want)
		}
		return nil
	}
	for _, c := range []struct {
		err  error
		want unix.Errno
		what string
	}{
		{os.WriteFile(ws+"/.git/hooks/pre-commit", nil, 0o755), unix.EROFS, "create a hook"},
		{os.WriteFile(ws+"/.git/config", nil, 0o644), unix.EROFS, "write .git/config"},
		{os.WriteFile(ws+"/.envrc", nil, 0o644), unix.EROFS, "write .envrc"},
		{os.WriteFile(ws+"/b/x", nil, 0o644), unix.EROFS, "create in b"},
		{os.Rename(ws+"/.git", ws+"/.git2"), unix.EBUSY, "rename the pinned .git"},
		{os.Remove(ws + "/.envrc"), unix.EBUSY, "remove .envrc"},
		{os.Rename(ws+"/.git/config", ws+"/.git/config2"), unix.EBUSY, "rename .git/config"},
		{os.Link(ws+"/.envrc", ws+"/envrc2"), unix.EXDEV, "hard link .envrc"},
	} {
		if err := refused(c.err, c.want, c.what); err != nil {
			return err
		}
	}
	if err := os.WriteFile(ws+"/.git/index", nil, 0o644); err != nil {
		return fmt.Errorf("control: write beside the protections in .git: %v", err)
	}
	if err := os.WriteFile(ws+"/a/b/x", nil, 0o644); err != nil {
		return fmt.Errorf("a/b, lifted by a grant of a, was protected: %v", err)
	}

	// The deny event of a refused write names the protection and the
	// grant that lifts it; a read-only path no protection covers keeps
	// the general rule.
	e := &events.Event{Rule: "policy.filesystem.read_only", Detail: map[string]any{}}
	if !protectDenial(p, e, ".envrc") || e.Rule != "policy.workspace.protect" || e.Remedy.Capability != "fs.write:"+ws+"/.envrc" {
		return fmt.Errorf("denial: %+v %+v", e, e.Remedy)
	}
	if protectDenial(p, &events.Event{Detail: map[string]any{}}, "a/b/x") {
		return errors.New("denial named a lifted protection")
	}
	return nil
}
