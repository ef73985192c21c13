package linux

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
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

// UserNamespace returns a descriptor of a user namespace that maps uid
// inside to uidOutside and gid inside to gidOutside, one id each, for use
// as a mount idmapping. Namespaces are cached by mapping: a daemon opening
// sessions for one user makes the namespace once. The descriptor is
// shared; callers must not close it.
//
// Go cannot fork without exec, so a holder process creates the namespace:
// this binary, started traced, so that it stops at its first instruction
// after execve (no runtime start-up to pay for) until the namespace is
// taken and the holder killed.
func UserNamespace(uid, uidOutside, gid, gidOutside int) (*os.File, error) {
	key := [4]int{uid, uidOutside, gid, gidOutside}
	usernsCache.Lock()
	defer usernsCache.Unlock()
	if f, ok := usernsCache.m[key]; ok {
		return f, nil
	}
	cmd := exec.Command("/proc/self/exe", NSHolderStage)
	cmd.Env = []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: uid, HostID: uidOutside, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: gid, HostID: gidOutside, Size: 1}},
		Ptrace:      true,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the user namespace holder: %w", err)
	}
	f, err := os.Open("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/user")
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if err != nil {
		return nil, err
	}
	if usernsCache.m == nil {
		usernsCache.m = map[[4]int]*os.File{}
	}
	usernsCache.m[key] = f
	return f, nil
}

var usernsCache struct {
	sync.Mutex
	m map[[4]int]*os.File
}
