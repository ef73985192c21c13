package seccomp

import "golang.org/x/sys/unix"

var native = &archInfo{
	auditArch: unix.AUDIT_ARCH_X86_64,
	// __X32_SYSCALL_BIT: the x32 ABI shares AUDIT_ARCH_X86_64, so the
	// filter must reject these numbers itself or x32 calls would be matched
	// against the x86_64 table.
	x32Bit: 0x40000000,
	enosys: uint32(unix.ENOSYS),
	names:  sysNames,
}
