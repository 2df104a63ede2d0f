package registry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/ferryproject/ferry/internal/registry"
)

// TestIsTemporary: broken connections are retried, cancellation and other
// failures are not.
func TestIsTemporary(t *testing.T) {
	op := func(err error) error { return &net.OpError{Op: "write", Net: "tcp", Err: err} }
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{op(net.ErrClosed), true}, // the registry closed the connection mid-upload
		{op(syscall.ECONNRESET), true},
		{op(syscall.EPIPE), true},
		{fmt.Errorf("reading body: %w", io.ErrUnexpectedEOF), true},
		{registry.ErrTokenRenewed, true},
		{context.Canceled, false},
		{fmt.Errorf("push: %w", context.DeadlineExceeded), false},
		{errors.New("x509: certificate signed by unknown authority"), false},
		{nil, false},
	} {
		if got := registry.IsTemporary(tc.err); got != tc.want {
			t.Errorf("IsTemporary(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
