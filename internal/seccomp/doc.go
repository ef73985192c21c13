// Package seccomp builds and installs the executor's seccomp-bpf filter and
// gives the supervisor the raw user-notification calls.
//
// The filter has three outcomes besides ALLOW:
//
//   - SECCOMP_RET_KILL_PROCESS for a foreign architecture or an x32 syscall
//     number, which the filter's tables do not describe;
//   - SECCOMP_RET_USER_NOTIF for the denied set, so that the supervisor
//     answers EPERM and reports a denial that [Explain] turns into a [Rule];
//   - SECCOMP_RET_ERRNO(ENOSYS) for clone3, whose flags live in memory the
//     filter cannot read, so that libc and the Go runtime fall back to clone.
//
// [Build] is pure data and runs anywhere the native architecture has a table
// (amd64 and arm64). [Install], [Receive] and [Respond] are the raw kernel
// layer and return *os.SyscallError. Build, Install, Receive and Respond are
// Linux-only because their signatures use Linux-only x/sys types; the data
// types, [Explain] and [Name] build on every OS.
package seccomp

//go:generate go run mksysnames.go
