//go:build !linux || !(amd64 || arm64)

package seccomp

// native is nil where there is no syscall table: Build reports
// ErrNotSupported and Name falls back to "syscall_<nr>".
var native *archInfo
