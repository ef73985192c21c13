package seccomp

import (
	"fmt"
	"slices"

	"golang.org/x/net/bpf"
)

// Filter return values (include/uapi/linux/seccomp.h). Spelled out here so
// that program construction builds on every OS; filter_linux_test.go checks
// them against golang.org/x/sys/unix.
const (
	retKillProcess = 0x80000000
	retErrno       = 0x00050000
	retUserNotif   = 0x7fc00000
	retAllow       = 0x7fff0000
)

// Offsets into struct seccomp_data.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

// maxInstructions is BPF_MAXINSNS, the kernel's limit on a filter's length.
const maxInstructions = 4096

// leaf is the verdict for a syscall number: a plain return, or an argument
// check that ends in one.
type leaf uint8

const (
	leafAllow leaf = iota
	leafNotify
	leafENOSYS
	leafUnshare     // notify if arg0 has a namespace flag
	leafClone       // notify if arg0 has a namespace flag (not CLONE_NEWTIME)
	leafIoctl       // notify if arg1 is TIOCSTI or TIOCLINUX
	leafPersonality // notify unless arg0 is an allowed persona
	leafOpenFlags1  // notify if arg1 (open's flags) has a write flag
	leafOpenFlags2  // notify if arg2 (openat's flags) has a write flag
	leafSocket      // notify for AF_VSOCK, and for AF_UNIX with type SOCK_DGRAM
	leafFchmod      // notify if arg1 (the mode) has S_ISUID or S_ISGID
)

// span is a run of syscall numbers [lo, next span's lo) with one verdict.
type span struct {
	lo   uint32
	leaf leaf
}

// verdicts returns, for every syscall number the filter does not simply
// allow, what it does with it.
func verdicts(a *archInfo, opts Options) (map[uint32]leaf, error) {
	v := make(map[uint32]leaf)
	for _, d := range denials {
		if opts.AllowPtrace && d.capability == capPtrace {
			continue
		}
		if nr, ok := a.number(d.name); ok {
			v[uint32(nr)] = leafNotify
		}
	}
	for name, l := range map[string]leaf{
		"unshare":     leafUnshare,
		"clone":       leafClone,
		"ioctl":       leafIoctl,
		"personality": leafPersonality,
		"clone3":      leafENOSYS,
		"connect":     leafNotify, // checked, not denied: see Watched
		"socket":      leafSocket,
		"socketpair":  leafSocket,
		"fchmod":      leafFchmod,
	} {
		nr, ok := a.number(name)
		if !ok {
			return nil, fmt.Errorf("building seccomp filter: no syscall number for %s", name)
		}
		v[uint32(nr)] = l
	}
	if opts.CheckAllocations {
		nr, ok := a.number("fallocate")
		if !ok {
			return nil, fmt.Errorf("building seccomp filter: no syscall number for fallocate")
		}
		v[uint32(nr)] = leafNotify
	}
	if opts.ObserveWrites {
		for name := range observed {
			nr, ok := a.number(name)
			if !ok {
				continue
			}
			switch name {
			case "open":
				v[uint32(nr)] = leafOpenFlags1
			case "openat":
				v[uint32(nr)] = leafOpenFlags2
			default:
				v[uint32(nr)] = leafNotify
			}
		}
	}
	return v, nil
}

// spans partitions [0, 2^32) into runs of equal verdict, merging neighbours
// that end in the same plain return (mount..reboot is one span on amd64).
func spans(v map[uint32]leaf) []span {
	nrs := make([]uint32, 0, len(v))
	for nr := range v {
		nrs = append(nrs, nr)
	}
	slices.Sort(nrs)

	s := []span{{lo: 0, leaf: leafAllow}}
	push := func(lo uint32, l leaf) {
		if n := len(s); s[n-1].lo == lo {
			s = s[:n-1]
		}
		if n := len(s); n > 0 && s[n-1].leaf == l && l <= leafENOSYS {
			return
		}
		s = append(s, span{lo: lo, leaf: l})
	}
	for _, nr := range nrs {
		push(nr, v[nr])
		if nr != ^uint32(0) {
			push(nr+1, leafAllow)
		}
	}
	return s
}

