package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// signalContext returns a context canceled by SIGINT or SIGTERM, and by
// SIGPIPE when standard output or standard error has lost its reader
// (ferry export --debug 2>&1 | head -1; -o - into a program that exits
// early): ferry then stops as on Ctrl-C, and removes what it was writing,
// instead of being killed by the signal with files left behind.
//
// Once SIGPIPE is caught, a write to a broken pipe fails with EPIPE
// instead of killing the process, and the signal also comes for a
// registry connection the other side closed; that one is not a reason to
// stop (the write fails, and the request is retried), so only a broken
// standard output or standard error cancels. The cause of the
// cancellation is a *brokenPipeError then.
func signalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(context.Background())
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM, syscall.SIGPIPE)
	go func() {
		for s := range ch {
			if s != syscall.SIGPIPE {
				cancel(context.Canceled)
				continue
			}
			if stream := brokenStdio(); stream != "" {
				cancel(&brokenPipeError{stream: stream})
			}
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		cancel(context.Canceled)
	}
}

// brokenPipeError: the reader of standard output or standard error went
// away before ferry finished.
type brokenPipeError struct {
	stream string // "standard output" or "standard error"
	what   string // what was being written there, when known
}

func (e *brokenPipeError) Error() string {
	if e.what != "" {
		return e.stream + " was closed by the program reading it before " + e.what + " was complete (broken pipe): what it received is not usable"
	}
	return e.stream + " was closed by the program reading it (broken pipe); ferry stopped as if interrupted, leaving no partial output under the final name"
}

func (e *brokenPipeError) Unwrap() error { return syscall.EPIPE }
