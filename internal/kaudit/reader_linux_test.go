package kaudit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/landlock-lsm/go-landlock/landlock"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"

	"github.com/cordon-sandbox/cordon/internal/ruleset"
)

// The child half of the tests re-executes this test binary with
// childEnv set to one of these modes.
const (
	childEnv        = "CORDON_KAUDIT_CHILD"
	childLandlocked = "landlocked"   // restrict, then exec sh -c $KAUDIT_SCRIPT
	childUserNS     = "unprivileged" // try ReadStatus and Open, report
	childNetNS      = "netns"        // try Open in a new network namespace
	childHold       = "hold"         // Open, print "open", Close at stdin's end
)

// unprivilegedOK is what the unprivileged child prints when both calls
// were refused as they should be.
const unprivilegedOK = "kaudit-unprivileged-refused"

// needAudit skips unless this process can read Landlock's audit records:
// root in the initial namespaces, Landlock ABI 7, a kernel with audit.
func needAudit(t *testing.T) {
	t.Helper()
	if os.Getenv(childEnv) != "" {
		t.Skip("inside a child")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: CAP_AUDIT_READ and CAP_AUDIT_CONTROL in the initial user namespace")
	}
	abi, err := ll.LandlockGetABIVersion()
	if err != nil || abi < 7 {
		t.Skipf("needs Landlock ABI 7 (audit logging); this kernel has %d (%v)", abi, err)
	}
	if _, err := ReadStatus(); errors.Is(err, ErrNotSupported) || errors.Is(err, ErrNotPermitted) {
		t.Skipf("kernel audit unavailable here: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
}

// settings is what the tests must leave as they found it; the counters
// (Lost, Backlog, BacklogWaitTimeActual) are not settings, and other
// processes' records move them too. alone says no other process was
// reading the audit log (go test runs other packages' session tests at
// the same time): only then are the settings the host's own.
func settings(t *testing.T) (s Status, alone bool) {
	t.Helper()
	s, alone, err := StatusAlone()
	if err != nil {
		t.Fatal(err)
	}
	s.Lost, s.Backlog, s.BacklogWaitTimeActual = 0, 0, 0
	return s, alone
}

// openReader opens a Reader and, at cleanup, closes it and checks that
// the host's audit settings are back to before, when no other process
// was reading at either time (otherwise the last reader out restores
// them, which TestShared checks).
func openReader(t *testing.T) *Reader {
	t.Helper()
	before, aloneBefore := settings(t)
	r, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		leftAsFound(t, before, aloneBefore)
	})
	return r
}

// leftAsFound checks that the settings are back to before, when no other
// process reads the audit log now or did when before was read; with
// others, the last reader out restores them.
func leftAsFound(t *testing.T, before Status, aloneBefore bool) bool {
	t.Helper()
	after, alone := settings(t)
	if !aloneBefore || !alone {
		t.Logf("another process read the audit log meanwhile (go test runs other packages' sessions at once): settings not compared")
		return false
	}
	if after != before {
		t.Errorf("audit settings changed: before %+v, after %+v", before, after)
	}
	return true
}

// TestChild is the child half; it does nothing unless re-executed.
func TestChild(t *testing.T) {
	switch os.Getenv(childEnv) {
	case "":
		t.Skip("child half of the reader tests; runs only re-executed")
	case childLandlocked:
		runLandlocked(t)
	case childUserNS:
		_, errStatus := ReadStatus()
		r, errOpen := Open(Options{})
		if r != nil {
			r.Close()
		}
		if !errors.Is(errStatus, ErrNotPermitted) || !errors.Is(errOpen, ErrNotPermitted) {
			t.Fatalf("ReadStatus: %v; Open: %v; want ErrNotPermitted from both", errStatus, errOpen)
		}
		fmt.Printf("%s\nReadStatus: %v\nOpen: %v\n", unprivilegedOK, errStatus, errOpen)
	case childNetNS:
		r, err := Open(Options{})
		if r != nil {
			r.Close()
		}
		if !errors.Is(err, ErrNotPermitted) {
			t.Fatalf("Open: %v; want ErrNotPermitted", err)
		}
		fmt.Printf("%s\nOpen: %v\n", unprivilegedOK, err)
	case childHold:
		r, err := Open(Options{})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println("open")
		io.Copy(io.Discard, os.Stdin)
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("unknown child mode %q", os.Getenv(childEnv))
	}
}

