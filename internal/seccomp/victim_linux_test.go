//go:build linux && (amd64 || arm64)

package seccomp

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The filter cannot be removed once installed, so the kernel tests run in a
// re-executed copy of the test binary: the parent test starts the child test
// with victimEnv set, the child reports what happened as JSON on stdout and
// the parent asserts.
const (
	victimEnv    = "CORDON_SECCOMP_VICTIM"
	reportPrefix = "CORDON-VICTIM-REPORT "
)

// victimReport is what the child saw. Outcomes are "ok" or an errno name.
type victimReport struct {
	Setup    string            `json:"setup,omitempty"` // non-empty: the child could not run
	Before   map[string]string `json:"before"`          // positive controls, no filter
	After    map[string]string `json:"after"`           // same and more, under the filter
	Rules    []Rule            `json:"rules"`           // Explain of each notification, in order
	Arches   []uint32          `json:"arches"`          // Notification.Arch of each
	TIDs     []uint32          `json:"tids"`            // Notification.PID of each
	LockedID int               `json:"locked_tid"`      // tid of the thread that called unshare
	Posture  map[string]string `json:"posture"`
}

func startVictim(t *testing.T, mode string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestVictimChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), victimEnv+"="+mode)
	cmd.Stderr = os.Stderr
	return cmd
}

func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	var errno unix.Errno
	if errors.As(err, &errno) {
		if name := unix.ErrnoName(errno); name != "" {
			return name
		}
	}
	return err.Error()
}

func errnoOf(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// TestVictimChild is the child half; it does nothing unless re-executed.
func TestVictimChild(t *testing.T) {
	switch os.Getenv(victimEnv) {
	case "":
		t.Skip("child half of TestKernelVictim and TestExternalSupervisor; runs only re-executed")
	case "inproc":
		report := runInProcessVictim()
		b, err := json.Marshal(report)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println(reportPrefix + string(b))
	case "external":
		runExternalVictim()
	default:
		t.Fatalf("unknown victim mode %q", os.Getenv(victimEnv))
	}
}

// probes are the operations tried both before and after the filter.
func probes(devnull int) map[string]func() error {
	return map[string]func() error{
		// Multithreaded, so without the filter the kernel says EINVAL;
		// under the filter the supervisor's EPERM comes first.
		"unshare_newuser": func() error { return unix.Unshare(unix.CLONE_NEWUSER) },
		// A missing target: ENOENT from the kernel, EPERM from the filter.
		"mount_missing_target": func() error {
			return unix.Mount("none", "/nonexistent-cordon-seccomp-test", "tmpfs", 0, "")
		},
		"keyctl": func() error {
			_, err := unix.KeyctlInt(unix.KEYCTL_GET_KEYRING_ID, unix.KEY_SPEC_SESSION_KEYRING, 0, 0, 0)
			return err
		},
		// /dev/null is no tty: ENOTTY from the kernel, EPERM from the
		// filter, which must see TIOCSTI despite the high bits.
		"ioctl_tiocsti_high_bits": func() error {
			var c byte = 'x'
			_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(devnull), 0x1_0000_5412, uintptr(unsafe.Pointer(&c)))
			return errnoOf(e)
		},
		// A NULL clone_args: EFAULT from the kernel, ENOSYS from the filter.
		"clone3_null": func() error {
			_, _, e := unix.RawSyscall(unix.SYS_CLONE3, 0, 64, 0)
			return errnoOf(e)
		},
		"exec_newuser": func() error {
			cmd := exec.Command("/bin/true")
			cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER}
			return cmd.Run()
		},
		"exec_true": func() error { return exec.Command("/bin/true").Run() },
		"ioctl_tcgets": func() error {
			_, err := unix.IoctlGetTermios(devnull, unix.TCGETS)
			return err
		},
		"personality_query": func() error {
			_, _, e := unix.Syscall(unix.SYS_PERSONALITY, 0xffffffff, 0, 0)
			return errnoOf(e)
		},
	}
}