// program returns the filter for architecture a.
//
// Layout:
//
//	ld  arch; jeq AUDIT_ARCH -> next, else ret KILL_PROCESS
//	ld  nr;   jset X32_BIT   -> ret KILL_PROCESS            (amd64)
//	binary search over the spans on nr, each leaf a ret or an argument check
//
// The search costs at most ceil(log2(spans)) comparisons (7 on amd64) for any
// syscall, where a linear chain costs one per denied syscall for every
// allowed call, which is the common case. The dispatch loads only arch and
// nr and uses only jeq/jge/jset and ret, so the kernel's constant-action
// cache (Linux 5.11+) can prove every unconditionally allowed number ALLOW
// and skip the filter for it altogether; arguments are loaded only in the
// leaves of unshare, clone, ioctl and personality, and with ObserveWrites
// of open and openat.
func program(a *archInfo, opts Options) ([]bpf.Instruction, error) {
	if a == nil {
		return nil, ErrNotSupported
	}
	v, err := verdicts(a, opts)
	if err != nil {
		return nil, err
	}
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: offArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: a.auditArch, SkipTrue: 1},
		bpf.RetConstant{Val: retKillProcess},
		bpf.LoadAbsolute{Off: offNr, Size: 4},
	}
	if a.x32Bit != 0 {
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: a.x32Bit, SkipFalse: 1},
			bpf.RetConstant{Val: retKillProcess},
		)
	}
	tree, err := search(spans(v), a)
	if err != nil {
		return nil, err
	}
	prog = append(prog, tree...)
	if len(prog) > maxInstructions {
		return nil, fmt.Errorf("building seccomp filter: %d instructions exceed the kernel limit of %d", len(prog), maxInstructions)
	}
	return prog, nil
}

// search emits a binary search over s on the syscall number in A: each node
// is "jge s[mid].lo" with the lower half inline after it and the upper half
// after that, so only the true branch jumps, over the lower half.
func search(s []span, a *archInfo) ([]bpf.Instruction, error) {
	if len(s) == 1 {
		return leafCode(s[0].leaf, a), nil
	}
	mid := len(s) / 2
	lower, err := search(s[:mid], a)
	if err != nil {
		return nil, err
	}
	upper, err := search(s[mid:], a)
	if err != nil {
		return nil, err
	}
	if len(lower) > 0xff {
		return nil, fmt.Errorf("building seccomp filter: jump over %d instructions exceeds a conditional jump's reach", len(lower))
	}
	out := make([]bpf.Instruction, 0, 1+len(lower)+len(upper))
	out = append(out, bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: s[mid].lo, SkipTrue: uint8(len(lower))})
	out = append(out, lower...)
	return append(out, upper...), nil
}

// argLow loads the low 32 bits of argument i into A.
//
// seccomp_data.args are 64-bit, classic BPF loads 32-bit words in native
// byte order. Every argument the filter tests is truncated to 32 bits by the
// kernel before use: ioctl's cmd and personality's persona are unsigned int,
// open's and openat's flags are int,
// clone(2) keeps lower_32_bits(clone_flags), and unshare's namespace flags
// all sit in the low word (unshare rejects unknown high bits with EINVAL).
// So the high word cannot change what the call does, and comparing only the
// low word is exact; in particular high garbage cannot hide TIOCSTI.
func argLow(i int, a *archInfo) bpf.Instruction {
	off := uint32(offArgs + 8*i)
	if a.bigEndian {
		off += 4
	}
	return bpf.LoadAbsolute{Off: off, Size: 4}
}

func leafCode(l leaf, a *archInfo) []bpf.Instruction {
	notify := bpf.RetConstant{Val: retUserNotif}
	allow := bpf.RetConstant{Val: retAllow}
	switch l {
	case leafNotify:
		return []bpf.Instruction{notify}
	case leafENOSYS:
		return []bpf.Instruction{bpf.RetConstant{Val: retErrno | a.enosys}}
	case leafSocket:
		// socket(family, type, protocol) and socketpair(family, type,
		// protocol, sv): the type's low four bits are the kind, the rest
		// SOCK_NONBLOCK and SOCK_CLOEXEC.
		return []bpf.Instruction{
			argLow(0, a),
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: afVsock, SkipTrue: 4},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: afUnix, SkipFalse: 4},
			argLow(1, a),
			bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: sockTypeMask},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: sockDgram, SkipFalse: 1},
			notify,
			allow,
		}
	case leafUnshare, leafClone, leafOpenFlags1, leafOpenFlags2, leafFchmod:
		arg, mask := 0, uint32(unshareNSMask)
		switch l {
		case leafFchmod:
			arg, mask = 1, setIDBits
		case leafClone:
			mask = cloneNSMask
		case leafOpenFlags1:
			arg, mask = 1, openWriteFlags
		case leafOpenFlags2:
			arg, mask = 2, openWriteFlags
		}
		return []bpf.Instruction{
			argLow(arg, a),
			bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: mask, SkipFalse: 1},
			notify,
			allow,
		}
	case leafIoctl:
		return []bpf.Instruction{
			argLow(1, a),
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: ioctlTIOCSTI, SkipTrue: 2},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: ioctlTIOCLINUX, SkipTrue: 1},
			allow,
			notify,
		}
	case leafPersonality:
		n := len(allowedPersonalities)
		out := []bpf.Instruction{argLow(0, a)}
		for i, p := range allowedPersonalities {
			// On a match, skip the remaining compares and the notify.
			out = append(out, bpf.JumpIf{Cond: bpf.JumpEqual, Val: p, SkipTrue: uint8(n - i)})
		}
		return append(out, notify, allow)
	default:
		return []bpf.Instruction{allow}
	}
}
