//go:build !linux

package bundle

import "os"

// startWriteback does nothing here: the final fsync writes everything.
func startWriteback(f *os.File, off, n int64) {}

// sparseFiles is false here: without a way to tell the file system, ferry
// writes the bundle in order.
func sparseFiles(f *os.File) bool { return false }
