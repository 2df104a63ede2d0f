//go:build !linux

package bundle

import "os"

// startWriteback does nothing here: the final fsync writes everything.
func startWriteback(f *os.File, off, n int64) {}
