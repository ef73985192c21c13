//go:build !unix

package audit

import (
	"errors"
	"os"
)

// lock would keep a second writer from forking the chain; without
// flock(2) Open refuses rather than append unprotected.
func lock(f *os.File) error {
	return errors.New("appending to an audit log is not supported on this OS")
}
