//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package main

// brokenStdio cannot tell which stream broke here: SIGPIPE is left to
// the write that failed.
func brokenStdio() string { return "" }
