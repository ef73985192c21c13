// Package supervisor is the session's PID 1: it builds the filesystem
// view, starts the executor, answers the executor's seccomp
// notifications, relays tool calls between the host and the executor, and
// ends the session by exiting (the kernel then kills every process of the
// session's pid namespace).
package supervisor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/internal/linux"
	"github.com/cordon-sandbox/cordon/internal/plan"
	"github.com/cordon-sandbox/cordon/internal/proto"
	"github.com/cordon-sandbox/cordon/internal/ruleset"
	"github.com/cordon-sandbox/cordon/internal/seccomp"
)

// stageThreads is how many idle OS threads the supervisor keeps for when
// the session's pids are exhausted (see linux.PrewarmThreads).
const stageThreads = 8

// File descriptors the host passes to the supervisor: the host's
// requests and the way back to it (two one-way sockets, see
// proto.NewSplitConn), the datagram socket that takes proxy connections to
// the host, then the idmapped workspace tree when the plan says so; bind
// trees follow at the descriptors their binds name.
const (
	fdRequests  = 3
	fdResponses = 4
	fdEgress    = 5
	fdWorkspace = 6
)

// Main runs the supervisor stage and never returns.
func Main() {
	host := proto.NewSplitConn(os.NewFile(fdRequests, "requests"), os.NewFile(fdResponses, "responses"))
	// Whatever else the host process had open must not reach the
	// executor: refuse to go on if that cannot be ensured.
	err := linux.CloseExecFrom(fdRequests)
	if err == nil {
		err = run(host)
	}
	if err != nil {
		// Setup failed: tell the host why, in one line, and exit.
		_ = host.Send(&proto.Response{Kind: proto.KindReady, Ready: &proto.Ready{Error: err.Error()}})
		os.Exit(1)
	}
	os.Exit(0)
}

type supervisor struct {
	host   *proto.Conn
	bridge *bridge

	mu    sync.Mutex
	plan  *plan.Plan           // the plan the current executor runs under
	cur   *executor            // serves calls that start now
	route map[string]*executor // in-flight call → the executor serving it

	rulesetFD    int // the executors' Landlock ruleset (0: not built yet)
	rulesetFlags uint32
}

// executor is one executor process: a session has one at a time serving
// new calls, and a grant that widens what the kernel allows (Landlock and
// seccomp can only narrow) starts a new one; the old one drains its calls
// and exits, its background processes keep the rules they started with.
type executor struct {
	plan     *plan.Plan // what it was started under
	conn     *proto.Conn
	pid      int
	notify   *notifier
	queue    *requestQueue
	inflight int
	retired  bool
}

func run(host *proto.Conn) error {
	start := time.Now()
	var p plan.Plan
	if err := host.Receive(&p); err != nil {
		return fmt.Errorf("reading the session plan: %w", err)
	}
	planWait := time.Since(start)
	start = time.Now()
	// Mounts, pivot_root and the capability drop act on the calling
	// thread's view of the process; keep setup on one thread.
	runtime.LockOSThread()
	var tree *os.File
	if p.WorkspaceFD {
		tree = os.NewFile(fdWorkspace, "workspace")
	}
	viewTiming := map[string]int64{}
	if err := buildView(&p, tree, viewTiming); err != nil {
		return fmt.Errorf("building the filesystem view: %w", err)
	}
	if tree != nil {
		tree.Close()
	}
	viewDone := time.Now()
	if err := linux.Sethostname(p.Hostname); err != nil {
		return err
	}
	if err := linux.LoopbackUp(); err != nil {
		return fmt.Errorf("bringing up loopback: %w", err)
	}
	br, err := listenProxy(os.NewFile(fdEgress, "egress"))
	if err != nil {
		return err
	}
	if err := limitUserNamespace(); err != nil {
		return fmt.Errorf("setting the session's user namespace limits: %w", err)
	}
	if err := linux.SetNotDumpable(); err != nil {
		return err
	}
	var proceed proto.Request
	tWait := time.Now()
	if err := host.Receive(&proceed); err != nil || proceed.Op != proto.OpStart {
		return fmt.Errorf("waiting for the host to finish setup: %v", err)
	}
	startWait := time.Since(tWait)
	s := &supervisor{plan: &p, host: host, bridge: br, route: map[string]*executor{}}
	x, ready, err := s.startExecutor(&p)
	if err != nil {
		return fmt.Errorf("starting the executor: %w", err)
	}
	s.cur = x
	// Setup is done. The supervisor keeps, in the session's user
	// namespace only, CAP_SYS_PTRACE to read the address a notified
	// connect() names from the caller's memory, and, when the executor
	// runs as another uid, CAP_SETUID and CAP_SETGID to start a new
	// executor as that uid for a grant. These reach only the session's
	// own processes and ids, which the supervisor already governs; the
	// rest of what it does (relay frames, answer notifications, read
	// /proc/PID/stat, exit) needs nothing, and it parses frames from the
	// untrusted executor. The bounding set goes too, so that not even an
	// execve could give any back; dropping it on every thread takes
	// milliseconds, so it happens off the path to ready, holding
	// CAP_SETPCAP (which the drop needs) until it is done.
	keep := []uintptr{unix.CAP_SYS_PTRACE}
	if p.UID != 0 {
		keep = append(keep, unix.CAP_SETUID, unix.CAP_SETGID)
	}
	if err := linux.KeepCapabilities(append(keep, unix.CAP_SETPCAP)...); err != nil {
		return err
	}
	go s.bridge.serve()
	go func() {
		err := linux.DropBoundingSetAllThreads()
		if err == nil {
			err = linux.KeepCapabilities(keep...)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "cordon supervisor: %v\n", err)
			os.Exit(3)
		}
	}()
	runtime.UnlockOSThread()
	// The supervisor shares the session's pids limit: keep threads for
	// when a fork bomb has taken every pid (see linux.PrewarmThreads).
	linux.PrewarmThreads(stageThreads)
	ready.Timing["plan_wait_us"] = planWait.Microseconds()
	ready.Timing["start_wait_us"] = startWait.Microseconds()
	ready.Timing["view_us"] = viewDone.Sub(start).Microseconds()
	for k, v := range viewTiming {
		ready.Timing[k] = v
	}
	ready.Timing["supervisor_us"] = time.Since(start).Microseconds()
	if err := host.Send(&proto.Response{Kind: proto.KindReady, Ready: ready}); err != nil {
		return err
	}
	return s.serve()
}

