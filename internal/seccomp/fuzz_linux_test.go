//go:build linux && (amd64 || arm64)

package seccomp

import (
	"testing"

	"golang.org/x/sys/unix"
)

// model is the design's statement of the filter, written without the
// package's tables, which the VM run of the real filter must agree with.
type model struct {
	opts    Options
	denied  map[int32]bool
	unshare int32
	clone   int32
	ioctl   int32
	persona int32
	clone3  int32
}

func newModel(t testing.TB, opts Options) *model {
	m := &model{opts: opts, denied: map[int32]bool{}}
	names := specDenied
	if !opts.AllowPtrace {
		names = append(append([]string{}, specDenied...), specPtrace...)
	}
	for _, n := range names {
		if nr, ok := resolve(t, n); ok {
			m.denied[nr] = true
		}
	}
	m.unshare, m.clone, m.ioctl = unix.SYS_UNSHARE, unix.SYS_CLONE, unix.SYS_IOCTL
	m.persona, m.clone3 = unix.SYS_PERSONALITY, unix.SYS_CLONE3
	return m
}

func (m *model) verdict(c call) uint32 {
	if c.arch != native.auditArch {
		return kill
	}
	if native.x32Bit != 0 && uint32(c.nr)&native.x32Bit != 0 {
		return kill
	}
	const ns = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
	switch {
	case m.denied[c.nr]:
		return notify
	case c.nr == m.clone3:
		return enosys
	case c.nr == m.unshare:
		if uint32(c.args[0])&(ns|0x80) != 0 {
			return notify
		}
	case c.nr == m.clone:
		if uint32(c.args[0])&ns != 0 {
			return notify
		}
	case c.nr == m.ioctl:
		if cmd := uint32(c.args[1]); cmd == 0x5412 || cmd == 0x541c {
			return notify
		}
	case c.nr == m.persona:
		switch uint32(c.args[0]) {
		case 0, 8, 0x20000, 0x20008, 0xffffffff:
		default:
			return notify
		}
	}
	return allow
}

// FuzzFilter runs the assembled filter in the BPF VM on arbitrary
// seccomp_data and checks it against the model: a foreign arch or the x32
// bit always kills, numbers outside the denied and conditional set always
// allow, and the conditional syscalls decide on the low argument word only.
func FuzzFilter(f *testing.F) {
	f.Add(native.auditArch, int32(unix.SYS_READ), uint64(0), uint64(0), uint64(0), false)
	f.Add(native.auditArch, int32(unix.SYS_IOCTL), uint64(0), uint64(0x1_0000_5412), uint64(0), false)
	f.Add(native.auditArch, int32(unix.SYS_UNSHARE), uint64(0x10000000), uint64(0), uint64(0), false)
	f.Add(native.auditArch, int32(unix.SYS_CLONE), uint64(0x80|0x100), uint64(0), uint64(0), false)
	f.Add(native.auditArch, int32(unix.SYS_PERSONALITY), uint64(0x20008), uint64(0), uint64(0), false)
	f.Add(native.auditArch, int32(unix.SYS_PTRACE), uint64(0), uint64(0), uint64(0), true)
	f.Add(native.auditArch, int32(0x40000000), uint64(0), uint64(0), uint64(0), false)
	f.Add(uint32(unix.AUDIT_ARCH_I386), int32(unix.SYS_MOUNT), uint64(0), uint64(0), uint64(0), false)

	filters := map[bool]filterVM{false: newVM(f, Options{}), true: newVM(f, Options{AllowPtrace: true})}
	models := map[bool]*model{false: newModel(f, Options{}), true: newModel(f, Options{AllowPtrace: true})}

	f.Fuzz(func(t *testing.T, arch uint32, nr int32, a0, a1, a2 uint64, allowPtrace bool) {
		c := call{arch: arch, nr: nr, ip: a2 ^ a0, args: [6]uint64{a0, a1, a2, a1, a0, a2}}
		check(t, filters[allowPtrace], models[allowPtrace], c, allowPtrace)
		// Random int32s seldom land on a real syscall; fold the same input
		// into the populated range too.
		c.nr = nr & 0x3ff
		check(t, filters[allowPtrace], models[allowPtrace], c, allowPtrace)
	})
}

func check(t *testing.T, f filterVM, m *model, c call, allowPtrace bool) {
	t.Helper()
	got, want := f.run(t, c), m.verdict(c)
	if got != want {
		t.Fatalf("arch %#x nr %d args %#x AllowPtrace=%v: filter %s, model %s",
			c.arch, c.nr, c.args[:3], allowPtrace, verdictName(got), verdictName(want))
	}
	// The invariants, stated directly.
	if c.arch != native.auditArch && got != kill {
		t.Fatalf("foreign arch %#x not killed", c.arch)
	}
	if c.arch == native.auditArch && native.x32Bit != 0 && uint32(c.nr)&native.x32Bit != 0 && got != kill {
		t.Fatalf("x32 number %#x not killed", uint32(c.nr))
	}
}
