// Package executor is the session's untrusted tier: it locks itself down
// once (no capabilities, no_new_privs, Landlock, seccomp), then serves
// tool calls. Commands are its children and inherit every restriction;
// file tools run in the executor itself, under the same kernel rules.
package executor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/landlock-lsm/go-landlock/landlock"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/internal/linux"
	"github.com/cordon-sandbox/cordon/internal/plan"
	"github.com/cordon-sandbox/cordon/internal/proto"
	"github.com/cordon-sandbox/cordon/internal/seccomp"
)

const fdSupervisor = 3

// Main runs the executor stage and never returns.
func Main() {
	sock := os.NewFile(fdSupervisor, "supervisor")
	if err := run(sock); err != nil {
		fmt.Fprintf(os.Stderr, "cordon executor: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

type executor struct {
	plan *plan.Plan
	conn *proto.Conn
	// ws is the workspace directory; file tools resolve beneath it.
	ws *os.File

	mu      sync.Mutex
	running map[string]int          // call → process group of its command
	calls   map[int]string          // pid of a running command → its call
	stdin   map[string]*stdinStream // call → its streamed stdin
}

// stdinStream queues a call's streamed stdin for its command. The queue
// is closed once: by the stream's end or by the call's end.
type stdinStream struct {
	ch     chan []byte
	closed bool
}

// The executor starts in two steps around one execve, because Landlock
// domains belong to threads: a Go process that restricts itself thread by
// thread (as it must without LANDLOCK_RESTRICT_SELF_TSYNC, ABI 8) ends up
// with one sibling domain per thread, and signal scoping then stops one
// thread from killing a child forked by another. So the first step
// restricts only its locked thread and re-executes the binary from it;
// every thread of the second step descends from that one domain.
const landlockedArg = "landlocked"

func run(sock *os.File) error {
	if len(os.Args) > 3 && os.Args[2] == landlockedArg {
		return serveLocked(sock, os.Args[3])
	}
	return restrictAndReexec(sock)
}

// restrictAndReexec is the first step: read the plan, apply Landlock to
// this thread, and execute the second step with the plan in a memfd.
func restrictAndReexec(sock *os.File) error {
	_ = linux.CloseExecFrom(fdSupervisor + 1)
	conn := proto.NewConn(sock)
	var p plan.Plan
	if err := conn.Receive(&p); err != nil {
		return fmt.Errorf("reading the plan: %w", err)
	}
	fail := func(err error) error {
		// The supervisor waits for the seccomp listener first: hand it
		// a harmless descriptor, then the reason.
		_ = sendFD(sock, int(sock.Fd()))
		_ = conn.Send(&proto.Response{Kind: proto.KindReady, Ready: &proto.Ready{Error: "locking down the executor: " + err.Error()}})
		return err
	}
	runtime.LockOSThread() // never unlocked: this thread execs
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fail(os.NewSyscallError("prctl PR_SET_NO_NEW_PRIVS", err))
	}
	if err := restrictThread(&p); err != nil {
		return fail(fmt.Errorf("applying landlock: %w", err))
	}
	b, err := json.Marshal(&p)
	if err != nil {
		return fail(err)
	}
	mfd, err := unix.MemfdCreate("cordon-plan", 0)
	if err != nil {
		return fail(os.NewSyscallError("memfd_create", err))
	}
	if _, err := unix.Write(mfd, b); err != nil {
		return fail(os.NewSyscallError("write", err))
	}
	argv := []string{os.Args[0], proto.StageExecutor, landlockedArg, strconv.Itoa(mfd)}
	err = unix.Exec("/proc/self/exe", argv, []string{})
	return fail(os.NewSyscallError("execve", err))
}

// serveLocked is the second step: finish the lockdown and serve calls.
func serveLocked(sock *os.File, planFD string) error {
	t0 := time.Now()
	unix.CloseOnExec(fdSupervisor)
	conn := proto.NewConn(sock)
	fd, err := strconv.Atoi(planFD)
	if err != nil {
		return err
	}
	mf := os.NewFile(uintptr(fd), "plan")
	var p plan.Plan
	if _, err := mf.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := json.NewDecoder(mf).Decode(&p); err != nil {
		return fmt.Errorf("reading the plan: %w", err)
	}
	mf.Close()
	ws, err := os.OpenFile(p.Workspace, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening the workspace: %w", err)
	}
	ready := &proto.Ready{Timing: map[string]int64{}}
	listener, err := lockdown(&p, ready)
	if err != nil {
		_ = sendFD(sock, int(ws.Fd()))
		_ = conn.Send(&proto.Response{Kind: proto.KindReady, Ready: &proto.Ready{Error: "locking down the executor: " + err.Error()}})
		return err
	}
	if err := sendFD(sock, listener); err != nil {
		return fmt.Errorf("handing over the seccomp listener: %w", err)
	}
	unix.Close(listener)
	ready.Timing["lockdown_us"] = time.Since(t0).Microseconds()
	if err := conn.Send(&proto.Response{Kind: proto.KindReady, Ready: ready}); err != nil {
		return err
	}
	linux.PrewarmThreads(stageThreads)
	e := &executor{plan: &p, conn: conn, ws: ws, running: map[string]int{}, calls: map[int]string{}, stdin: map[string]*stdinStream{}}
	go e.reapOrphans()
	return e.serve()
}

func (e *executor) serve() error {
	for {
		req := new(proto.Request)
		err := e.conn.Receive(req)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading a request: %w", err)
		}
		switch req.Op {
		case proto.OpCancel:
			e.cancel(req.Call)
			continue
		case proto.OpStdin:
			e.feed(req)
			continue
		case proto.OpExec:
			if req.StdinStream {
				// Registered here, in frame order, so that no chunk
				// can arrive before its call is known.
				e.mu.Lock()
				e.stdin[req.Call] = &stdinStream{ch: make(chan []byte, stdinQueue)}
				e.mu.Unlock()
			}
		}
		go e.handle(req)
	}
}

// stageThreads is how many idle OS threads a stage keeps for when the
// session's pids are exhausted (see linux.PrewarmThreads).
const stageThreads = 16

// stdinQueue bounds the chunks of streamed stdin waiting for a command
// that does not read; past it the serve loop waits, for this session only.
const stdinQueue = 64

// feed queues a chunk of a call's streamed stdin, or its end. It holds
// the lock while it sends so that the call's end cannot close the queue
// under it; the command's pump (or its drain) always empties the queue.
func (e *executor) feed(req *proto.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.stdin[req.Call]
	if st == nil || st.closed {
		return // the call has ended; its stdin is discarded
	}
	if len(req.Stdin) > 0 {
		st.ch <- req.Stdin
	}
	if req.Close {
		st.closed = true
		close(st.ch)
	}
}

// endStdin closes and forgets a call's stdin stream.
func (e *executor) endStdin(call string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if st := e.stdin[call]; st != nil {
		if !st.closed {
			st.closed = true
			close(st.ch)
		}
		delete(e.stdin, call)
	}
}

// cancel kills the process group of a running call; its result follows
// as for any killed command.
func (e *executor) cancel(call string) {
	e.mu.Lock()
	pgid, ok := e.running[call]
	e.mu.Unlock()
	if ok {
		_ = unix.Kill(-pgid, unix.SIGKILL)
	}
}

func (e *executor) handle(req *proto.Request) {
	start := time.Now()
	var res *proto.Result
	switch req.Op {
	case proto.OpExec:
		res = e.exec(req)
	case proto.OpRead:
		res = e.readFile(req)
	case proto.OpWrite:
		res = e.writeFile(req)
	case proto.OpList:
		res = e.listDir(req)
	case proto.OpStat:
		res = e.stat(req)
	default:
		res = &proto.Result{Error: &proto.CallError{Code: proto.CodeInvalid, Message: fmt.Sprintf("unknown operation %q", req.Op)}}
	}
	if res.Timing == nil {
		res.Timing = map[string]int64{}
	}
	if req.Received > 0 {
		res.Timing["queue_us"] = start.UnixMicro() - req.Received
	}
	res.Timing["executor_us"] = time.Since(start).Microseconds()
	_ = e.conn.Send(&proto.Response{Call: req.Call, Kind: proto.KindResult, Result: res})
}

// lockdown applies the session's restrictions to the executor, in an
// order where each step still has what it needs:
//
//  1. not dumpable: same-uid processes cannot ptrace it or open its
//     /proc/PID/mem;
//  2. child subreaper: orphans of a call stay under the executor;
//  3. rlimits when no cgroup enforces the session's limits;
//  4. capabilities cleared (the supervisor emptied the bounding set);
//  5. no_new_privs on every thread (the first step set it on the one
//     that restricted itself to Landlock and re-executed);
//  6. seccomp last, so the steps above are not filtered.
//
// It returns the seccomp listener for the supervisor.
func lockdown(p *plan.Plan, ready *proto.Ready) (int, error) {
	if err := linux.SetNotDumpable(); err != nil {
		return -1, err
	}
	if err := linux.SetChildSubreaper(); err != nil {
		return -1, err
	}
	if err := setRlimits(p.Limits); err != nil {
		return -1, err
	}
	if !p.Limits.CgroupManaged {
		ready.Warnings = append(ready.Warnings, "no cgroup access: memory and pids limits fall back to per-process rlimits (RLIMIT_DATA, RLIMIT_NPROC)")
	}
	if err := linux.ClearCapabilities(); err != nil {
		return -1, err
	}
	if err := linux.SetNoNewPrivs(); err != nil {
		return -1, err
	}
	abi, err := ll.LandlockGetABIVersion()
	if err != nil || abi < 1 {
		return -1, fmt.Errorf("landlock is not available: %v", err)
	}
	ready.LandlockABI = abi
	if abi < 6 {
		ready.Warnings = append(ready.Warnings, fmt.Sprintf("landlock ABI %d: no signal or abstract unix socket scoping (needs 6)", abi))
	}
	filter, err := seccomp.Build(seccomp.Options{AllowPtrace: p.AllowPtrace})
	if err != nil {
		return -1, err
	}
	return seccomp.Install(filter)
}

// restrictThread applies the Landlock ruleset to the calling thread only: the view's read-only binds
// readable and executable, the workspace, /tmp, $HOME and writable binds
// read-write, the minimal /dev, and /proc readable. IPC is scoped to the
// domain: no signals to, and no abstract unix sockets of, processes
// outside it (the supervisor, the host).
func restrictThread(p *plan.Plan) error {
	cfg := landlock.Config{
		HandledAccessFS: landlock.V7.HandledAccessFS,
		Scoped:          landlock.V7.Scoped,
	}.BestEffort()
	rw := []string{"/tmp", p.Home, "/dev/shm"}
	var ro, roFiles []string
	for _, b := range p.Binds {
		switch {
		case b.Kind == plan.BindSymlink:
		case b.Writable && b.Kind == plan.BindDir:
			rw = append(rw, b.Target)
		case b.Kind == plan.BindDir:
			ro = append(ro, b.Target)
		case b.Writable:
			rw = append(rw, b.Target) // RWFiles below would also do; dirs and files share the rule here
		default:
			roFiles = append(roFiles, b.Target)
		}
	}
	if p.WorkspaceWritable {
		rw = append(rw, p.Workspace)
	} else {
		ro = append(ro, p.Workspace)
	}
	rules := []landlock.Rule{
		landlock.PathAccess(ll.AccessFSReadDir, "/"),
		landlock.RODirs(ro...).IgnoreIfMissing(),
		landlock.ROFiles(roFiles...).IgnoreIfMissing(),
		landlock.RODirs("/proc", "/dev"),
		landlock.RWDirs(rw...).WithRefer(),
		landlock.RWFiles("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"),
		landlock.RWFiles("/dev/tty").WithIoctlDev().IgnoreIfMissing(),
		landlock.RWDirs("/dev/pts").WithIoctlDev(),
		// The cordon binary itself, reached only through /proc/self/exe
		// (it is not in the view), so the second step can start.
		landlock.PathAccess(ll.AccessFSExecute|ll.AccessFSReadFile, "/proc/self/exe"),
	}
	fd, flags, err := cfg.NewRulesetFD(rules...)
	if err != nil {
		return err
	}
	if fd < 0 {
		return errors.New("this kernel has no Landlock")
	}
	defer unix.Close(fd)
	return ll.LandlockRestrictSelf(fd, flags)
}

// setRlimits disables core dumps and, without a cgroup, bounds processes
// and data segments per process as the next best thing.
func setRlimits(l plan.Limits) error {
	set := func(name string, res int, v uint64) error {
		if err := unix.Setrlimit(res, &unix.Rlimit{Cur: v, Max: v}); err != nil {
			return os.NewSyscallError("setrlimit "+name, err)
		}
		return nil
	}
	if err := set("RLIMIT_CORE", unix.RLIMIT_CORE, 0); err != nil {
		return err
	}
	if l.CgroupManaged {
		return nil
	}
	if l.Pids > 0 {
		if err := set("RLIMIT_NPROC", unix.RLIMIT_NPROC, uint64(l.Pids)); err != nil {
			return err
		}
	}
	if l.MemoryBytes > 0 {
		if err := set("RLIMIT_DATA", unix.RLIMIT_DATA, uint64(l.MemoryBytes)); err != nil {
			return err
		}
	}
	return nil
}

// sendFD passes fd to the peer with SCM_RIGHTS.
func sendFD(sock *os.File, fd int) error {
	rights := unix.UnixRights(fd)
	for {
		err := unix.Sendmsg(int(sock.Fd()), []byte{0}, rights, nil, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("sendmsg", err)
		}
		return nil
	}
}
