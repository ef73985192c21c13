package seccomp

import "golang.org/x/sys/unix"

// arm64 has no x32-style second ABI under the same audit arch; AArch32
// (compat) tasks report AUDIT_ARCH_ARM and are killed by the arch check.
var native = &archInfo{
	auditArch: unix.AUDIT_ARCH_AARCH64,
	enosys:    uint32(unix.ENOSYS),
	names:     sysNames,
}
