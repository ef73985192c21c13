// Package proto is the session protocol: the frames that travel between
// the host (library or daemon), the supervisor and the executor over
// their socketpairs. The protocol is internal: both ends are always the
// same cordon binary.
//
// A frame is
//
//	u32 header length | u32 payload length | header (JSON) | payload (bytes)
//
// both lengths big-endian. The header is a small JSON object; bulk bytes
// (stdin, file contents, command output) travel as the raw payload, so no
// hop spends time on base64 and JSON scanning of data it only relays.
package proto

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/internal/plan"
)

// The hidden argv[1] values that start cordon's session stages.
const (
	StageSupervisor = "__cordon_supervisor"
	StageExecutor   = "__cordon_executor"
)

// MaxFrame bounds a frame so that a confused or hostile peer cannot make
// the reader allocate without limit. Output larger than this is sent in
// several frames.
const MaxFrame = 64 << 20

// Op names a tool call.
type Op string

// The tool calls an executor serves.
const (
	OpExec  Op = "exec"
	OpRead  Op = "read_file"
	OpWrite Op = "write_file"
	OpList  Op = "list_dir"
	OpStat  Op = "stat"
	// OpCancel asks the executor to kill the named call's processes.
	OpCancel Op = "cancel"
	// OpStart tells the supervisor that the host has finished its part
	// of the setup (the cgroup): it may start the executor.
	OpStart Op = "start"
	// OpStdin carries a chunk of a running call's stdin (the payload),
	// or its end (Close).
	OpStdin Op = "stdin"
	// OpReconfigure asks the supervisor to serve new calls from a new
	// executor under Plan (a grant widened what the kernel allows); the
	// answer is a result frame for the request's call id.
	OpReconfigure Op = "reconfigure"
	// OpStopAll asks every executor of the session to kill every process
	// it started, calls running and processes they left behind alike:
	// the host saw a host filesystem the session writes fall below the
	// policy's floor (limits.disk_free). It names no call and has no
	// answer; the calls it ends answer as killed.
	OpStopAll Op = "stop_all"
)

// Request asks the executor to perform one tool call.
type Request struct {
	Call string `json:"call"`
	Op   Op     `json:"op"`
	// Exec fields.
	Argv      []string          `json:"argv,omitempty"`
	Stdin     []byte            `json:"-"` // payload of exec
	Env       map[string]string `json:"env,omitempty"`
	Cwd       string            `json:"cwd,omitempty"`
	TimeoutMS int64             `json:"timeout_ms,omitempty"`
	MaxOutput int64             `json:"max_output,omitempty"`
	Stream    bool              `json:"stream,omitempty"`
	// StdinStream says stdin follows in OpStdin frames instead of Stdin.
	StdinStream bool `json:"stdin_stream,omitempty"`
	// Close ends a streamed stdin.
	Close bool `json:"close,omitempty"`
	// File fields.
	Path   string `json:"path,omitempty"`
	Data   []byte `json:"-"` // payload of write_file
	Mode   uint32 `json:"mode,omitempty"`
	Append bool   `json:"append,omitempty"`
	// Limit caps how many bytes read_file returns (0: the output cap).
	Limit int64 `json:"limit,omitempty"`
	// Received is when the host accepted the call, in Unix microseconds,
	// so the executor can report queueing time.
	Received int64 `json:"received,omitempty"`
	// Plan is the new plan of OpReconfigure.
	Plan *plan.Plan `json:"plan,omitempty"`
	// Ruleset says the new executor is restricted by the Landlock
	// ruleset the host passed on the egress socket just before, not by
	// the supervisor's own.
	Ruleset bool `json:"ruleset,omitempty"`
}

// Kind says what a Response frame carries.
type Kind string

// Response kinds.
const (
	KindStdout Kind = "stdout"
	KindStderr Kind = "stderr"
	KindSpawn  Kind = "spawn"  // executor → supervisor (→ host with plan.LandlockAudit): call's root pid
	KindResult Kind = "result" // the call's final frame
	KindEvent  Kind = "event"  // supervisor → host: an event not tied to a result
	KindReady  Kind = "ready"  // first frame of a stage: setup finished
)

// Response is one frame from the executor or supervisor about a call.
type Response struct {
	Call   string        `json:"call,omitempty"`
	Kind   Kind          `json:"kind"`
	Data   []byte        `json:"-"` // payload of stdout and stderr frames
	PID    int           `json:"pid,omitempty"`
	Result *Result       `json:"result,omitempty"`
	Event  *events.Event `json:"event,omitempty"`
	Ready  *Ready        `json:"ready,omitempty"`
}

