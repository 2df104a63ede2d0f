//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package main

import "golang.org/x/sys/unix"

// brokenStdio names standard output or standard error when its reader has
// gone (poll reports an error or hang-up on it), or returns "".
func brokenStdio() string {
	for _, s := range []struct {
		fd   int32
		name string
	}{{1, "standard output"}, {2, "standard error"}} {
		fds := []unix.PollFd{{Fd: s.fd, Events: unix.POLLOUT}}
		if n, err := unix.Poll(fds, 0); err == nil && n > 0 && fds[0].Revents&(unix.POLLERR|unix.POLLHUP) != 0 {
			return s.name
		}
	}
	return ""
}
