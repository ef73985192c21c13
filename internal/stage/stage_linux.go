// Package stage dispatches the hidden re-executions of the cordon binary
// (the session's supervisor and executor). Any program that opens
// sessions calls Dispatch first thing in main (and in TestMain).
package stage

import (
	"os"

	"github.com/cordon-sandbox/cordon/internal/executor"
	"github.com/cordon-sandbox/cordon/internal/linux"
	"github.com/cordon-sandbox/cordon/internal/proto"
	"github.com/cordon-sandbox/cordon/internal/supervisor"
)

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
