package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cordon-sandbox/cordon/sandbox"
)

// Runner runs tool calls in one mode against one tree.
type Runner interface {
	// Exec runs argv with the trace environment at the tree's root.
	Exec(ctx context.Context, argv []string) (Outcome, error)
	// ReadFile reads a file of the tree (a file tool, not a process).
	ReadFile(ctx context.Context, rel string) ([]byte, error)
	Close() error
}

// errNoFileTool is returned by modes without a file tool.
var errNoFileTool = errors.New("this mode has no file tool")

// starter opens a runner for a tree; home is a fresh empty directory
// the bare modes use as HOME.
type starter func(ctx context.Context, tree, home string) (Runner, error)

// ---- bare: the command run directly by the harness ----

// bareRunner runs calls on the host. HOME and TMPDIR are fresh empty
// directories of the replay, as a session's HOME and /tmp are fresh
// tmpfs; everything else is the trace environment.
type bareRunner struct{ tree, home string }

// bareTmp is the TMPDIR of a bare replay, inside its HOME directory
// pair (see Cache.Scratch).
func bareTmp(home string) string { return home + ".tmp" }

func (b *bareRunner) Exec(ctx context.Context, argv []string) (Outcome, error) {
	env := []string{"HOME=" + b.home, "TMPDIR=" + bareTmp(b.home)}
	for k, v := range TraceEnv() {
		env = append(env, k+"="+v)
	}
	return runProcess(ctx, argv, b.tree, env)
}

func (b *bareRunner) ReadFile(ctx context.Context, rel string) ([]byte, error) {
	return os.ReadFile(filepath.Join(b.tree, rel))
}

func (b *bareRunner) Close() error { return nil }

// runProcess runs argv in its own process group, kills the group at the
// call timeout, and collects the outcome the way a session reports it
// (a signal death is 128+N).
func runProcess(ctx context.Context, argv []string, dir string, env []string) (Outcome, error) {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = dir, env
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// A background child that keeps the output pipes open must not hold
	// the call up once the command itself has exited.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return Outcome{}, err
	}
	done := make(chan struct{})
	timedOut := false
	go func() {
		select {
		case <-ctx.Done():
			timedOut = true
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		case <-done:
		}
	}()
	err := cmd.Wait()
	close(done)
	// Whatever the command left behind in its group goes with it, as it
	// does when a session call ends.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	o := Outcome{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), TimedOut: timedOut}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) || errors.Is(err, exec.ErrWaitDelay):
	default:
		return o, err
	}
	st := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if st.Signaled() {
		o.ExitCode = 128 + int(st.Signal())
	} else {
		o.ExitCode = st.ExitStatus()
	}
	return o, nil
}

// ---- bwrap: Debian's bubblewrap per call ----

type bwrapRunner struct {
	bin, tree string
}

func newBwrap(ctx context.Context, tree, home string) (Runner, error) {
	bin, err := exec.LookPath("bwrap")
	if err != nil {
		return nil, fmt.Errorf("bubblewrap is not installed (apt-get install bubblewrap): %w", err)
	}
	return &bwrapRunner{bin: bin, tree: tree}, nil
}

// bwrapArgs gives bubblewrap namespaces comparable to a cordon session:
// all of them, read-only system directories, the tree read-write, a
// private /tmp and HOME, fresh /proc and a minimal /dev, a clean
// environment.
func (b *bwrapRunner) args(argv []string) []string {
	a := []string{b.bin, "--unshare-all", "--die-with-parent", "--new-session",
		"--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"}
	for _, d := range []string{"/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"} {
		if fi, err := os.Lstat(d); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			if target, err := os.Readlink(d); err == nil {
				a = append(a, "--symlink", target, d)
			}
		} else if err == nil {
			a = append(a, "--ro-bind", d, d)
		}
	}
	a = append(a, "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
		"--tmpfs", sandboxHome, "--bind", b.tree, b.tree, "--chdir", b.tree,
		"--clearenv", "--setenv", "HOME", sandboxHome)
	for k, v := range TraceEnv() {
		a = append(a, "--setenv", k, v)
	}
	return append(append(a, "--"), argv...)
}

func (b *bwrapRunner) Exec(ctx context.Context, argv []string) (Outcome, error) {
	return runProcess(ctx, b.args(argv), "/", nil)
}

func (b *bwrapRunner) ReadFile(ctx context.Context, rel string) ([]byte, error) {
	return nil, errNoFileTool
}

func (b *bwrapRunner) Close() error { return nil }

// ---- cordon through the Go library ----

func execRequest(argv []string) sandbox.ExecRequest {
	return sandbox.ExecRequest{Argv: argv, Env: TraceEnv(), Timeout: CallTimeout}
}

func fromResult(r *sandbox.ExecResult) Outcome {
	return Outcome{ExitCode: r.ExitCode, Stdout: r.Stdout, Stderr: r.Stderr, TimedOut: r.TimedOut,
		Truncated: r.Truncated, Denials: len(r.Denials), Timing: r.Timing}
}

// percall: a fresh session for every call (sandbox.Run).
type perCallRunner struct{ tree string }

func (p *perCallRunner) Exec(ctx context.Context, argv []string) (Outcome, error) {
	r, err := sandbox.Run(ctx, sandbox.Options{Workspace: p.tree}, execRequest(argv))
	if err != nil {
		return Outcome{}, err
	}
	return fromResult(r), nil
}

func (p *perCallRunner) ReadFile(ctx context.Context, rel string) ([]byte, error) {
	return nil, errNoFileTool
}

func (p *perCallRunner) Close() error { return nil }

// library: one warm session (sandbox.Open, Exec).
type libraryRunner struct{ s *sandbox.Session }

func newLibrary(ctx context.Context, tree, home string) (Runner, error) {
	s, err := sandbox.Open(ctx, sandbox.Options{Workspace: tree})
	if err != nil {
		return nil, err
	}
	return &libraryRunner{s: s}, nil
}

func (l *libraryRunner) Exec(ctx context.Context, argv []string) (Outcome, error) {
	r, err := l.s.Exec(ctx, execRequest(argv))
	if err != nil {
		return Outcome{}, err
	}
	return fromResult(r), nil
}

func (l *libraryRunner) ReadFile(ctx context.Context, rel string) ([]byte, error) {
	data, _, err := l.s.ReadFile(ctx, rel)
	return data, err
}

func (l *libraryRunner) Close() error { return l.s.Close() }

// starterFor returns how a mode opens its runner. The daemon mode needs
// a running daemon d.
func starterFor(m Mode, d *daemonClient) (starter, error) {
	switch m {
	case ModeBare:
		return func(ctx context.Context, tree, home string) (Runner, error) {
			return &bareRunner{tree: tree, home: home}, nil
		}, nil
	case ModeBwrap:
		return newBwrap, nil
	case ModePerCall:
		return func(ctx context.Context, tree, home string) (Runner, error) {
			return &perCallRunner{tree: tree}, nil
		}, nil
	case ModeLibrary:
		return newLibrary, nil
	case ModeDaemon:
		if d == nil {
			return nil, errors.New("no daemon")
		}
		return d.open, nil
	}
	return nil, fmt.Errorf("unknown mode %q", m)
}
