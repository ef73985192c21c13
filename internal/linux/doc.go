// Package linux is cordon's raw kernel layer: thin wrappers around the
// system calls that build and lock down a session. Each wrapper retries
// EINTR where the call can be interrupted and returns *os.SyscallError or
// *os.PathError so that errors.Is(err, unix.EPERM) works for callers.
// Nothing here knows about policy.
package linux
