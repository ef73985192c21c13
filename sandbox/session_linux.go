package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/egress"
	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/internal/cgroup"
	"github.com/cordon-sandbox/cordon/internal/linux"
	"github.com/cordon-sandbox/cordon/internal/plan"
	"github.com/cordon-sandbox/cordon/internal/proto"
	"github.com/cordon-sandbox/cordon/internal/stage"
	"github.com/cordon-sandbox/cordon/policy"
)

// cancelGrace bounds the wait for a canceled call's result.
const cancelGrace = 5 * time.Second

// Init runs a session stage if this process is one and never returns in
// that case. Call it first thing in main.
func Init() { stage.Dispatch() }

func newIDMap(o Options) idMap {
	if os.Geteuid() != 0 {
		return idMap{hostUID: os.Geteuid(), hostGID: os.Getegid()}
	}
	base := o.SessionUID
	if base == 0 {
		base = DefaultSessionUID
	}
	return idMap{rootful: true, hostUID: base, hostGID: base, execUID: executorID}
}

func (m idMap) sysProcAttr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWNET |
			unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWCGROUP,
		Credential: &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: !m.rootful},
		// A second line behind the supervisor's own watch of its socket:
		// the kernel kills it when the thread that started it dies. (Go
		// ends a thread only when a goroutine locked to it exits, so
		// Open must not run on such a goroutine.)
		Pdeathsig: unix.SIGKILL,
	}
	if m.rootful {
		a.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: m.hostUID, Size: 1}, {ContainerID: executorID, HostID: m.hostUID + 1, Size: 1}}
		a.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: m.hostGID, Size: 1}, {ContainerID: executorID, HostID: m.hostGID + 1, Size: 1}}
		a.GidMappingsEnableSetgroups = true
	} else {
		a.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: m.hostUID, Size: 1}}
		a.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: m.hostGID, Size: 1}}
	}
	return a
}

// Session is one warm isolation context serving tool calls. Its methods
// are safe for concurrent use.
type Session struct {
	id      string
	plan    *plan.Plan
	bus     *events.Bus
	created time.Time

	cmd    *exec.Cmd
	conn   *proto.Conn
	cg     *cgroup.Group
	stderr *tailBuffer

	// ctx ends with the session; proxy connections are served under it.
	ctx  context.Context
	stop context.CancelFunc

	// allow is the egress allowlist: the policy's hosts, those added by
	// AllowHosts (extraHosts) and those granted (grantedHosts).
	allow        atomic.Pointer[egress.Allowlist]
	extraHosts   []string
	grantedHosts []string

	// What grants change: the policy and plan the session was opened
	// with, the plan of the executor serving new calls, and the limits
	// in force.
	pol      *policy.Policy
	basePlan *plan.Plan
	execPlan *plan.Plan
	limits   atomic.Pointer[plan.Limits]
	grantMu  sync.Mutex // serializes ApplyGrants and AllowHosts
	grants   []string
	mounted  []fsGrant // filesystem grants mounted in the view
	walker   int       // the uid whose access host paths are opened with (-1: this process's)
	ids      idMap
	egress   *net.UnixConn // the supervisor's datagram socket: proxy connections in, rulesets out

	// audit takes the session's Landlock records from the process's
	// kernel audit reader; nil when there is none (see landlock_linux.go).
	audit *sessionAudit
	// caps decides whether a denial's remedy could be granted at all.
	caps *policy.Capabilities

	// disks are the watchers of the host filesystems the session writes,
	// by device (disk_linux.go). diskStarts counts the exec calls started
	// (and the open), diskStopped is its value at the last stop for a
	// floor: the session may be stopped again once a call has started.
	diskMu      sync.Mutex
	disks       map[uint64]*diskWatcher
	diskStarts  atomic.Uint64
	diskStopped atomic.Uint64

	mu           sync.Mutex
	lastCounters countersSnapshot // cgroup limit counters at the last call end
	pending      map[string]*pending
	nextCall     uint64
	closed       bool
	dead         error
	readDone     chan struct{}
	closeErr     error
	once         sync.Once
}

