//go:build !linux

package bench

import (
	"context"
	"errors"
)

// Run reports that the benchmark needs Linux.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	return nil, errors.New("cordon bench needs Linux (cordon sessions need namespaces, Landlock, seccomp)")
}
