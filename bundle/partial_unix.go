//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package bundle

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// renameOpen: the partial file is renamed while still open (and locked).
const renameOpen = true

// lockPartial takes the exclusive lock that marks f as being written. It
// is held until f is closed or the process ends.
func lockPartial(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// removeIfStale removes the partial file p when it is a regular file of
// the current user that no process holds locked, and reports whether it
// did. The lock is taken on the file opened without following links, and
// p is removed only while it still names that file.
func removeIfStale(p string) bool {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || int(sys.Uid) != os.Getuid() {
		return false
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return false // in use by a running export, or unknown: keep it
	}
	named, err := os.Lstat(p)
	if err != nil || !os.SameFile(st, named) {
		return false
	}
	return os.Remove(p) == nil
}
