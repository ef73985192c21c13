package audit

import (
	"os"
	"path/filepath"
)

// DefaultPath returns where the audit log lives by default:
// /var/lib/cordon/audit.jsonl for root; for another user
// $XDG_STATE_HOME/cordon/audit.jsonl, or ~/.local/state/cordon/audit.jsonl
// when XDG_STATE_HOME is unset or not absolute. It returns "" when
// neither is known (no home directory).
func DefaultPath() string {
	if os.Geteuid() == 0 {
		return "/var/lib/cordon/audit.jsonl"
	}
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "cordon", "audit.jsonl")
	}
	home, err := os.UserHomeDir()
	if err != nil || !filepath.IsAbs(home) {
		return ""
	}
	return filepath.Join(home, ".local", "state", "cordon", "audit.jsonl")
}
