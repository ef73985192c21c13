package sandbox

// DiskWatchers returns how many free-space watchers the process runs.
func DiskWatchers() int {
	diskWatchers.mu.Lock()
	defer diskWatchers.mu.Unlock()
	return len(diskWatchers.byDev)
}