// startExecutor execs an executor as the session user under plan p,
// receives its seccomp listener and its ready report.
func (s *supervisor) startExecutor(p *plan.Plan) (*executor, *proto.Ready, error) {
	t0 := time.Now()
	// Requests go to the executor on one socket, its frames come back
	// on another (see proto.NewSplitConn).
	reqR, reqW, err := proto.OneWay()
	if err != nil {
		return nil, nil, err
	}
	defer reqR.Close()
	respR, respW, err := proto.OneWay()
	if err != nil {
		reqW.Close()
		return nil, nil, err
	}
	defer respW.Close()

	cmd := exec.Command("/proc/self/exe", proto.StageExecutor)
	cmd.Env = []string{}
	cmd.Dir = "/"
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = []*os.File{reqR, respW}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(p.UID), Gid: uint32(p.GID), NoSetGroups: p.UID == 0},
	}
	fd, flags, err := s.landlock(p)
	var auditSession uint32
	if err == nil {
		auditSession, err = startRestricted(cmd, p, fd, flags)
	}
	if errors.Is(err, os.ErrNotExist) {
		// The binary is reached through /proc/self/exe, so what is
		// missing is what a dynamically linked one needs from the view.
		err = fmt.Errorf("%w: the session's view lacks the dynamic loader or libraries this cordon binary needs; its policy's filesystem.read must include them (the default lists /usr, /lib and /lib64), or build cordon with CGO_ENABLED=0", err)
	}
	conn := proto.NewSplitConn(respR, reqW)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	sock, err := reqW.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	x := &executor{plan: p, conn: conn, pid: cmd.Process.Pid, queue: &requestQueue{conn: conn, sock: sock, ready: make(chan struct{}, 1)}}
	go s.reap(x, cmd)
	fail := func(err error) (*executor, *proto.Ready, error) {
		conn.Close() // the executor exits at end of file
		return nil, nil, err
	}

	// The executor reads its plan, locks down, hands over its seccomp
	// listener with SCM_RIGHTS, then reports ready in a frame.
	if err := x.conn.Send(p); err != nil {
		return fail(err)
	}
	listener, err := receiveFD(respR)
	if err != nil {
		return fail(fmt.Errorf("receiving the seccomp listener: %w", err))
	}
	var r proto.Response
	if err := x.conn.Receive(&r); err != nil {
		unix.Close(listener)
		return fail(fmt.Errorf("waiting for the executor: %w", err))
	}
	if r.Kind != proto.KindReady || r.Ready == nil {
		unix.Close(listener)
		return fail(errors.New("executor sent no ready report"))
	}
	if r.Ready.Error != "" {
		unix.Close(listener)
		return fail(errors.New(r.Ready.Error))
	}
	if r.Ready.Timing == nil {
		r.Ready.Timing = map[string]int64{}
	}
	abi, warnings, err := ruleset.ABI()
	if err != nil {
		unix.Close(listener)
		return fail(err)
	}
	r.Ready.LandlockABI = abi
	r.Ready.AuditSession = auditSession
	r.Ready.Warnings = append(r.Ready.Warnings, warnings...)
	r.Ready.Timing["executor_us"] = time.Since(t0).Microseconds()
	if _, err := seccomp.SyncWakeUp(listener); err != nil {
		unix.Close(listener)
		return fail(err)
	}
	x.notify = newNotifier(s, x, listener)
	go x.notify.loop()
	go x.queue.drain()
	go s.fromExecutor(x)
	return x, r.Ready, nil
}

