package linux

import (
	"os"
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
