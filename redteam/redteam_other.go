//go:build !linux

package redteam

import (
	"context"
	"errors"
)

var errUnsupported = errors.New("the red-team suite needs Linux (cordon sessions need namespaces, Landlock, seccomp)")

// Env is what a case runs with; there are no sessions off Linux.
type Env struct{}

// Cases returns no cases off Linux.
func Cases() []*Case { return nil }

// Run reports that the suite needs Linux.
func Run(ctx context.Context, cfg Config) (*Report, error) { return nil, errUnsupported }

// ProbeMain reports that probes need Linux.
func ProbeMain(args []string) int { return 2 }