// reconfigure starts a new executor under the plan a grant changed and
// makes it serve the calls that start from now on; the old one serves
// its calls to the end and then exits. The host hears the outcome in a
// result frame for the request's call id, sent only after the switch.
func (s *supervisor) reconfigure(req *proto.Request) {
	res := &proto.Result{Timing: map[string]int64{}}
	t0 := time.Now()
	var err error
	if req.Ruleset {
		err = s.takeRuleset()
	}
	var x *executor
	var ready *proto.Ready
	if err == nil {
		x, ready, err = s.startExecutor(req.Plan)
	}
	if err != nil {
		res.Error = &proto.CallError{Code: proto.CodeFailed, Message: "starting a new executor: " + err.Error()}
	} else {
		res.AuditSession = ready.AuditSession
		s.mu.Lock()
		old := s.cur
		s.cur, s.plan = x, req.Plan
		old.retired = true
		idle := old.inflight == 0
		s.mu.Unlock()
		if idle {
			old.conn.Close()
		}
	}
	res.Timing["reconfigure_us"] = time.Since(t0).Microseconds()
	_ = s.host.Send(&proto.Response{Call: req.Call, Kind: proto.KindResult, Result: res})
}

// userNamespaceLimits are the per-user-namespace limits of every session
// (/proc/sys/user, which the session's root may set for its own
// namespace). The kernel charges what a session creates to each ancestor
// namespace's user too (for a root-started session, root on the host),
// so without them one session could take the whole host budget of
// inotify instances of the user who started it. Nested namespaces are
// refused by seccomp already; a zero limit refuses them a second time.
var userNamespaceLimits = map[string]string{
	"max_inotify_instances": "16",
	"max_inotify_watches":   "8192",
	"max_fanotify_groups":   "0",
	"max_fanotify_marks":    "0",
	"max_user_namespaces":   "0",
	"max_mnt_namespaces":    "0",
	"max_pid_namespaces":    "0",
	"max_net_namespaces":    "0",
	"max_ipc_namespaces":    "0",
	"max_uts_namespaces":    "0",
	"max_cgroup_namespaces": "0",
	"max_time_namespaces":   "0",
}

