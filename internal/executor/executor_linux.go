// Package executor is the session's untrusted tier: it locks itself down
// once (no capabilities, no_new_privs, Landlock, seccomp), then serves
// tool calls. Commands are its children and inherit every restriction;
// file tools run in the executor itself, under the same kernel rules.
package executor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/internal/linux"
	"github.com/cordon-sandbox/cordon/internal/plan"
	"github.com/cordon-sandbox/cordon/internal/proto"
	"github.com/cordon-sandbox/cordon/internal/seccomp"
)

// The supervisor's requests arrive on fdRequests; the executor's frames
// go back on fdResponses (see proto.NewSplitConn).
const (
	fdRequests  = 3
	fdResponses = 4
)

// Main runs the executor stage and never returns.
func Main() {
	runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), minProcs))
	if err := run(os.NewFile(fdRequests, "requests"), os.NewFile(fdResponses, "responses")); err != nil {
		fmt.Fprintf(os.Stderr, "cordon executor: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// minProcs is the fewest Ps the executor runs with. Its request reader
// waits in read(2) on a blocking socket, holding a P, and starting a
// command (a vfork) holds another until the child has exec'd; with the
// two Ps of a 2-CPU machine none is left idle then, so the runtime's
// monitor takes the reader's P away and keeps polling at its fastest
// (every 20 µs), a wake-up of another CPU each time. A spare P ends that
// (docs/performance.md).
const minProcs = 4

type executor struct {
	plan *plan.Plan
	conn *proto.Conn
	// ws is the workspace directory; file tools resolve beneath it.
	ws *os.File
	// devNull is the stdin of commands that are given none.
	devNull *os.File

	mu      sync.Mutex
	running map[string]int          // call → process group of its command
	calls   map[int]string          // pid of a running command → its call
	stdin   map[string]*stdinStream // call → its streamed stdin
}

// stdinStream queues a call's streamed stdin for its command. The queue
// is closed once: by the stream's end or by the call's end. Its own lock
// (not the executor's) guards it, so a command that does not read its
// stdin can hold up its own stream and nothing else of the executor.
type stdinStream struct {
	mu     sync.Mutex
	ch     chan []byte
	closed bool
}

func run(requests, responses *os.File) error {
	t0 := time.Now()
	// Nothing inherited but the supervisor's sockets may reach a
	// command; the sockets themselves are close-on-exec too.
	if err := linux.CloseExecFrom(fdRequests); err != nil {
		return fmt.Errorf("marking descriptors close-on-exec: %w", err)
	}
	conn := proto.NewSplitConn(requests, responses)
	var p plan.Plan
	if err := conn.Receive(&p); err != nil {
		return fmt.Errorf("reading the plan: %w", err)
	}
	ws, err := os.OpenFile(p.Workspace, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening the workspace: %w", err)
	}
	ready := &proto.Ready{Timing: map[string]int64{}}
	listener, err := lockdown(&p, ready)
	if err != nil {
		// The supervisor waits for the seccomp listener first: hand it
		// a harmless descriptor, then the reason.
		_ = sendFD(responses, int(ws.Fd()))
		_ = conn.Send(&proto.Response{Kind: proto.KindReady, Ready: &proto.Ready{Error: "locking down the executor: " + err.Error()}})
		return err
	}
	if err := sendFD(responses, listener); err != nil {
		return fmt.Errorf("handing over the seccomp listener: %w", err)
	}
	unix.Close(listener)
	linux.PrewarmThreads(stageThreads)
	ready.Timing["lockdown_us"] = time.Since(t0).Microseconds()
	if err := conn.Send(&proto.Response{Kind: proto.KindReady, Ready: ready}); err != nil {
		return err
	}
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		return fmt.Errorf("opening %s: %w", os.DevNull, err)
	}
	e := &executor{plan: &p, conn: conn, ws: ws, devNull: devNull, running: map[string]int{}, calls: map[int]string{}, stdin: map[string]*stdinStream{}}
	go e.reapOrphans()
	return e.serve()
}

// serve reads requests until the supervisor closes the connection. A
// call runs on the goroutine that read it: before it starts, that
// goroutine hands the reading on to a new one, so the call does not wait
// for a goroutine to be scheduled, and frames keep being read (stdin,
// cancel, more calls) while it runs. One goroutine reads at a time, in
// frame order.
func (e *executor) serve() error {
	errc := make(chan error, 1)
	go e.read(errc)
	return <-errc
}

func (e *executor) read(errc chan<- error) {
	for {
		req := new(proto.Request)
		err := e.conn.Receive(req)
		if errors.Is(err, io.EOF) {
			errc <- nil
			return
		}
		if err != nil {
			errc <- fmt.Errorf("reading a request: %w", err)
			return
		}
		switch req.Op {
		case proto.OpCancel:
			e.cancel(req.Call)
			continue
		case proto.OpStopAll:
			// In frame order: a call that starts after it is not hit.
			e.stopAll()
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
		go e.read(errc)
		e.handle(req)
		return
	}
}

// stageThreads is how many idle OS threads a stage keeps for when the
// session's pids are exhausted (see linux.PrewarmThreads).
const stageThreads = 8

// stdinQueue bounds the chunks of streamed stdin waiting for a command
// that does not read; past it the serve loop waits, for this session only.
const stdinQueue = 64

// feed queues a chunk of a call's streamed stdin, or its end. It holds
// the stream's lock while it sends, so that the call's end cannot close
// the queue under it; the command's pump (or, once the command stops
// reading, its drain) always empties the queue.
func (e *executor) feed(req *proto.Request) {
	e.mu.Lock()
	st := e.stdin[req.Call]
	e.mu.Unlock()
	if st == nil {
		return // the call has ended; its stdin is discarded
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return
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
	st := e.stdin[call]
	delete(e.stdin, call)
	e.mu.Unlock()
	if st == nil {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.closed {
		st.closed = true
		close(st.ch)
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
	end := time.Now()
	res.Timing["executor_us"] = end.Sub(start).Microseconds()
	res.Sent = end.UnixMicro()
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
//  5. no_new_privs on every thread (the supervisor set it on the thread
//     that started the executor, inside the session's Landlock domain);
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
	filter, err := seccomp.Build(seccomp.Options{AllowPtrace: p.AllowPtrace, ObserveWrites: true, CheckAllocations: p.Limits.DiskFreeBytes > 0})
	if err != nil {
		return -1, err
	}
	return seccomp.Install(filter)
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
