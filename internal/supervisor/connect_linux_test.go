package supervisor

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

func TestUnixPath(t *testing.T) {
	un := func(b ...byte) []byte {
		a := make([]byte, 2, 2+len(b))
		binary.NativeEndian.PutUint16(a, unix.AF_UNIX)
		return append(a, b...)
	}
	in := func() []byte {
		a := make([]byte, unix.SizeofSockaddrInet4)
		binary.NativeEndian.PutUint16(a, unix.AF_INET)
		return a
	}
	for _, c := range []struct {
		name string
		addr []byte
		path string
		ok   bool
	}{
		{"path with NUL", un([]byte("/etc/x.sock\x00junk")...), "/etc/x.sock", true},
		{"path without NUL (length ends it)", un([]byte("rel/x")...), "rel/x", true},
		{"abstract", un([]byte("\x00name")...), "", false},
		{"unnamed", un(), "", false},
		{"family only, short", []byte{1}, "", false},
		{"inet", in(), "", false},
		{"empty", nil, "", false},
	} {
		path, ok := unixPath(c.addr)
		if path != c.path || ok != c.ok {
			t.Errorf("%s: unixPath = %q, %v; want %q, %v", c.name, path, ok, c.path, c.ok)
		}
	}
	if got, ok := unixPath(sockaddrUnix("/proc/self/fd/7")); !ok || got != "/proc/self/fd/7" {
		t.Errorf("sockaddrUnix does not round-trip: %q %v", got, ok)
	}
}
