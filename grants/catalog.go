package grants

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/cordon-sandbox/cordon/policy"
)

// MaxPids is the largest limit.pids a grant can name: the kernel's own
// ceiling for pid_max.
const MaxPids = 1 << 22

// catalog is every capability a grant can name, as documented in
// docs/grants.md, with the check of its target.
var catalog = map[string]func(target string) error{
	"net.connect": func(t string) error {
		if t == "" {
			return fmt.Errorf("names no host: write net.connect:HOST or net.connect:HOST:PORT")
		}
		return policy.CheckHost(t)
	},
	"fs.read":  needsPath,
	"fs.write": needsPath,
	"proc.ptrace": func(t string) error {
		if t != "" {
			return fmt.Errorf("takes no target")
		}
		return nil
	},
	"limit.memory": func(t string) error {
		n, err := policy.ParseByteSize(t)
		if err == nil && n <= 0 {
			err = fmt.Errorf("memory %q must be positive", t)
		}
		return err
	},
	"limit.pids": func(t string) error {
		if n, err := strconv.Atoi(t); err != nil || n < 1 || n > MaxPids || strconv.Itoa(n) != t {
			return fmt.Errorf("pids %q must be a whole number from 1 to %d", t, MaxPids)
		}
		return nil
	},
	"limit.disk_free": func(t string) error {
		n, err := policy.ParseByteSize(t)
		if err == nil && n < 0 {
			err = fmt.Errorf("free-space floor %q must not be negative", t)
		}
		return err
	},
	"limit.disk_free_inodes": func(t string) error {
		if n, err := strconv.ParseInt(t, 10, 64); err != nil || n < 0 || strconv.FormatInt(n, 10) != t {
			return fmt.Errorf("free-inode floor %q must be a whole number, 0 or more", t)
		}
		return nil
	},
	"limit.timeout": func(t string) error {
		d, err := policy.ParseDuration(t)
		if err == nil && d <= 0 {
			err = fmt.Errorf("timeout %q must be positive", t)
		}
		return err
	},
}

func needsPath(t string) error {
	if t == "" {
		return fmt.Errorf("names no path: write the absolute path after \":\"")
	}
	return nil // policy.ParseCapability checked that it is absolute and clean
}

// CheckCapability checks that name is a capability of the catalog in
// docs/grants.md with a well-formed target, and returns it as the broker
// records it: net hosts in lowercase.
func CheckCapability(name string) (string, error) {
	c, err := policy.ParseCapability(name)
	if err != nil {
		return "", err
	}
	if c.Layer == "net" {
		// ASCII only: strings.ToLower would turn the Kelvin sign into "k".
		c.Target = strings.Map(func(r rune) rune {
			if r >= 'A' && r <= 'Z' {
				return r + 'a' - 'A'
			}
			return r
		}, c.Target)
	}
	check, ok := catalog[c.Layer+"."+c.Verb]
	if !ok {
		return "", fmt.Errorf("unknown capability %q: grants exist for net.connect:HOST[:PORT], fs.read:PATH, fs.write:PATH, proc.ptrace, limit.memory:SIZE, limit.pids:N, limit.timeout:DURATION, limit.disk_free:SIZE and limit.disk_free_inodes:N", name)
	}
	if err := check(c.Target); err != nil {
		return "", fmt.Errorf("invalid capability %q: %w", name, err)
	}
	return c.String(), nil
}