func runInProcessVictim() (r victimReport) {
	r.Before, r.After, r.Posture = map[string]string{}, map[string]string{}, map[string]string{}
	if _, err := os.Stat("/bin/true"); err != nil {
		r.Setup = "no /bin/true: " + err.Error()
		return r
	}
	devnull, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		r.Setup = "open /dev/null: " + err.Error()
		return r
	}
	ps := probes(devnull)
	for name, p := range ps {
		r.Before[name] = outcome(p())
	}

	filter, err := Build(Options{})
	if err != nil {
		r.Setup = "Build: " + err.Error()
		return r
	}
	fd, err := Install(filter)
	if err != nil {
		r.Setup = "Install: " + err.Error()
		return r
	}
	if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC != 0 {
		r.Posture["listener_cloexec"] = "yes"
	} else {
		r.Posture["listener_cloexec"] = fmt.Sprintf("no (flags %d, err %v)", flags, err)
	}
	r.Posture["threads"] = threadPosture()

	// The supervisor half: record, then answer EPERM. Recording first
	// means a probe that sees EPERM finds its notification already here.
	var mu sync.Mutex
	go func() {
		for {
			n, err := Receive(fd)
			if errors.Is(err, ErrTargetGone) {
				continue
			}
			if err != nil {
				return
			}
			mu.Lock()
			r.Rules = append(r.Rules, Explain(n))
			r.Arches = append(r.Arches, n.Arch)
			r.TIDs = append(r.TIDs, n.PID)
			mu.Unlock()
			_ = Respond(fd, n.ID, unix.EPERM)
		}
	}()

	order := []string{"unshare_newuser", "mount_missing_target", "keyctl", "ioctl_tiocsti_high_bits",
		"clone3_null", "exec_newuser", "exec_true", "ioctl_tcgets", "personality_query"}
	for _, name := range order {
		if name == "unshare_newuser" {
			// On a locked thread so the notification's tid can be checked.
			done := make(chan struct{})
			go func() {
				defer close(done)
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				mu.Lock()
				r.LockedID = unix.Gettid()
				mu.Unlock()
				r.After[name] = outcome(ps[name]())
			}()
			<-done
			continue
		}
		r.After[name] = outcome(ps[name]())
	}

	// Must-succeed cases that only make sense under the filter.
	done := make(chan struct{})
	go func() {
		defer close(done)
		// unshare(CLONE_FILES) changes the calling thread's fd table; keep
		// that thread out of the Go scheduler's reuse by never unlocking.
		runtime.LockOSThread()
		r.After["unshare_files"] = outcome(unix.Unshare(unix.CLONE_FILES))
	}()
	<-done
	if pid := unix.Getpid(); pid == os.Getpid() && pid > 0 {
		r.After["getpid"] = "ok"
	} else {
		r.After["getpid"] = fmt.Sprintf("got %d", pid)
	}
	path := filepath.Join(os.TempDir(), fmt.Sprintf("cordon-seccomp-%d", os.Getpid()))
	err = os.WriteFile(path, []byte("hello"), 0o600)
	if err == nil {
		var b []byte
		b, err = os.ReadFile(path)
		if err == nil && string(b) != "hello" {
			err = fmt.Errorf("read back %q", b)
		}
		os.Remove(path)
	}
	r.After["write_read_file"] = outcome(err)

	mu.Lock()
	defer mu.Unlock()
	r.Rules = append([]Rule(nil), r.Rules...)
	return r
}

// threadPosture reads NoNewPrivs and Seccomp of every thread: TSYNC must
// have put all of them in filter mode (2) with no_new_privs.
func threadPosture() string {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err.Error()
	}
	var bad []string
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc/self/task", task.Name(), "status"))
		if err != nil {
			continue // thread exited
		}
		s := string(b)
		if !strings.Contains(s, "\nNoNewPrivs:\t1\n") || !strings.Contains(s, "\nSeccomp:\t2\n") {
			bad = append(bad, task.Name())
		}
	}
	if len(bad) > 0 {
		return "threads without filter or no_new_privs: " + strings.Join(bad, ",")
	}
	return fmt.Sprintf("all %d threads filtered", len(tasks))
}