type pending struct {
	done   chan *proto.Result
	output func(stream string, data []byte)
	exec   bool // an exec call, which a disk floor can stop
	// disk is the free space of the session's filesystems when the call
	// started, by device (disk_linux.go).
	disk map[uint64]diskReading
	// denials are the call's deny and limit events, folded as they come
	// (copies: the published events are not changed); byKey finds them.
	denials []*events.Event
	byKey   map[string]*events.Event
	// landlock counts the Landlock events from kernel audit records.
	landlock int
}

// Open creates a session: it starts the supervisor in fresh namespaces,
// which builds the view and starts the locked-down executor. It returns
// when the session can serve calls.
func Open(ctx context.Context, o Options) (*Session, error) {
	t0 := time.Now()
	pol := o.Policy
	if pol == nil {
		pol = policy.Default()
	}
	if err := pol.Validate(); err != nil {
		return nil, err
	}
	ws, err := checkWorkspace(o.Workspace)
	if err != nil {
		return nil, err
	}
	ids := newIDMap(o)
	id := newID()
	p, warnings, err := resolve(pol, ws, id, ids, o.Caller)
	if err != nil {
		return nil, err
	}
	bus := o.Bus
	if bus == nil {
		bus = events.NewBus()
	}
	allow, err := egress.ParseAllowlist(pol.Network.Allow, pol.Network.AllowPrivate)
	if err != nil {
		return nil, &Error{Code: CodeInvalid, Message: "network: " + err.Error()}
	}
	s := &Session{id: id, plan: p, bus: bus, caps: &pol.Capabilities, pending: map[string]*pending{}, readDone: make(chan struct{}), stderr: &tailBuffer{max: 4096}}
	s.allow.Store(allow)
	s.pol, s.basePlan, s.execPlan = pol, p, p
	lim := p.Limits
	s.limits.Store(&lim)
	s.ctx, s.stop = context.WithCancel(context.Background())
	cleanup := []func(){s.stop}
	fail := func(err error) (*Session, error) {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
		return nil, err
	}

	// Acting for another user, the workspace must be theirs, reached
	// through directories they could walk themselves.
	walker := -1
	if foreign(o.Caller) {
		walker = o.Caller.UID
	}
	s.walker, s.ids = walker, ids
	var tree *os.File
	if ids.rootful {
		if tree, err = idmappedWorkspace(ws, walker, ids.hostUID+1, ids.hostGID+1); err != nil {
			return fail(err)
		}
		p.WorkspaceFD = true
		cleanup = append(cleanup, func() { tree.Close() })
		parent := o.CgroupParent
		if parent == "" {
			parent = "cordon"
		}
		// Groups of sessions whose host died without closing them go
		// with the next session under the same parent.
		go cgroup.SweepAbandoned(parent, time.Minute)
		if cg, err := cgroup.New(parent, id, p.Limits.MemoryBytes, p.Limits.Pids); err == nil {
			s.cg = cg
			p.Limits.CgroupManaged = true
			cleanup = append(cleanup, func() { cg.Destroy() })
		}
	}
	if ids.rootful && o.KernelAudit == KernelAuditAuto {
		if err := hostAudit.acquire(); err != nil {
			warnings = append(warnings, "Landlock denials of commands are not read from the kernel audit log ("+err.Error()+"): refused writes are still reported, other Landlock refusals (reads, ioctls, signals) are not")
		} else {
			p.LandlockAudit = true
			cleanup = append(cleanup, func() { _ = hostAudit.release() })
		}
	}
	tIDs := time.Now()

	conn, theirs, err := hostLink()
	if err != nil {
		return fail(err)
	}
	cleanup = append(cleanup, func() { conn.Close() })
	egressMine, egressTheirs, err := egressPair()
	if err != nil {
		theirs[0].Close()
		theirs[1].Close()
		return fail(&Error{Code: CodeFailed, Message: "creating the egress socket: " + err.Error()})
	}
	cleanup = append(cleanup, func() { egressMine.Close() })
	cmd := exec.Command("/proc/self/exe", proto.StageSupervisor)
	cmd.Env = []string{} // nothing of the host's environment crosses
	cmd.Dir = "/"
	cmd.Stderr = s.stderr
	cmd.ExtraFiles = []*os.File{theirs[0], theirs[1], egressTheirs}
	if tree != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, tree)
		trees, err := bindTrees(p, 3+len(cmd.ExtraFiles), walker)
		if err != nil {
			return fail(err)
		}
		defer func() {
			for _, t := range trees {
				t.Close()
			}
		}()
		cmd.ExtraFiles = append(cmd.ExtraFiles, trees...)
	}
	cmd.SysProcAttr = ids.sysProcAttr()
	err = startFromSpawner(cmd)
	theirs[0].Close()
	theirs[1].Close()
	egressTheirs.Close()
	if tree != nil {
		tree.Close()
	}
	if err != nil {
		return fail(startError(err))
	}
	s.cmd = cmd
	cleanup = append(cleanup, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	tSpawn := time.Now()
	// The supervisor builds the view while the host moves it into the
	// cgroup (a migration can wait on an RCU grace period); it starts
	// the executor, the first process that runs anything of the
	// session's, only after the host says the cgroup holds it.
	s.conn = conn
	if err := s.conn.Send(p); err != nil {
		return fail(s.setupError(err))
	}
	if s.cg != nil {
		if err := s.cg.Add(cmd.Process.Pid); err != nil {
			return fail(&Error{Code: CodeFailed, Message: "joining the session cgroup: " + err.Error()})
		}
	}
	if err := s.conn.Send(&proto.Request{Op: proto.OpStart}); err != nil {
		return fail(s.setupError(err))
	}
	var r proto.Response
	if err := s.receiveReady(ctx, &r); err != nil {
		return fail(s.setupError(err))
	}
	if r.Ready.Error != "" {
		return fail(s.setupError(errors.New(r.Ready.Error)))
	}
	s.created = time.Now()
	if p.LandlockAudit {
		s.audit = newSessionAudit(r.Ready.AuditSession, cmd.Process.Pid)
		hostAudit.add(s)
	}
	s.diskStarts.Add(1)
	warnings = append(warnings, s.watchDisks(diskPlaces(p), p.Limits)...)
	go s.read()
	s.egress = egressMine
	go s.serveEgress(egressMine, s.egressConfig(o))

	timing := map[string]int64{
		"prepare_us": tIDs.Sub(t0).Microseconds(),
		"spawn_us":   tSpawn.Sub(tIDs).Microseconds(),
		"total_us":   time.Since(t0).Microseconds(),
	}
	for k, v := range r.Ready.Timing {
		timing[k] = v
	}
	detail := map[string]any{
		"workspace": ws, "landlock_abi": r.Ready.LandlockABI, "rootful": ids.rootful,
		"host_uid": ids.hostUID, "cgroup": s.cg != nil, "landlock_audit": p.LandlockAudit,
	}
	if protected := protectedPaths(p); len(protected) > 0 {
		detail["protected"] = protected
	}
	if w := append(r.Ready.Warnings, warnings...); len(w) > 0 {
		detail["warnings"] = w
	}
	bus.Publish(&events.Event{Session: id, Kind: events.SessionStart, Detail: detail, Timing: timing})
	return s, nil
}

