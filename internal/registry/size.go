package registry

import "errors"

// ErrTooLarge: a manifest or list of referrers is larger than the caller's
// limit.
var ErrTooLarge = errors.New("response too large")

// sizeError is an ErrTooLarge whose message is its own.
type sizeError struct{ msg string }

func (e *sizeError) Error() string        { return e.msg }
func (e *sizeError) Is(target error) bool { return target == ErrTooLarge }