func limitUserNamespace() error {
	for name, v := range userNamespaceLimits {
		err := os.WriteFile("/proc/sys/user/"+name, []byte(v), 0)
		if errors.Is(err, os.ErrNotExist) {
			continue // an older kernel without this limit
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// startRestricted starts cmd inside the Landlock domain of the ruleset
// fd, from a thread that restricts itself for the purpose and then dies
// with its goroutine (see ruleset.RestrictThread); the supervisor's other
// threads stay unrestricted. When the host reads Landlock's audit
// records, the thread first takes an audit session of its own, which cmd
// inherits (see auditSession); its id is returned.
func startRestricted(cmd *exec.Cmd, p *plan.Plan, fd int, flags uint32) (uint32, error) {
	var ses uint32
	errc := make(chan error, 1)
	go func() {
		// Locked and never unlocked: when this goroutine returns, the
		// runtime ends the thread, and its domain with it.
		runtime.LockOSThread()
		// Nothing the executor runs may gain a capability: empty this
		// thread's bounding set, which the executor inherits.
		if err := linux.DropBoundingSet(); err != nil {
			errc <- err
			return
		}
		if p.LandlockAudit {
			ses = auditSession(p.UID)
		}
		if err := ruleset.RestrictThread(fd, flags); err != nil {
			errc <- fmt.Errorf("applying landlock: %w", err)
			return
		}
		errc <- cmd.Start()
	}()
	err := <-errc
	return ses, err
}

// landlock returns the session's Landlock ruleset, built on first use and
// kept: a later executor (a grant that leaves the filesystem rules alone)
// reuses it, since the supervisor, without capabilities by then, could
// not open every path of the rules again.
func (s *supervisor) landlock(p *plan.Plan) (fd int, flags uint32, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rulesetFD == 0 {
		fd, flags, err := ruleset.ForOptions(p, ruleset.Options{LogNewExec: p.LandlockAudit})
		if err != nil {
			return -1, 0, fmt.Errorf("building the landlock ruleset: %w", err)
		}
		s.rulesetFD, s.rulesetFlags = fd, flags
	}
	return s.rulesetFD, s.rulesetFlags, nil
}

// takeRuleset makes the ruleset the host passed for this reconfigure the
// one executors are restricted by from now on.
func (s *supervisor) takeRuleset() error {
	select {
	case fd := <-s.bridge.rulesets:
		s.mu.Lock()
		if s.rulesetFD > 0 {
			unix.Close(s.rulesetFD)
		}
		s.rulesetFD = fd
		s.mu.Unlock()
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("the host's ruleset did not arrive")
	}
}

// reap waits for an executor. If the current one dies, the session
// cannot serve calls any more: the supervisor exits and the kernel ends
// the session. A retired one exits when it has drained.
func (s *supervisor) reap(x *executor, cmd *exec.Cmd) {
	_ = cmd.Wait()
	s.mu.Lock()
	current := s.cur == x || s.cur == nil
	s.mu.Unlock()
	if current {
		os.Exit(3)
	}
}

// serve relays frames until the host goes away. Reading the host never
// waits on an executor: frames for an executor queue in memory and a
// goroutine per executor writes them, so that an executor that stops
// reading cannot keep the supervisor from seeing the host's end of file,
// and so from ending the session.
func (s *supervisor) serve() error {
	for {
		yield()
		f, err := s.host.ReceiveFrame()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		}
		req := new(proto.Request)
		if err == nil {
			err = f.Decode(req)
		}
		if err != nil {
			return fmt.Errorf("reading from host: %w", err)
		}
		if req.Op == proto.OpReconfigure {
			if req.Plan == nil {
				return errors.New("reconfigure without a plan")
			}
			go s.reconfigure(req)
			continue
		}
		if req.Op == proto.OpStopAll {
			s.stopAll(f) // stop_linux.go
			continue
		}
		// The frame goes on as the host sent it: encoding it again
		// would only cost time.
		s.executorFor(req).queue.push(f)
	}
}

// yield passes a relay loop through the scheduler once per frame. The
// loops wait in read(2) on blocking sockets, not in the runtime's poller
// (which costs a wake-up more per frame), so without it their goroutine
// never reschedules: the runtime then counts it as running for the
// loop's whole life, takes its P away in the middle of a read every 10 ms
// as if it hogged the P, and keeps its monitor thread (sysmon) polling at
// its fastest, every 20 µs: on a 2-CPU machine that is most of the
// supervisor's wake-ups per call (docs/performance.md).
func yield() { runtime.Gosched() }

// executorFor picks the executor a frame goes to: a new call goes to the
// current executor, stdin and cancel frames to the one serving their call.
func (s *supervisor) executorFor(req *proto.Request) *executor {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch req.Op {
	case proto.OpStdin, proto.OpCancel:
		if x := s.route[req.Call]; x != nil {
			return x
		}
		return s.cur
	}
	s.route[req.Call] = s.cur
	s.cur.inflight++
	return s.cur
}

// finished forgets a call that x served, and lets a retired x go once it
// has served its last.
func (s *supervisor) finished(x *executor, call string) {
	s.mu.Lock()
	if s.route[call] != x {
		s.mu.Unlock()
		return
	}
	delete(s.route, call)
	x.inflight--
	drained := x.retired && x.inflight == 0
	s.mu.Unlock()
	if drained {
		x.conn.Close()
	}
}

// requestQueue is an unbounded FIFO of frames for the executor. (The host
// bounds what it sends: the calls it has open and their stdin.) A frame
// with nothing queued before it goes out at once if the socket takes it
// without waiting, as it does unless the executor has stopped reading;
// the rest waits for drain, which may block.
type requestQueue struct {
	conn *proto.Conn
	sock syscall.RawConn

	mu    sync.Mutex
	items [][]byte // frames, or the rest of one, in order
	busy  bool     // drain is writing an item
	ready chan struct{}
}

func (q *requestQueue) push(f *proto.Frame) {
	q.mu.Lock()
	rest := f.Bytes()
	if len(q.items) == 0 && !q.busy {
		var err error
		if rest, err = q.conn.TrySendFrame(f, q.sock); err != nil {
			os.Exit(3)
		}
		if rest == nil {
			q.mu.Unlock()
			return
		}
	}
	q.items = append(q.items, rest)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *requestQueue) drain() {
	for range q.ready {
		for {
			q.mu.Lock()
			if len(q.items) == 0 {
				q.busy = false
				q.mu.Unlock()
				break
			}
			b := q.items[0]
			q.items[0] = nil
			q.items = q.items[1:]
			q.busy = true
			q.mu.Unlock()
			if err := q.conn.SendBytes(b); err != nil {
				os.Exit(3)
			}
		}
	}
}

// relayed is what the supervisor reads of a frame from the executor; the
// frame itself goes on to the host as it came, unless the supervisor has
// to add to its result.
type relayed struct {
	Call   string     `json:"call,omitempty"`
	Kind   proto.Kind `json:"kind"`
	PID    int        `json:"pid,omitempty"`
	Result *struct {
		Error *proto.CallError `json:"error,omitempty"`
	} `json:"result,omitempty"`
}

func (s *supervisor) fromExecutor(x *executor) {
	for {
		yield()
		var r relayed
		f, err := x.conn.ReceiveFrame()
		if err == nil {
			err = f.Peek(&r)
		}
		if err != nil {
			s.mu.Lock()
			current := s.cur == x
			s.mu.Unlock()
			if current {
				os.Exit(3)
			}
			return
		}
		switch r.Kind {
		case proto.KindSpawn:
			x.notify.spawned(r.Call, r.PID)
			if x.plan.LandlockAudit {
				_ = s.host.SendFrame(f) // the host attributes Landlock's records to calls
			}
			continue
		case proto.KindResult:
			pending := 0
			if r.Result != nil {
				pending = s.afterCall(x, r.Call)
			}
			x.notify.end(r.Call)
			if r.Result != nil && r.Result.Error != nil {
				if d := s.callDenial(r.Call, r.Result.Error); d != nil {
					_ = s.host.Send(&proto.Response{Call: r.Call, Kind: proto.KindEvent, Event: d})
				}
			}
			if pending > 0 {
				err = s.sendPending(f, pending)
			} else {
				err = s.host.SendFrame(f)
			}
			if err != nil {
				os.Exit(3)
			}
			s.finished(x, r.Call)
			continue
		}
		if err := s.host.SendFrame(f); err != nil {
			os.Exit(3)
		}
	}
}

// sendPending sends a result on to the host with the number of Landlock
// refusals the host is to wait for.
func (s *supervisor) sendPending(f *proto.Frame, pending int) error {
	var r proto.Response
	if err := f.Decode(&r); err != nil {
		return err
	}
	r.Result.LandlockPending = pending
	return s.host.Send(&r)
}

// callDenial turns a refusal reported with a call's result (a path that
// resolves outside the workspace, a Landlock or read-only refusal of a
// file tool) into a deny event. The kernel produced the errno; the
// executor only carries it.
func (s *supervisor) callDenial(call string, ce *proto.CallError) *events.Event {
	if ce.Code != proto.CodeDenied {
		return nil
	}
	e := &events.Event{
		Time: time.Now(), Session: s.session(), Call: call, Kind: events.Deny,
		Detail: map[string]any{"reason": ce.Message},
	}
	e.Op, e.Target = ce.Op, ce.Path
	switch syscall.Errno(ce.Errno) {
	case unix.EXDEV:
		e.Layer, e.Rule = events.LayerPolicy, "policy.workspace.beneath"
	case unix.EROFS:
		e.Layer, e.Rule = events.LayerPolicy, "policy.filesystem.read_only"
		e.Remedy = &events.Remedy{Capability: "fs.write:" + ce.Path}
		protectDenial(s.currentPlan(), e, ce.Path) // policy.workspace.protect
	default:
		e.Layer, e.Rule = events.LayerLandlock, "landlock.filesystem"
		e.Remedy = &events.Remedy{Capability: capabilityFor(ce.Op, ce.Path)}
	}
	return e
}

// session is the session's id.
func (s *supervisor) session() string { return s.currentPlan().Session }

// currentPlan is the plan of the executor serving new calls.
func (s *supervisor) currentPlan() *plan.Plan {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.plan
}

func capabilityFor(op, path string) string {
	switch op {
	case string(proto.OpWrite):
		return "fs.write:" + path
	default:
		return "fs.read:" + path
	}
}

// receiveFD reads one file descriptor passed with SCM_RIGHTS.
func receiveFD(f *os.File) (int, error) {
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4))
	for {
		_, oobn, _, _, err := unix.Recvmsg(int(f.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, os.NewSyscallError("recvmsg", err)
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			return -1, errors.New("no descriptor in message")
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			return -1, errors.New("no descriptor in message")
		}
		return fds[0], nil
	}
}