// The supervisor dies with the host (Pdeathsig), and the kernel ties
// Pdeathsig to the thread that forked, not to the process: were that
// thread to exit, the session would be killed with it. Go ends a thread
// when a goroutine that locked it returns still locked (the host does
// that on purpose to join a session's mount namespace for a filesystem
// grant), and any OS thread may have been the one that forked. So every
// supervisor is forked from one thread that is locked for the life of
// the process and never exits.
var spawner struct {
	once sync.Once
	reqs chan spawnRequest
}

type spawnRequest struct {
	cmd  *exec.Cmd
	done chan error
}

func startFromSpawner(cmd *exec.Cmd) error {
	spawner.once.Do(func() {
		spawner.reqs = make(chan spawnRequest)
		go func() {
			runtime.LockOSThread() // for good: this thread must not exit
			for r := range spawner.reqs {
				r.done <- r.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	spawner.reqs <- spawnRequest{cmd: cmd, done: done}
	return <-done
}

// receiveReady waits for the supervisor's ready frame, or ctx.
func (s *Session) receiveReady(ctx context.Context, r *proto.Response) error {
	errc := make(chan error, 1)
	go func() { errc <- s.conn.Receive(r) }()
	select {
	case err := <-errc:
		if err == nil && (r.Kind != proto.KindReady || r.Ready == nil) {
			err = errors.New("session sent no ready report")
		}
		return err
	case <-ctx.Done():
		_ = s.cmd.Process.Kill()
		<-errc
		return ctx.Err()
	}
}

func (s *Session) setupError(err error) error {
	if s.cmd != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
	msg := err.Error()
	if tail := strings.TrimSpace(s.stderr.String()); tail != "" && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
		msg = tail
	}
	return &Error{Code: CodeFailed, Message: "starting the session: " + msg}
}

func startError(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EINVAL) {
		return &Error{Code: CodeUnsupported, Message: "creating the session's namespaces: " + err.Error() + " (are unprivileged user namespaces enabled?)"}
	}
	return &Error{Code: CodeFailed, Message: "starting the supervisor: " + err.Error()}
}

// idmappedWorkspace returns a detached copy of the workspace mount whose
// files, owned on disk by the workspace's owner, appear owned by the
// session's executor. Only the workspace is mapped: a root-owned file
// anywhere else in the view still belongs to an id the session is not.
// The workspace is opened once (walkOpen, as walker when walker >= 0,
// who must then own it) and everything after works on that descriptor.
func idmappedWorkspace(ws string, walker, uid, gid int) (*os.File, error) {
	f, err := walkOpen(ws, walker)
	if err != nil {
		return nil, &Error{Code: CodeDenied, Message: "workspace: " + err.Error()}
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, &Error{Code: CodeFailed, Message: "workspace: " + err.Error()}
	}
	if walker >= 0 && int(st.Uid) != walker {
		return nil, &Error{Code: CodeDenied, Message: fmt.Sprintf("workspace %s does not belong to uid %d", ws, walker)}
	}
	userns, err := linux.UserNamespace(int(st.Uid), uid, int(st.Gid), gid)
	if err != nil {
		return nil, &Error{Code: CodeFailed, Message: "preparing the workspace mount: " + err.Error()}
	}
	tree, err := linux.OpenTreeCloneFD(f)
	if err != nil {
		return nil, &Error{Code: CodeFailed, Message: "preparing the workspace mount: " + err.Error()}
	}
	if err := linux.IDMapTree(tree, int(userns.Fd())); err != nil {
		tree.Close()
		return nil, &Error{Code: CodeFailed, Message: "preparing the workspace mount: " + err.Error()}
	}
	return tree, nil
}

// bindTrees clones the mount tree of every bind source, for a supervisor
// that cannot reach them by path, and records in each bind the
// descriptor it will have in the supervisor (counting from first). Each
// source is opened with walkOpen (as walker when walker >= 0).
func bindTrees(p *plan.Plan, first, walker int) ([]*os.File, error) {
	var trees []*os.File
	fail := func(err error) ([]*os.File, error) {
		for _, t := range trees {
			t.Close()
		}
		return nil, err
	}
	for i := range p.Binds {
		b := &p.Binds[i]
		if b.Kind == plan.BindSymlink {
			continue
		}
		f, err := walkOpen(b.Source, walker)
		if err != nil {
			return fail(&Error{Code: CodeDenied, Message: "filesystem: " + err.Error()})
		}
		t, err := linux.OpenTreeCloneFD(f)
		f.Close()
		if err != nil {
			return fail(&Error{Code: CodeFailed, Message: "preparing the filesystem view: " + err.Error()})
		}
		b.FD = first + len(trees)
		trees = append(trees, t)
	}
	return trees, nil
}

// ID returns the session's id.
func (s *Session) ID() string { return s.id }

// Workspace returns the workspace's path (the same inside and outside).
func (s *Session) Workspace() string { return s.plan.Workspace }

// Created returns when the session became ready.
func (s *Session) Created() time.Time { return s.created }

// Bus returns the bus the session publishes on.
func (s *Session) Bus() *events.Bus { return s.bus }

// CallTimeout returns the wall-clock timeout a call gets when its
// request sets none: the policy's, or the runtime's default.
func (s *Session) CallTimeout() time.Duration {
	return time.Duration(s.limits.Load().TimeoutMS) * time.Millisecond
}

// read demultiplexes frames from the supervisor to pending calls.
func (s *Session) read() {
	defer close(s.readDone)
	for {
		var r proto.Response
		if err := s.conn.Receive(&r); err != nil {
			s.fail(err)
			return
		}
		switch r.Kind {
		case proto.KindEvent:
			if r.Event == nil {
				continue
			}
			s.record(r.Event)
		case proto.KindStdout, proto.KindStderr:
			s.mu.Lock()
			pc := s.pending[r.Call]
			s.mu.Unlock()
			if pc != nil && pc.output != nil {
				pc.output(string(r.Kind), r.Data)
			}
		case proto.KindSpawn:
			if s.audit != nil {
				s.audit.spawned(r.Call, r.PID)
			}
		case proto.KindResult:
			if r.Result != nil && r.Result.Sent > 0 && r.Result.Timing != nil {
				r.Result.Timing["return_us"] = time.Now().UnixMicro() - r.Result.Sent
			}
			if s.audit != nil && r.Result != nil {
				s.settle(r.Call, r.Result.LandlockPending)
				s.audit.ended(r.Call)
			}
			s.mu.Lock()
			pc := s.pending[r.Call]
			delete(s.pending, r.Call)
			s.mu.Unlock()
			if pc != nil && r.Result != nil {
				r.Result.Denials = events.Fold(pc.denials)
				pc.done <- r.Result
			}
		}
	}
}

// fail ends every pending call after the session's connection broke.
func (s *Session) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead == nil {
		if s.closed {
			s.dead = &Error{Code: CodeClosed, Message: "session closed"}
		} else {
			s.dead = &Error{Code: CodeClosed, Message: "session ended unexpectedly: " + err.Error()}
		}
	}
	for id, pc := range s.pending {
		close(pc.done)
		delete(s.pending, id)
	}
}

// call sends one request and waits for its result; afterSend, if set, runs
// once the request is on its way (to stream stdin behind it).
func (s *Session) call(ctx context.Context, req *proto.Request, output func(string, []byte), afterSend func()) (*proto.Result, error) {
	pc := &pending{done: make(chan *proto.Result, 1), output: output, exec: req.Op == proto.OpExec}
	if pc.exec {
		pc.disk = s.diskMarks()
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, &Error{Code: CodeClosed, Message: "session closed"}
	}
	if s.dead != nil {
		err := s.dead
		s.mu.Unlock()
		return nil, err
	}
	s.pending[req.Call] = pc
	s.mu.Unlock()
	if pc.exec {
		// After the call is pending, so that a stop now sees it.
		s.diskStarts.Add(1)
	}
	req.Received = time.Now().UnixMicro()
	if err := s.conn.Send(req); err != nil {
		s.mu.Lock()
		delete(s.pending, req.Call)
		s.mu.Unlock()
		return nil, &Error{Code: CodeFailed, Message: "sending the call: " + err.Error()}
	}
	if afterSend != nil {
		afterSend()
	}
	select {
	case res, ok := <-pc.done:
		if !ok {
			s.mu.Lock()
			err := s.dead
			s.mu.Unlock()
			return nil, err
		}
		return res, nil
	case <-ctx.Done():
		// Kill the call's processes and take the result they leave, but
		// do not wait for a session that no longer answers.
		_ = s.conn.Send(&proto.Request{Call: req.Call, Op: proto.OpCancel})
		select {
		case res, ok := <-pc.done:
			if !ok {
				return nil, ctx.Err()
			}
			return res, nil
		case <-time.After(cancelGrace):
			return nil, &Error{Code: CodeFailed, Message: "the call was canceled and the session did not answer within " + cancelGrace.String()}
		}
	}
}

func (s *Session) newCall() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextCall++
	return "c" + strconv.FormatUint(s.nextCall, 10)
}

