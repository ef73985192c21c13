package seccomp

// Allocation reports whether the syscall is fallocate, which
// Options.CheckAllocations hands to the supervisor. Its notification is
// a check, not a denial: the supervisor answers it with Continue, or
// with ENOSPC when the allocation would take a host filesystem's free
// space below the session's floor. Every argument the check needs (the
// mode and the length) is a register, so the verdict cannot be raced.
func Allocation(nr int32) bool { return Name(nr) == "fallocate" }

// fallocate(2) mode bits that free space rather than allocate it
// (include/uapi/linux/falloc.h; the same on every architecture).
const (
	fallocPunchHole     = 0x02
	fallocCollapseRange = 0x08
)

// AllocationSize returns how many bytes a notified fallocate may
// allocate: its length, or 0 when it cannot allocate anything (a hole
// punched or a range collapsed, which free space; a length the kernel
// refuses with EINVAL).
func AllocationSize(n Notification) int64 {
	mode, length := uint32(n.Args[1]), int64(n.Args[3])
	if mode&(fallocPunchHole|fallocCollapseRange) != 0 || length <= 0 {
		return 0
	}
	return length
}