func TestKernelVictim(t *testing.T) {
	if os.Getenv(victimEnv) != "" {
		t.Skip("inside a victim")
	}
	out, err := startVictim(t, "inproc").Output()
	if err != nil {
		t.Fatalf("victim: %v\n%s", err, out)
	}
	var r victimReport
	found := false
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, reportPrefix); ok {
			if err := json.Unmarshal([]byte(rest), &r); err != nil {
				t.Fatalf("victim report: %v", err)
			}
			found = true
		}
	}
	if !found {
		t.Fatalf("victim printed no report:\n%s", out)
	}
	if r.Setup != "" {
		t.Fatalf("victim setup: %s", r.Setup)
	}
	t.Logf("before: %v", r.Before)
	t.Logf("after: %v", r.After)

	// Each blocked probe has a positive control: without the filter it
	// reached the kernel (succeeded or failed with the kernel's own errno),
	// so the EPERM afterwards is the filter's.
	for name, c := range map[string]struct{ before, after string }{
		"unshare_newuser":         {"EINVAL", "EPERM"},
		"mount_missing_target":    {"ENOENT", "EPERM"},
		"keyctl":                  {"ok", "EPERM"},
		"ioctl_tiocsti_high_bits": {"ENOTTY", "EPERM"},
		"clone3_null":             {"EFAULT", "ENOSYS"},
		"exec_newuser":            {"ok", "EPERM"},
		"exec_true":               {"ok", "ok"},
		"ioctl_tcgets":            {"ENOTTY", "ENOTTY"},
		"personality_query":       {"ok", "ok"},
	} {
		if r.Before[name] != c.before {
			t.Errorf("%s without filter: %s, want %s (positive control)", name, r.Before[name], c.before)
		}
		if r.After[name] != c.after {
			t.Errorf("%s under filter: %s, want %s", name, r.After[name], c.after)
		}
	}
	for _, name := range []string{"unshare_files", "getpid", "write_read_file"} {
		if r.After[name] != "ok" {
			t.Errorf("%s under filter: %s, want ok", name, r.After[name])
		}
	}

	// Exactly the denied calls were notified, in order, and nothing else
	// (no runtime or exec path trips the deny set).
	want := []string{"seccomp.deny.unshare_newns", "seccomp.deny.mount", "seccomp.deny.keyctl",
		"seccomp.deny.ioctl_tiocsti", "seccomp.deny.clone_newns"}
	var got []string
	for _, rule := range r.Rules {
		got = append(got, rule.Rule)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("notified rules %v, want %v", got, want)
	}
	if len(r.Rules) > 0 {
		if d := r.Rules[0].Detail; !strings.Contains(d, "CLONE_NEWUSER") {
			t.Errorf("unshare detail %q does not name CLONE_NEWUSER", d)
		}
		if r.TIDs[0] != uint32(r.LockedID) {
			t.Errorf("unshare notification from tid %d, want the calling thread %d", r.TIDs[0], r.LockedID)
		}
	}
	for i, a := range r.Arches {
		if a != native.auditArch {
			t.Errorf("notification %d arch %#x, want %#x", i, a, native.auditArch)
		}
	}
	if r.Posture["listener_cloexec"] != "yes" {
		t.Errorf("listener fd close-on-exec: %s", r.Posture["listener_cloexec"])
	}
	if !strings.HasPrefix(r.Posture["threads"], "all ") {
		t.Errorf("thread posture: %s", r.Posture["threads"])
	}
}