// Ready reports a stage's setup: timings and what the kernel granted.
type Ready struct {
	Timing      map[string]int64 `json:"timing,omitempty"`
	LandlockABI int              `json:"landlock_abi"`
	Warnings    []string         `json:"warnings,omitempty"`
	// AuditSession is the kernel audit session id (ses=) of the
	// executor and everything it runs, 0 when it has none of its own
	// (plan.LandlockAudit unset, or the host's login uid was already set).
	AuditSession uint32 `json:"audit_session,omitempty"`
	Error        string `json:"error,omitempty"`
}

// Result is the outcome of one call, as the executor measured it.
type Result struct {
	// Exec outcome.
	ExitCode int    `json:"exit_code"`
	Signal   string `json:"signal,omitempty"`
	// Stdout, Stderr and Data travel in the payload, in that order;
	// StdoutLen and StderrLen split it.
	Stdout    []byte `json:"-"`
	Stderr    []byte `json:"-"`
	StdoutLen int    `json:"stdout_len,omitempty"`
	StderrLen int    `json:"stderr_len,omitempty"`
	Truncated bool   `json:"truncated,omitempty"`
	TimedOut  bool   `json:"timed_out,omitempty"`
	// Limit names the limit that ended the call ("timeout", "output").
	Limit string `json:"limit,omitempty"`
	// File outcome.
	Data    []byte     `json:"-"`
	Entries []FileInfo `json:"entries,omitempty"`
	Info    *FileInfo  `json:"info,omitempty"`
	// Error is a refusal or failure of the call itself (not of a command).
	Error *CallError `json:"error,omitempty"`
	// Denials collected by the supervisor while the call ran.
	Denials []*events.Event `json:"denials,omitempty"`
	// LandlockPending is how many Landlock refusals of writes the
	// supervisor foresaw in the call (set when the host reads the
	// kernel's audit log): the host waits a little for their records
	// before it answers.
	LandlockPending int `json:"landlock_pending,omitempty"`
	// Timing of the call's phases in microseconds.
	Timing map[string]int64 `json:"timing,omitempty"`
	// Sent is when the executor sent the result, in Unix microseconds,
	// so the host can report the way back (return_us).
	Sent int64 `json:"sent,omitempty"`
	// Bytes counts output produced (before truncation) and input taken.
	StdoutBytes int64 `json:"stdout_bytes,omitempty"`
	StderrBytes int64 `json:"stderr_bytes,omitempty"`
	// AuditSession answers OpReconfigure: the new executor's audit
	// session id (Ready.AuditSession of the first one).
	AuditSession uint32 `json:"audit_session,omitempty"`
}

// FileInfo describes one file for stat and list_dir.
type FileInfo struct {
	Name    string `json:"name"`
	Type    string `json:"type"` // "file", "dir", "symlink", "other"
	Size    int64  `json:"size"`
	Mode    uint32 `json:"mode"`
	ModTime int64  `json:"mtime_unix"`
	Target  string `json:"target,omitempty"` // symlink target
}

// CallError codes.
const (
	CodeInvalid  = "invalid"   // bad input: malformed path, NUL byte, empty argv
	CodeDenied   = "denied"    // refused by policy or the kernel
	CodeNotFound = "not_found" // no such file
	CodeFailed   = "failed"    // anything else
)

// CallError is a structured failure of a call.
type CallError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Errno is the kernel's error number when the failure came from a
	// system call (EACCES from Landlock, EROFS from a read-only mount).
	Errno int `json:"errno,omitempty"`
	// Op and Path say what was refused, with the path as the caller
	// named it.
	Op   string `json:"op,omitempty"`
	Path string `json:"path,omitempty"`
}

func (e *CallError) Error() string { return e.Message }

// Conn is one end of a framed link: frames are read from one socket and
// written to another (see NewSplitConn). Send is safe for concurrent use;
// Receive is meant for one reader goroutine.
type Conn struct {
	r  *bufio.Reader
	mu sync.Mutex
	w  io.Writer
	c  io.Closer
}

// NewSplitConn frames two one-way sockets: frames are read from r and
// written to w, and Close closes both. The stages talk this way rather
// than over one socket both ways because the kernel signals a unix
// socket's write space on the same wait queue its readers sleep on: a
// reader blocked on a socket its process also writes to is woken, for
// nothing, each time the peer drains a frame, and on a virtual machine
// such a wake-up of another CPU costs tens of microseconds, paid by the
// peer on its way to its next step.
func NewSplitConn(r io.ReadCloser, w io.WriteCloser) *Conn {
	return &Conn{r: bufio.NewReaderSize(r, 64<<10), w: w, c: closeBoth{r, w}}
}

type closeBoth [2]io.Closer

func (c closeBoth) Close() error { return errors.Join(c[0].Close(), c[1].Close()) }

// Framed is implemented by messages that carry a payload.
type Framed interface {
	payload() [][]byte
	setPayload([]byte) error
}