// runLandlocked restricts one locked thread the way the supervisor does
// (a ruleset fd from go-landlock, ruleset.RestrictThread), allowing
// everything to be read and executed but writes only below
// $KAUDIT_ALLOWED (and to /dev/null), then replaces itself with
// sh -c $KAUDIT_SCRIPT from that thread.
func runLandlocked(t *testing.T) {
	cfg := landlock.V7
	if os.Getenv("KAUDIT_LOG_NEW_EXEC") != "" {
		cfg = cfg.EnableLoggingForSubprocesses()
	}
	fd, flags, err := cfg.NewRulesetFD(
		landlock.RODirs("/"),
		landlock.RWDirs(os.Getenv("KAUDIT_ALLOWED")),
		landlock.RWFiles("/dev/null"),
	)
	if err != nil {
		t.Fatal(err)
	}
	runtime.LockOSThread() // never unlocked: the thread execs
	if uid := os.Getenv("KAUDIT_LOGINUID"); uid != "" {
		// The audit login uid belongs to a thread and is inherited from
		// it; only the thread itself may write it.
		if err := os.WriteFile("/proc/thread-self/loginuid", []byte(uid), 0); err != nil {
			t.Fatal(err)
		}
		ses, err := os.ReadFile("/proc/thread-self/sessionid")
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("sessionid=%s\n", ses)
	}
	if err := ruleset.RestrictThread(fd, flags); err != nil {
		t.Fatal(err)
	}
	err = syscall.Exec("/bin/sh", []string{"sh", "-c", os.Getenv("KAUDIT_SCRIPT")}, os.Environ())
	t.Fatalf("exec: %v", err)
}

type child struct {
	pid     int
	allowed string
	stdout  string
	// session is the audit session id the child got by setting its
	// login uid, if it did.
	session uint32
}

// loginUID is what the logging child sets as its audit login uid.
const loginUID = 4242

