package mirrorconfig

import "errors"

// Sentinel errors, checked with errors.Is.
var (
	// ErrOutputDir: the output directory cannot be written: it is a file, a
	// symbolic link, or holds files that ferry did not write.
	ErrOutputDir = errors.New("mirror configuration directory")
	// ErrImages: the images do not describe a mirror (no image, a name that
	// does not parse, a destination that is not the source path below the
	// mirror).
	ErrImages = errors.New("mirror configuration")
)