// runExternalVictim installs the filter, prints its listener fd number and
// waits; on "go" it tries a mount and prints the outcome. The parent takes
// the listener with pidfd_getfd and supervises from outside, as cordon's
// supervisor does.
func runExternalVictim() {
	filter, err := Build(Options{})
	if err != nil {
		fmt.Println("error", err)
		return
	}
	fd, err := Install(filter)
	if err != nil {
		fmt.Println("error", err)
		return
	}
	fmt.Println("listener", fd)
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() || in.Text() != "go" {
		return
	}
	err = unix.Mount("none", "/nonexistent-cordon-seccomp-test", "tmpfs", 0, "")
	fmt.Println("mount", outcome(err))
	in.Scan() // wait for the parent before exiting
}

func TestExternalSupervisor(t *testing.T) {
	if os.Getenv(victimEnv) != "" {
		t.Skip("inside a victim")
	}
	cmd := startVictim(t, "external")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdoutPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	}()
	out := bufio.NewScanner(stdoutPipe)
	line := func() string {
		if !out.Scan() {
			t.Fatalf("victim output ended: %v", out.Err())
		}
		return out.Text()
	}

	childFD, err := strconv.Atoi(strings.TrimPrefix(line(), "listener "))
	if err != nil {
		t.Fatalf("victim listener line: %v", err)
	}
	pidfd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open: %v", err)
	}
	defer unix.Close(pidfd)
	fd, err := unix.PidfdGetfd(pidfd, childFD, 0)
	if err != nil {
		t.Fatalf("pidfd_getfd: %v", err)
	}
	defer unix.Close(fd)

	// The round trip below runs with synchronous wake-ups where the
	// kernel has them (6.6 and later, as CI's 6.18 does).
	sync, err := SyncWakeUp(fd)
	if err != nil {
		t.Fatalf("SyncWakeUp: %v", err)
	}
	var uts unix.Utsname
	unix.Uname(&uts)
	var major, minor int
	fmt.Sscanf(unix.ByteSliceToString(uts.Release[:]), "%d.%d", &major, &minor)
	if !sync && (major > 6 || major == 6 && minor >= 6) {
		t.Errorf("SyncWakeUp refused on Linux %d.%d, which has SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP", major, minor)
	}

	if st, err := Poll(fd, 50*time.Millisecond); err != nil || st != ListenerIdle {
		t.Fatalf("Poll before any call: %v, %v; want idle", st, err)
	}
	fmt.Fprintln(stdin, "go")
	if st, err := Poll(fd, 10*time.Second); err != nil || st != ListenerPending {
		t.Fatalf("Poll after mount: %v, %v; want pending", st, err)
	}
	n, err := Receive(fd)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if r := Explain(n); r.Rule != "seccomp.deny.mount" {
		t.Errorf("Explain = %+v, want seccomp.deny.mount", r)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", cmd.Process.Pid, n.PID)); err != nil {
		t.Errorf("notification tid %d is not a thread of the victim %d: %v", n.PID, cmd.Process.Pid, err)
	}
	if err := Respond(fd, n.ID, 0); err == nil {
		t.Errorf("Respond with errno 0 accepted; it would fake success")
	}
	if err := Respond(fd, n.ID, unix.EPERM); err != nil {
		t.Fatalf("Respond: %v", err)
	}
	if got := line(); got != "mount EPERM" {
		t.Errorf("victim saw %q, want mount EPERM", got)
	}

	// Answering the same notification again: the id is spent.
	err = Respond(fd, n.ID, unix.EPERM)
	var sys *os.SyscallError
	if !errors.Is(err, ErrTargetGone) || !errors.Is(err, unix.ENOENT) || !errors.As(err, &sys) {
		t.Errorf("second Respond: %v; want ErrTargetGone, ENOENT and *os.SyscallError", err)
	}

	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("victim exit: %v", err)
	}
	if st, err := Poll(fd, 10*time.Second); err != nil || st != ListenerOrphaned {
		t.Errorf("Poll after victim exit: %v, %v; want orphaned", st, err)
	}
}
