// Package sandbox opens cordon sessions: one warm isolation context (user,
// mount, pid, network, ipc, uts and cgroup namespaces; a constructed
// filesystem view; Landlock; seccomp; no capabilities) that serves many
// tool calls, each reported as events.
//
// Programs that open sessions must call Init first thing in main (and in
// TestMain): the session's stages are this same binary, re-executed.
package sandbox
