package redteam

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// RootPrepEnv names the environment variable that points a rootless run
// at what a root parent planted for it (PrepareRootless).
const RootPrepEnv = "CORDON_REDTEAM_ROOT_PREP"

// RootPrep is what only root can plant and the root-needing cases read:
// a root-only file and another uid's file in /etc (R04), and a directory
// in /etc for a world-connectable socket under the read-only /etc bind
// (E11), owned by the harness so that a rootless harness can listen there.
type RootPrep struct {
	RootFile, OtherFile     string
	RootCanary, OtherCanary string
	EtcDir                  string
	// TwinFile is a 0600 file in /etc like RootFile but owned by the
	// harness, holding TwinToken: the control of a harness that cannot
	// read RootFile itself.
	TwinFile, TwinToken string
}

// plantRoot creates prep's files (as root) for a harness of uid and gid;
// undo removes them.
func plantRoot(uid, gid int) (prep *RootPrep, undo func(), err error) {
	tag := randHex(6)
	prep = &RootPrep{
		RootFile: "/etc/cordon-redteam-root-" + tag, OtherFile: "/etc/cordon-redteam-other-" + tag,
		RootCanary: randHex(16), OtherCanary: randHex(16),
		EtcDir:   "/etc/cordon-redteam-" + tag,
		TwinFile: "/etc/cordon-redteam-twin-" + tag, TwinToken: randHex(16),
	}
	undo = func() {
		os.Remove(prep.RootFile)
		os.Remove(prep.OtherFile)
		os.Remove(prep.TwinFile)
		os.RemoveAll(prep.EtcDir)
	}
	defer func() {
		if err != nil {
			undo()
		}
	}()
	if err = os.WriteFile(prep.RootFile, []byte(prep.RootCanary+"\n"), 0o600); err != nil {
		return nil, nil, err
	}
	if err = os.WriteFile(prep.OtherFile, []byte(prep.OtherCanary+"\n"), 0o600); err != nil {
		return nil, nil, err
	}
	if err = os.Chown(prep.OtherFile, 54321, 54321); err != nil {
		return nil, nil, err
	}
	if err = os.WriteFile(prep.TwinFile, []byte(prep.TwinToken+"\n"), 0o600); err != nil {
		return nil, nil, err
	}
	if err = os.Chown(prep.TwinFile, uid, gid); err != nil {
		return nil, nil, err
	}
	if err = os.Mkdir(prep.EtcDir, 0o755); err != nil {
		return nil, nil, err
	}
	if err = os.Chown(prep.EtcDir, uid, gid); err != nil {
		return nil, nil, err
	}
	return prep, undo, nil
}

// PrepareRootless plants, as root, what a rootless run by uid and gid
// needs of root, and writes its description to a 0600 file of uid in
// dir. The caller sets RootPrepEnv to that file in the rootless run's
// environment and calls cleanup afterwards.
func PrepareRootless(dir string, uid, gid int) (path string, cleanup func(), err error) {
	if os.Geteuid() != 0 {
		return "", nil, fmt.Errorf("preparing a rootless run needs root")
	}
	prep, undo, err := plantRoot(uid, gid)
	if err != nil {
		return "", nil, err
	}
	b, _ := json.Marshal(prep)
	path = filepath.Join(dir, "root-prep.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		undo()
		return "", nil, err
	}
	if err := os.Chown(path, uid, gid); err != nil {
		undo()
		return "", nil, err
	}
	return path, func() { undo(); os.Remove(path) }, nil
}

// rootPrep returns what the harness may use of root's: planted now when
// it is root, read from RootPrepEnv's file otherwise (nil if unset).
func (f *Fixture) rootPrep() (*RootPrep, error) {
	if f.Root {
		prep, undo, err := plantRoot(os.Geteuid(), os.Getegid())
		if err != nil {
			return nil, err
		}
		f.cleanup = append(f.cleanup, undo)
		return prep, nil
	}
	path := os.Getenv(RootPrepEnv)
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", RootPrepEnv, err)
	}
	var prep RootPrep
	if err := json.Unmarshal(b, &prep); err != nil {
		return nil, fmt.Errorf("%s: %w", RootPrepEnv, err)
	}
	return &prep, nil
}
