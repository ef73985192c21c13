package kaudit

import (
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/cordon-sandbox/cordon/internal/seccomp"
)

// Event is one thing the kernel told about Landlock: a denial, or a
// domain that appeared in the log or went away. Exactly one field is set.
type Event struct {
	Denial *Denial
	Domain *Domain
}

// Denial is one access that Landlock refused and logged: an
// AUDIT_LANDLOCK_ACCESS record joined with the AUDIT_SYSCALL and
// AUDIT_PROCTITLE records of the same audit event. One system call can
// be refused on more than one object (a rename: the source and the
// destination directory); each object is its own Denial with the same
// Serial.
type Denial struct {
	Time   time.Time // when the kernel logged it, to the millisecond
	Serial uint64    // the audit event's serial number

	// Domain is the id of the youngest Landlock domain that refused the
	// access, in hex as the kernel writes it ("1d7f0b02e"). A nested
	// domain (one a tool created for itself inside the session) has an
	// id of its own.
	Domain string
	// Blockers are the kernel's names of the refused access rights,
	// "fs.write_file" (see Op for cordon's names).
	Blockers []string

	// The object. Which of these are set depends on the blocker.
	//
	// Path is as the denied process saw it, from its own root: for the
	// fs.make_*, fs.remove_* and fs.refer blockers it is the directory in
	// which the entry was to be made or removed, not the entry itself
	// (the kernel does not log the name). For scope.abstract_unix_socket
	// it is the socket's name, starting with a NUL byte.
	Path string
	Dev  string // the file system's device name ("vda", "tmpfs")
	Ino  uint64
	// IoctlCmd is the refused ioctl request for fs.ioctl_dev ("0x5401").
	IoctlCmd string
	// Addr and Port are the address and TCP port of net.bind_tcp
	// (local) and net.connect_tcp (remote); Port is 0 when the kernel
	// left it out (a bind to port 0).
	Addr string
	Port int
	// TargetPID and TargetComm are the process a scope.signal denial
	// was aimed at, TargetPID in the initial PID namespace.
	TargetPID  int
	TargetComm string
	// Fields holds every field of the access record, decoded, including
	// the ones above, for what a later kernel adds.
	Fields map[string]string

	// The process, from the AUDIT_SYSCALL record. HasSyscall is false
	// when the event had none (a task that was created before audit was
	// first enabled has no syscall audit context): then only Domain
	// attributes the denial.
	HasSyscall bool
	// PID and PPID are in the initial PID namespace, not the session's.
	PID  int
	PPID int
	UID  int // in the initial user namespace
	// LoginUID (auid) and AuditSession (ses) are the process's audit
	// login uid and session id, inherited by every descendant and
	// unchangeable without CAP_AUDIT_CONTROL once set; NoLoginUID
	// (4294967295) when never set. A supervisor that sets its own
	// loginuid before it drops privileges marks every denial of its
	// session with an AuditSession of its own.
	LoginUID     uint32
	AuditSession uint32
	// Syscall is the system call's number on Arch (an AUDIT_ARCH_*
	// value); SyscallName is its name when Arch is this binary's own.
	Syscall     int
	SyscallName string
	Arch        uint32
	Exit        int // the system call's result, -errno on failure
	Comm        string
	Exe         string
	// Argv is the command line from AUDIT_PROCTITLE, cut by the kernel
	// at 128 bytes. The kernel reads it at the first audit event a task
	// logs and keeps it for the task's life: after an execve by a task
	// that had logged before (a shell refused a redirection, then exec'd
	// a tool), it is the old program's. Comm and Exe are current.
	Argv []string
}

// Domain is an AUDIT_LANDLOCK_DOMAIN record. The kernel writes one with
// Status "allocated" just before a domain's first logged denial (in the
// same audit event), and one with Status "deallocated" when a domain that
// was logged is freed (its last process is gone).
type Domain struct {
	Time   time.Time
	Serial uint64
	ID     string // as in Denial.Domain
	Status string // "allocated" or "deallocated"

	// On allocation: who created the domain. PID is the thread that
	// called landlock_restrict_self(2) (a thread id, in the initial PID
	// namespace; the thread may be long gone), UID its user in the
	// initial user namespace.
	Mode string // "enforcing"
	PID  int
	UID  int
	Exe  string
	Comm string

	// Denials is, on deallocation, how many accesses the domain refused
	// in its life, logged or not. More than the Denials seen means some
	// were not logged (denials in the restricting executable itself
	// without LOG_SAME_EXEC, audit disabled for a time) or were lost.
	Denials uint64
}

// NoLoginUID is the audit login uid and session id of a process that
// never had one set: (uid_t)-1.
const NoLoginUID = 4294967295