// runChild runs the landlocked child to completion with script, its own
// allowed directory in $ALLOWED and outside in $OUT.
func runChild(t *testing.T, outside, script string, logNewExec bool) child {
	t.Helper()
	allowed := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChild$")
	cmd.Env = append(os.Environ(), childEnv+"="+childLandlocked, "KAUDIT_ALLOWED="+allowed,
		"KAUDIT_SCRIPT="+script, "ALLOWED="+allowed, "OUT="+outside)
	if logNewExec {
		cmd.Env = append(cmd.Env, "KAUDIT_LOG_NEW_EXEC=1", "KAUDIT_LOGINUID="+fmt.Sprint(loginUID))
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	c := child{pid: cmd.Process.Pid, allowed: allowed, stdout: stdout.String()}
	if _, after, ok := strings.Cut(c.stdout, "sessionid="); ok {
		n, err := strconv.ParseUint(strings.Fields(after)[0], 10, 32)
		if err != nil {
			t.Fatalf("child's session id: %v", err)
		}
		c.session = uint32(n)
	}
	return c
}

// TestDenialsAfterExec runs a shell in a Landlock domain made with
// LOG_NEW_EXEC_ON and checks that the Reader reports its refused writes
// with the shell's pid, while the same write to the allowed directory
// succeeds unreported, and that a domain made without the flag reports
// nothing after exec.
func TestDenialsAfterExec(t *testing.T) {
	needAudit(t)
	r := openReader(t)

	outside := t.TempDir()
	existing := filepath.Join(outside, "existing")
	if err := os.WriteFile(existing, []byte("before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const script = `echo x > "$OUT/denied"; echo x > "$OUT/existing"; echo y > "$ALLOWED/ok" && cat "$OUT/existing" >/dev/null && echo wrote-and-read`

	// Without the flag first: anything it logged would arrive before
	// the second child's records.
	quiet := runChild(t, outside, script, false)
	loud := runChild(t, outside, script, true)

	for _, c := range []child{quiet, loud} {
		if !strings.Contains(c.stdout, "wrote-and-read") {
			t.Errorf("child %d: the allowed write or the read failed: %q", c.pid, c.stdout)
		}
		if b, err := os.ReadFile(filepath.Join(c.allowed, "ok")); err != nil || string(b) != "y\n" {
			t.Errorf("child %d: allowed write: %q, %v", c.pid, b, err)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "denied")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the denied file exists: %v", err)
	}
	if b, _ := os.ReadFile(existing); string(b) != "before\n" {
		t.Errorf("the existing file was written: %q", b)
	}

	var created, written *Denial
	var mine []*Denial
	var dealloc *Domain
	allocs := map[string]*Domain{}
	timeout := time.After(10 * time.Second)
	for dealloc == nil {
		var e Event
		select {
		case e = <-r.Events():
		case <-timeout:
			t.Fatalf("no deallocation of the child's domain; %d denials", len(mine))
		}
		switch d := e.Denial; {
		case d != nil && d.PID == quiet.pid:
			t.Errorf("a domain without LOG_NEW_EXEC_ON logged after exec: %+v", d)
		case d != nil && strings.HasPrefix(d.Path, quiet.allowed) || d != nil && strings.HasPrefix(d.Path, loud.allowed):
			t.Errorf("the allowed write was reported: %+v", d)
		case d != nil && d.PID == loud.pid:
			mine = append(mine, d)
			switch {
			case d.Path == outside && equal(d.Ops(), "fs.make_reg"):
				created = d
			case d.Path == existing && equal(d.Ops(), "fs.write"):
				written = d
			}
		case e.Domain != nil && e.Domain.Status == "allocated":
			allocs[e.Domain.ID] = e.Domain
		case e.Domain != nil && len(mine) > 0 && e.Domain.ID == mine[0].Domain:
			dealloc = e.Domain
		}
	}
	alloc := allocs[mine[0].Domain]

	// "echo x > $OUT/denied" creates a file: the kernel names the
	// directory it was refused in, not the new file.
	if created == nil {
		t.Fatalf("no fs.make_reg denial on %s among %v", outside, mine)
	}
	if created.Comm != "sh" || created.Exe == "" || !created.HasSyscall || created.Exit != -13 ||
		!equal(created.Blockers, "fs.make_reg") || len(created.Argv) == 0 {
		t.Errorf("creation denial: %+v", created)
	}
	// Argv is not checked: writing the login uid logged an event before
	// the exec, and the kernel keeps the command line it read then.
	// The login uid and audit session the child set before restricting
	// itself carry over to the shell: a session marker for attribution.
	if created.LoginUID != loginUID || created.AuditSession != loud.session || loud.session == 0 || loud.session == NoLoginUID {
		t.Errorf("creation denial: auid %d ses %d, want %d and %d", created.LoginUID, created.AuditSession, loginUID, loud.session)
	}
	if n := created.SyscallName; n != "" && n != "openat" && n != "open" {
		t.Errorf("creation denial in syscall %q", n)
	}
	if written == nil || !equal(written.Blockers, "fs.write_file") {
		t.Errorf("no fs.write_file denial on %s among %v", existing, mine)
	}
	for _, d := range mine {
		if d.Domain != created.Domain {
			t.Errorf("denials in two domains: %s and %s", d.Domain, created.Domain)
		}
	}
	// The allocation comes before the first denial, and names the test
	// binary, which restricted itself; the thread id is the child's own
	// when the runtime ran the locked goroutine on its main thread.
	if alloc == nil || alloc.PID == 0 || alloc.Mode != "enforcing" || filepath.Base(alloc.Exe) != filepath.Base(os.Args[0]) {
		t.Errorf("allocation: %+v", alloc)
	} else {
		t.Logf("domain %s created by tid %d (child pid %d), %d denials", alloc.ID, alloc.PID, loud.pid, dealloc.Denials)
	}
	if dealloc.Denials != uint64(len(mine)) {
		t.Errorf("the kernel counted %d denials in the domain; the reader saw %d", dealloc.Denials, len(mine))
	}
	if o, d := r.Lost(); o != 0 || d != 0 {
		t.Errorf("lost: %d overflows, %d dropped", o, d)
	}
}

func equal(got []string, want ...string) bool {
	return strings.Join(got, ",") == strings.Join(want, ",")
}

// TestCloseRestoresAudit checks the enabled flag through two Readers:
// on while either is open, back to what it was after the last Close.
func TestCloseRestoresAudit(t *testing.T) {
	needAudit(t)
	before, alone := settings(t)
	fds, goroutines := openFDs(t), runtime.NumGoroutine()
	a, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(Options{})
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	if s, _ := settings(t); s.Enabled == 0 {
		t.Errorf("audit is off with two Readers open")
	}
	if err := a.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if s, _ := settings(t); s.Enabled == 0 {
		t.Errorf("audit is off with one Reader open")
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	leftAsFound(t, before, alone)
	if _, ok := <-a.Events(); ok {
		t.Error("Events is open after Close")
	}
	if n := openFDs(t); n != fds {
		t.Errorf("%d descriptors open before, %d after", fds, n)
	}
	if n := runtime.NumGoroutine(); n > goroutines {
		t.Errorf("%d goroutines before, %d after", goroutines, n)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestCloseLeavesOthersChanges turns auditing off behind an open
// Reader's back: Close must not turn it on or off again, and say so.
func TestCloseLeavesOthersChanges(t *testing.T) {
	needAudit(t)
	before, alone := settings(t)
	if !alone || before.Enabled != 0 {
		t.Skipf("needs auditing off and no other process reading the audit log to start with (enabled=%d, alone %v): it turns auditing off under them", before.Enabled, alone)
	}
	r, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	fd, err := openAudit(0)
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := setEnabled(fd, 0, nextSeq()); err != nil {
		r.Close()
		t.Fatal(err)
	}
	if err := r.Close(); !errors.Is(err, ErrNotRestored) {
		t.Errorf("Close = %v, want ErrNotRestored", err)
	}
	leftAsFound(t, before, alone)
}

// TestUnprivileged runs ReadStatus and Open as root of a new user
// namespace, which is what a rootless session has: no audit capability
// in the initial user namespace, so ErrNotPermitted from both.
func TestUnprivileged(t *testing.T) {
	needAudit(t)
	runRefused(t, childUserNS, &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
	})
}

// TestOtherNetNS runs Open as root in a new network namespace, where no
// audit record is multicast: ErrNotPermitted rather than silence.
func TestOtherNetNS(t *testing.T) {
	needAudit(t)
	runRefused(t, childNetNS, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET})
}

// runRefused runs a child mode that must print unprivilegedOK.
func runRefused(t *testing.T, mode string, attr *syscall.SysProcAttr) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChild$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode)
	cmd.SysProcAttr = attr
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte(unprivilegedOK)) {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// TestSync: a consumer that takes as many Events as Sync counted has
// every Event the Reader delivered before it, without waiting on a timer.
// Sync does not wait for kauditd, so a denial of a process that just
// exited may need another Sync; the test counts how many it took.
func TestSync(t *testing.T) {
	needAudit(t)
	r := openReader(t)
	var consumed uint64
	take := func(upTo uint64) []*Denial {
		var out []*Denial
		for consumed < upTo {
			select {
			case e := <-r.Events():
				consumed++
				if e.Denial != nil {
					out = append(out, e.Denial)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("Sync said %d events were delivered; only %d came", upTo, consumed)
			}
		}
		return out
	}
	outside := t.TempDir()
	first := 0
	for i := range 5 {
		c := runChild(t, outside, `echo x > "$OUT/denied-`+strconv.Itoa(i)+`"; echo y > "$ALLOWED/ok"`, true)
		deadline := time.Now().Add(5 * time.Second)
		for syncs := 1; ; syncs++ {
			n, err := r.Sync(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, d := range take(n) {
				found = found || (d.PID == c.pid && d.Path == outside && equal(d.Ops(), "fs.make_reg"))
			}
			if found {
				if syncs == 1 {
					first++
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the child's denial did not come in 5s", i)
			}
			time.Sleep(100 * time.Microsecond)
		}
		if b, err := os.ReadFile(filepath.Join(c.allowed, "ok")); err != nil || string(b) != "y\n" {
			t.Errorf("control: the allowed write: %q %v", b, err)
		}
	}
	t.Logf("the first Sync after the child's exit had its denial in %d of 5 rounds", first)
	// With nothing new, Sync returns at once with the same count.
	t0 := time.Now()
	n, err := r.Sync(context.Background())
	if err != nil || n < consumed || time.Since(t0) > time.Second {
		t.Errorf("idle Sync: %d (consumed %d), %v, took %v", n, consumed, err, time.Since(t0))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Sync(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Sync with a canceled context: %v", err)
	}
}

// TestSharedAcrossProcesses: two processes read at once; the first to
// close leaves auditing on for the other, the last puts the setting back
// and removes the files they shared it through.
func TestSharedAcrossProcesses(t *testing.T) {
	needAudit(t)
	before, alone := settings(t)
	if !alone || before.Enabled != 0 {
		t.Skipf("auditing is on on this host (enabled=%d, another process reading: %v): nothing to restore", before.Enabled, !alone)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestChild$")
	cmd.Env = append(os.Environ(), childEnv+"="+childHold)
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "open\n" {
		t.Fatalf("child: %q %v", line, err)
	}
	r, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if s, _ := settings(t); s.Enabled != 1 {
		t.Errorf("auditing off (enabled=%d) while the other process still reads", s.Enabled)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	if !leftAsFound(t, before, alone) {
		return // the last reader out removes the files, not this test
	}
	for _, f := range []string{sharedLock, sharedUsers} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s left behind", f)
		}
	}
}