func (r *Request) payload() [][]byte {
	if r.Op == OpWrite {
		return [][]byte{r.Data}
	}
	return [][]byte{r.Stdin}
}

func (r *Request) setPayload(p []byte) error {
	if r.Op == OpWrite {
		r.Data = p
	} else {
		r.Stdin = p
	}
	return nil
}

func (r *Response) payload() [][]byte {
	if r.Result != nil {
		r.Result.StdoutLen, r.Result.StderrLen = len(r.Result.Stdout), len(r.Result.Stderr)
		return [][]byte{r.Result.Stdout, r.Result.Stderr, r.Result.Data}
	}
	return [][]byte{r.Data}
}

func (r *Response) setPayload(p []byte) error {
	if r.Result == nil {
		r.Data = p
		return nil
	}
	o, e := r.Result.StdoutLen, r.Result.StderrLen
	if o < 0 || e < 0 || o+e > len(p) {
		return errors.New("decoding frame: output lengths exceed the payload")
	}
	r.Result.Stdout, r.Result.Stderr, r.Result.Data = p[:o:o], p[o:o+e:o+e], p[o+e:]
	return nil
}

// Send writes v as one frame, its payload (if v is Framed) raw after the
// JSON header.
func (c *Conn) Send(v any) error {
	var parts [][]byte
	if f, ok := v.(Framed); ok {
		parts = f.payload()
	}
	hdr, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding frame: %w", err)
	}
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if len(hdr)+n > MaxFrame {
		return fmt.Errorf("encoding frame: %d bytes exceeds the %d byte limit", len(hdr)+n, MaxFrame)
	}
	buf := make([]byte, 8, 8+len(hdr)+n)
	binary.BigEndian.PutUint32(buf, uint32(len(hdr)))
	binary.BigEndian.PutUint32(buf[4:], uint32(n))
	buf = append(buf, hdr...)
	for _, p := range parts {
		buf = append(buf, p...)
	}
	return c.write(buf)
}

// ErrFrameTooLarge is returned for a frame over MaxFrame.
var ErrFrameTooLarge = errors.New("frame exceeds size limit")

// Receive reads one frame into v. It returns io.EOF when the peer closed
// the connection between frames.
func (c *Conn) Receive(v any) error {
	f, err := c.ReceiveFrame()
	if err != nil {
		return err
	}
	return f.Decode(v)
}

// Frame is one frame as it travels, for a stage that relays frames
// without encoding them again.
type Frame struct {
	wire []byte // both lengths, the header, the payload
	hdr  int    // the header's length
}

// ReceiveFrame reads one frame without decoding it. It returns io.EOF
// when the peer closed the connection between frames.
func (c *Conn) ReceiveFrame() (*Frame, error) {
	var lens [8]byte
	if _, err := io.ReadFull(c.r, lens[:]); err != nil {
		return nil, err
	}
	h, n := binary.BigEndian.Uint32(lens[:4]), binary.BigEndian.Uint32(lens[4:])
	if uint64(h)+uint64(n) > MaxFrame {
		return nil, ErrFrameTooLarge
	}
	b := make([]byte, 8+int(h)+int(n))
	copy(b, lens[:])
	if _, err := io.ReadFull(c.r, b[8:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return &Frame{wire: b, hdr: int(h)}, nil
}

// Decode decodes the frame into v, whose payload (if v is Framed) then
// shares the frame's memory.
func (f *Frame) Decode(v any) error {
	h, p := f.wire[8:8+f.hdr], f.wire[8+f.hdr:]
	if err := json.Unmarshal(h, v); err != nil {
		return fmt.Errorf("decoding frame: %w", err)
	}
	fr, ok := v.(Framed)
	if !ok {
		if len(p) != 0 {
			return errors.New("decoding frame: unexpected payload")
		}
		return nil
	}
	if len(p) == 0 {
		return fr.setPayload(nil)
	}
	return fr.setPayload(p)
}

// Peek decodes only the frame's header into v, for a relay that looks at
// a few fields: v must not be Framed.
func (f *Frame) Peek(v any) error {
	if err := json.Unmarshal(f.wire[8:8+f.hdr], v); err != nil {
		return fmt.Errorf("decoding frame: %w", err)
	}
	return nil
}

// Bytes is the frame as it travels.
func (f *Frame) Bytes() []byte { return f.wire }

// SendFrame writes a frame as it was received.
func (c *Conn) SendFrame(f *Frame) error {
	return c.write(f.wire)
}

// SendBytes writes the rest of a frame that TrySendFrame left.
func (c *Conn) SendBytes(b []byte) error {
	return c.write(b)
}

func (c *Conn) write(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.w.Write(b); err != nil {
		return fmt.Errorf("sending frame: %w", err)
	}
	return nil
}

// Close closes the underlying connection.
func (c *Conn) Close() error { return c.c.Close() }
