package kaudit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Files through which the processes that read the audit log at the same
// time share the duty of restoring the host's setting. Every such
// process holds a shared flock on sharedUsers while it reads; changes
// are made holding an exclusive flock on sharedLock, which also holds the
// setting to put back ("enabled daemon-pid") while some process has
// auditing on for cordon. A process that finds no other user (its try
// for an exclusive lock on sharedUsers succeeds) is the first, or the
// last; locks die with their process, so one that crashed leaves no
// user behind, and its record tells the next one what to restore.
var (
	sharedLock  = "/run/cordon-kaudit.lock"
	sharedUsers = "/run/cordon-kaudit.users"
)

type sharedState struct {
	lockFile, usersFile *os.File
}

type savedState struct {
	prev, daemon uint32
}

// lockShared takes the lock and joins the users; alone says no other
// process reads. It returns nil where the files cannot be used.
func lockShared() (s *sharedState, alone bool) {
	var l *os.File
	for {
		var err error
		if l, err = os.OpenFile(sharedLock, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
			return nil, false
		}
		_ = flock(l, unix.LOCK_EX)
		// The last user removes the files holding the lock: a lock
		// taken on a file that is no longer at its path is no lock.
		var held, now unix.Stat_t
		if unix.Fstat(int(l.Fd()), &held) == nil && unix.Stat(sharedLock, &now) == nil && held.Ino == now.Ino && held.Dev == now.Dev {
			break
		}
		l.Close()
	}
	u, err := os.OpenFile(sharedUsers, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		l.Close()
		return nil, false
	}
	s = &sharedState{lockFile: l, usersFile: u}
	// Under the lock nobody else converts theirs, so this try and the
	// shared lock after it are one step for the others.
	alone = flock(u, unix.LOCK_EX|unix.LOCK_NB) == nil
	if flock(u, unix.LOCK_SH) != nil {
		s.unlock()
		l.Close()
		u.Close()
		return nil, false
	}
	return s, alone
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

// lock takes the lock again (release); the files stay while this process
// is a user, so the path check of lockShared is not needed.
func (s *sharedState) lock() { _ = flock(s.lockFile, unix.LOCK_EX) }

func (s *sharedState) unlock() { _ = flock(s.lockFile, unix.LOCK_UN) }

// leave drops this process from the users (hold the lock) and closes the
// users file; last says no other process reads. The last one removes
// both files, unless a setting to put back is recorded.
func (s *sharedState) leave() (last bool) {
	_ = flock(s.usersFile, unix.LOCK_UN)
	last = flock(s.usersFile, unix.LOCK_EX|unix.LOCK_NB) == nil
	s.usersFile.Close()
	if _, saved := s.load(); last && !saved {
		_ = os.Remove(sharedUsers)
		_ = os.Remove(sharedLock)
	}
	return last
}

// load reads the setting to put back, if one is recorded.
func (s *sharedState) load() (savedState, bool) {
	if s == nil {
		return savedState{}, false
	}
	b := make([]byte, 64)
	n, _ := s.lockFile.ReadAt(b, 0)
	f := strings.Fields(string(b[:n]))
	if len(f) != 2 {
		return savedState{}, false
	}
	prev, err1 := strconv.ParseUint(f[0], 10, 32)
	daemon, err2 := strconv.ParseUint(f[1], 10, 32)
	if err1 != nil || err2 != nil {
		return savedState{}, false
	}
	return savedState{prev: uint32(prev), daemon: uint32(daemon)}, true
}

func (s *sharedState) save(v savedState) {
	_ = s.lockFile.Truncate(0)
	_, _ = s.lockFile.WriteAt([]byte(fmt.Sprintf("%d %d\n", v.prev, v.daemon)), 0)
}

// clear forgets the setting.
func (s *sharedState) clear() { _ = s.lockFile.Truncate(0) }

// close unlocks and closes the lock file.
func (s *sharedState) close() {
	s.unlock()
	s.lockFile.Close()
}

// StatusAlone reads the host's audit settings as ReadStatus does and
// reports whether no process was reading the audit log for cordon at
// that moment (none held the users file). Only such a reading is the
// host's own: while readers come and go, the settings are what the first
// of them set, and the last one out puts the host's back. Checks that a
// host is left as it was found (tests, diagnostics) compare only
// readings taken alone. It creates no file.
func StatusAlone() (Status, bool, error) {
	// Hold the lock, if there is one, so that no reader joins or leaves
	// between the look at the users and the reading.
	for {
		l, err := os.OpenFile(sharedLock, os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			break // no lock file: no reader
		}
		if err != nil {
			return Status{}, false, err
		}
		if err := flock(l, unix.LOCK_EX); err != nil {
			l.Close()
			return Status{}, false, os.NewSyscallError("flock", err)
		}
		var held, now unix.Stat_t
		if unix.Fstat(int(l.Fd()), &held) == nil && unix.Stat(sharedLock, &now) == nil && held.Ino == now.Ino && held.Dev == now.Dev {
			defer l.Close() // releases the lock
			break
		}
		l.Close()
	}
	alone := true
	switch u, err := os.Open(sharedUsers); {
	case err == nil:
		// A reader holds the users file shared: the lock is refused.
		err = flock(u, unix.LOCK_EX|unix.LOCK_NB)
		u.Close()
		if err != nil && err != unix.EWOULDBLOCK {
			return Status{}, false, os.NewSyscallError("flock", err)
		}
		alone = err == nil
	case !errors.Is(err, fs.ErrNotExist):
		return Status{}, false, err
	}
	st, err := ReadStatus()
	return st, alone, err
}
