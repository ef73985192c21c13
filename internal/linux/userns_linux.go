package linux

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// NSHolderStage is the hidden argv[1] of the process that holds a user
// namespace open while UserNamespace takes a descriptor of it.
const NSHolderStage = "__cordon_nsholder"

// HoldNamespace is the holder's main: it waits for its stdin to close.
func HoldNamespace() {
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// UserNamespace returns a descriptor of a new user namespace that maps
// uid inside to uidOutside and gid inside to gidOutside, one id each, for
// use as a mount idmapping. Go cannot fork without exec, so a short-lived
// holder process (this binary, re-executed) creates the namespace.
func UserNamespace(uid, uidOutside, gid, gidOutside int) (*os.File, error) {
	cmd := exec.Command("/proc/self/exe", NSHolderStage)
	cmd.Env = []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: uid, HostID: uidOutside, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: gid, HostID: gidOutside, Size: 1}},
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the user namespace holder: %w", err)
	}
	f, err := os.Open("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/user")
	stdin.Close()
	if werr := cmd.Wait(); err == nil && werr != nil {
		err = fmt.Errorf("user namespace holder: %w", werr)
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		return nil, err
	}
	return f, nil
}