// Close ends the session: the supervisor (the session's PID 1) exits and
// the kernel kills every process in the session; the cgroup is removed.
// Closing twice is harmless.
func (s *Session) Close() error {
	s.once.Do(func() {
		t0 := time.Now()
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.conn.Close()
		s.stop()
		// After the connection: a stop the watcher is sending then
		// fails at once instead of holding the wait for the watcher.
		s.watchDisks(nil, plan.Limits{})
		done := make(chan error, 1)
		go func() { done <- s.cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = s.cmd.Process.Kill()
			<-done
		}
		<-s.readDone
		if s.cg != nil {
			s.closeErr = s.cg.Destroy()
		}
		if s.audit != nil {
			hostAudit.remove(s)
			s.closeErr = errors.Join(s.closeErr, hostAudit.release())
		}
		s.bus.Publish(&events.Event{Session: s.id, Kind: events.SessionStop,
			Timing: map[string]int64{"teardown_us": time.Since(t0).Microseconds(), "lifetime_us": time.Since(s.created).Microseconds()}})
	})
	return s.closeErr
}

func newID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("reading random bytes: %v", err))
	}
	return hex.EncodeToString(b[:])
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}

// hostLink makes the two one-way sockets between the host and the
// supervisor (see proto.NewSplitConn) and returns the host's Conn and the
// supervisor's ends, the one it reads requests from first. The host's
// ends are non-blocking so that Go's poller owns them: Close then wakes
// the reader at once and the supervisor sees end of file.
func hostLink() (*proto.Conn, [2]*os.File, error) {
	var theirs [2]*os.File
	reqR, reqW, err := proto.OneWayFDs()
	if err != nil {
		return nil, theirs, &Error{Code: CodeFailed, Message: "creating the session's sockets: " + err.Error()}
	}
	respR, respW, err := proto.OneWayFDs()
	if err != nil {
		unix.Close(reqR)
		unix.Close(reqW)
		return nil, theirs, &Error{Code: CodeFailed, Message: "creating the session's sockets: " + err.Error()}
	}
	for _, fd := range []int{reqW, respR} {
		if err := unix.SetNonblock(fd, true); err != nil {
			for _, fd := range []int{reqR, reqW, respR, respW} {
				unix.Close(fd)
			}
			return nil, theirs, &Error{Code: CodeFailed, Message: "creating the session's sockets: " + os.NewSyscallError("fcntl", err).Error()}
		}
	}
	theirs = [2]*os.File{os.NewFile(uintptr(reqR), "requests"), os.NewFile(uintptr(respW), "responses")}
	conn := proto.NewSplitConn(os.NewFile(uintptr(respR), "session"), os.NewFile(uintptr(reqW), "session"))
	return conn, theirs, nil
}
