// Package stage dispatches the hidden re-executions of the cordon binary
// (the session's supervisor and executor).
//
// It does so from its package initializer. Go initializes a program's
// packages in import-path order, each after its own imports, so this
// runs once the stages' own dependencies are initialized but before the
// packages they do not need and that sort after it (the daemon's
// Prometheus and HTTP stack, cobra, YAML, the policy parser): every
// session pays a stage start-up three times (supervisor, executor, and
// their Go runtimes), and this keeps it to what the stages use. Programs
// still call sandbox.Init first thing in main, which dispatches when this
// package is linked in some way that did not run it yet, and documents
// the requirement.
package stage

import (
	"os"

	"github.com/cordon-sandbox/cordon/internal/executor"
	"github.com/cordon-sandbox/cordon/internal/linux"
	"github.com/cordon-sandbox/cordon/internal/proto"
	"github.com/cordon-sandbox/cordon/internal/supervisor"
)

func init() { Dispatch() }

// Dispatch runs the stage named by os.Args[1] and does not return if
// there is one; otherwise it returns at once.
func Dispatch() {
	if len(os.Args) < 2 {
		return
	}
	switch os.Args[1] {
	case proto.StageSupervisor:
		supervisor.Main()
	case proto.StageExecutor:
		executor.Main()
	case linux.NSHolderStage:
		linux.HoldNamespace()
	}
}
