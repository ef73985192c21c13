//go:build !linux

package kaudit

// ReadStatus reports ErrNotSupported: kernel audit is Linux's.
func ReadStatus() (Status, error) { return Status{}, ErrNotSupported }

// Open reports ErrNotSupported: kernel audit is Linux's.
func Open(Options) (*Reader, error) { return nil, ErrNotSupported }

// Reader is never created on this OS.
type Reader struct{}

// Events returns nil.
func (*Reader) Events() <-chan Event { return nil }

// Lost returns zeros.
func (*Reader) Lost() (overflows, dropped uint64) { return 0, 0 }

// Close does nothing.
func (*Reader) Close() error { return nil }

// StatusAlone reports ErrNotSupported: kernel audit is Linux's.
func StatusAlone() (Status, bool, error) { return Status{}, false, ErrNotSupported }
