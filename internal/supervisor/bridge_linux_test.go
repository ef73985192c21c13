package supervisor

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSockaddrIP(t *testing.T) {
	in4 := make([]byte, unix.SizeofSockaddrInet4)
	binary.NativeEndian.PutUint16(in4, unix.AF_INET)
	binary.BigEndian.PutUint16(in4[2:], 80)
	copy(in4[4:], []byte{192, 0, 2, 1})
	in6 := make([]byte, unix.SizeofSockaddrInet6)
	binary.NativeEndian.PutUint16(in6, unix.AF_INET6)
	binary.BigEndian.PutUint16(in6[2:], 443)
	a6 := netip.MustParseAddr("2001:db8::1").As16()
	copy(in6[8:], a6[:])
	unixAddr := make([]byte, 20)
	binary.NativeEndian.PutUint16(unixAddr, unix.AF_UNIX)

	for _, c := range []struct {
		name string
		b    []byte
		want string // "" when not an IP address
	}{
		{"inet", in4, "192.0.2.1:80"},
		{"inet6", in6, "[2001:db8::1]:443"},
		{"unix", unixAddr, ""},
		{"short inet", in4[:6], ""},
		{"short inet6", in6[:20], ""},
		{"empty", nil, ""},
	} {
		got, ok := sockaddrIP(c.b)
		if (c.want == "") == ok || ok && got.String() != c.want {
			t.Errorf("%s: %v %v, want %q", c.name, got, ok, c.want)
		}
	}
}
