//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package bundle

import "os"

// renameOpen: the partial file is renamed while still open (and locked).
const renameOpen = false

// lockPartial does nothing where flock is not available.
func lockPartial(*os.File) error { return nil }

// removeIfStale keeps every partial file where ferry cannot tell whether
// an export is still writing it.
func removeIfStale(string) bool { return false }
