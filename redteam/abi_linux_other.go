//go:build linux && !amd64

package redteam

import "fmt"

// abiCall is amd64's foreign-entry system call (abi_linux_amd64.go).
type abiCall struct{ abi, name string }

var abiCalls []abiCall

func probeABI([]string) { fmt.Println("no foreign system call entry is probed on this architecture") }
