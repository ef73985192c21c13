package linux

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// TestAddAddress adds addresses to lo in a network namespace of a child
// of its own (in a user namespace, so it runs as any user) and reads
// them back.
func TestAddAddress(t *testing.T) {
	if os.Getenv("CORDON_TEST_NETLINK_CHILD") == "1" {
		if err := LoopbackUp(); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"203.0.113.10/32", "2001:db8:1::10/128"} {
			if err := AddAddress("lo", netip.MustParsePrefix(p)); err != nil {
				t.Fatal(err)
			}
		}
		if err := AddAddress("lo", netip.MustParsePrefix("203.0.113.10/32")); err == nil {
			t.Error("adding an address twice: no error")
		}
		ifi, _ := net.InterfaceByName("lo")
		addrs, _ := ifi.Addrs()
		var got []string
		for _, a := range addrs {
			got = append(got, a.String())
		}
		for _, want := range []string{"203.0.113.10/32", "2001:db8:1::10/128"} {
			if !strings.Contains(strings.Join(got, " "), want) {
				t.Errorf("lo has %v, not %s", got, want)
			}
		}
		if _, err := net.Listen("tcp", "[2001:db8:1::10]:0"); err != nil {
			t.Errorf("listen on the new IPv6 address: %v", err)
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestAddAddress$", "-test.v")
	cmd.Env = append(os.Environ(), "CORDON_TEST_NETLINK_CHILD=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}},
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
