//go:build !linux

package stage

// Dispatch does nothing: sessions exist only on Linux.
func Dispatch() {}
