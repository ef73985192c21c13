package linux

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReadCost checks that a process's cost counts its threads' sleeps
// and CPU time, and that a process that does not exist costs nothing.
func TestReadCost(t *testing.T) {
	before := ReadCost(os.Getpid())
	for range 20 {
		time.Sleep(time.Millisecond) // each sleep is a switch out and a wake-up
	}
	for deadline := time.Now().Add(20 * time.Millisecond); time.Now().Before(deadline); {
	}
	after := ReadCost(os.Getpid())
	if d := after.Switches - before.Switches; d < 20 {
		t.Errorf("20 sleeps counted as %d context switches", d)
	}
	if d := after.CPU - before.CPU; d < 10*time.Millisecond {
		t.Errorf("20 ms of spinning counted as %v on a CPU", d)
	}
	if c := ReadCost(1 << 30); c != (Cost{}) {
		t.Errorf("a missing process: %+v", c)
	}
}

// TestReadProcFile reads a /proc file as os.ReadFile does, and a file past
// the first buffer whole.
func TestReadProcFile(t *testing.T) {
	b, err := ReadProcFile("/proc/self/status")
	if err != nil || !strings.Contains(string(b), "\nUid:") {
		t.Fatalf("ReadProcFile(/proc/self/status) = %q, %v", b, err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 1000) // 16000 bytes: four buffers
	p := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(p, big, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadProcFile(p); err != nil || !bytes.Equal(b, big) {
		t.Errorf("ReadProcFile of a %d-byte file: %d bytes, %v", len(big), len(b), err)
	}
	if b, err := ReadProcFile("/proc/0/status"); err == nil {
		t.Errorf("ReadProcFile of a pid that cannot exist: %q, no error", b)
	}
}