// ops maps Landlock's names of access rights (security/landlock/audit.c)
// to cordon's operation names where they differ; the others keep the
// kernel's name.
var ops = map[string]string{
	"fs.write_file": "fs.write",
	"fs.truncate":   "fs.write",
	"fs.read_file":  "fs.read",
	"fs.read_dir":   "fs.read",
	"fs.execute":    "fs.exec",
}

// Op returns cordon's operation name for a Landlock blocker:
// "fs.write" for fs.write_file and fs.truncate, "fs.read" for
// fs.read_file and fs.read_dir, "fs.exec" for fs.execute, and the
// kernel's own name for the rest (fs.make_reg, fs.make_dir, fs.remove_file,
// fs.refer, fs.ioctl_dev, fs.change_topology, net.bind_tcp,
// net.connect_tcp, scope.signal, scope.abstract_unix_socket, ptrace, and
// anything a later kernel adds).
func Op(blocker string) string {
	if op, ok := ops[blocker]; ok {
		return op
	}
	return blocker
}

// Ops returns the operation names of d's blockers, each once, in the
// kernel's order.
func (d *Denial) Ops() []string {
	var out []string
	for _, b := range d.Blockers {
		op := Op(b)
		dup := false
		for _, o := range out {
			dup = dup || o == op
		}
		if !dup {
			out = append(out, op)
		}
	}
	return out
}

// denialFrom builds a Denial from an access record and the event's
// syscall and proctitle records (either may be zero).
func denialFrom(acc, sys, title record, hasSys, hasTitle bool) *Denial {
	d := &Denial{
		Time:     acc.Time,
		Serial:   acc.Serial,
		Domain:   acc.get("domain"),
		Path:     acc.get("path"),
		Dev:      acc.get("dev"),
		IoctlCmd: acc.get("ioctlcmd"),
		Fields:   make(map[string]string, len(acc.Fields)),
	}
	for _, f := range acc.Fields {
		d.Fields[f.Key] = decode(f.Key, f.Value)
	}
	if b := acc.get("blockers"); b != "" {
		d.Blockers = strings.Split(b, ",")
	}
	if ino, err := strconv.ParseUint(acc.get("ino"), 10, 64); err == nil {
		d.Ino = ino
	}
	switch {
	case acc.get("daddr") != "":
		d.Addr, d.Port = acc.get("daddr"), int(acc.int("dest"))
	case acc.get("saddr") != "":
		d.Addr, d.Port = acc.get("saddr"), int(acc.int("src"))
	}
	if _, ok := acc.raw("opid"); ok {
		d.TargetPID = int(acc.int("opid"))
		d.TargetComm = acc.get("ocomm")
	}
	if hasSys {
		d.HasSyscall = true
		d.PID = int(sys.int("pid"))
		d.PPID = int(sys.int("ppid"))
		d.UID = int(sys.int("uid"))
		d.LoginUID = uint32(sys.uint("auid", NoLoginUID))
		d.AuditSession = uint32(sys.uint("ses", NoLoginUID))
		d.Syscall = int(sys.int("syscall"))
		d.Exit = int(sys.int("exit"))
		d.Comm = sys.get("comm")
		d.Exe = sys.get("exe")
		if a, err := strconv.ParseUint(sys.get("arch"), 16, 32); err == nil {
			d.Arch = uint32(a)
		}
		if d.Arch != 0 && d.Arch == nativeAuditArch() {
			d.SyscallName = seccomp.Name(int32(d.Syscall))
		}
	}
	if hasTitle {
		if t := strings.TrimRight(title.get("proctitle"), "\x00"); t != "" {
			d.Argv = strings.Split(t, "\x00")
		}
	}
	return d
}

func domainFrom(r record) *Domain {
	d := &Domain{
		Time:   r.Time,
		Serial: r.Serial,
		ID:     r.get("domain"),
		Status: r.get("status"),
		Mode:   r.get("mode"),
		PID:    int(r.int("pid")),
		UID:    int(r.int("uid")),
		Exe:    r.get("exe"),
		Comm:   r.get("comm"),
	}
	if n, err := strconv.ParseUint(r.get("denials"), 10, 64); err == nil {
		d.Denials = n
	}
	return d
}

// nativeAuditArch is the AUDIT_ARCH_* value of this binary's own
// architecture, whose syscall numbers seccomp.Name knows.
func nativeAuditArch() uint32 {
	switch runtime.GOARCH {
	case "amd64":
		return 0xc000003e // AUDIT_ARCH_X86_64
	case "arm64":
		return 0xc00000b7 // AUDIT_ARCH_AARCH64
	}
	return 0
}
