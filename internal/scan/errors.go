package scan

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNotYAML: a file is neither YAML nor JSON, or holds plain text only
// (no mapping or list anywhere in it).
var ErrNotYAML = errors.New("not YAML")

// A value that is not an image reference wraps bundle.ErrInvalidReference;
// an unreadable path wraps the error of the file system (fs.ErrNotExist,
// fs.ErrPermission).

// Location says where in the input something was found.
type Location struct {
	// File is the path as given, or "standard input".
	File string
	// Line is the line of the value, counted from 1 over the whole file
	// (0 when the problem is the file itself).
	Line int
	// Doc is the number of the YAML document in the file, counted from 1,
	// empty documents included (0 when the problem is the file itself).
	Doc int
	// Path is the path of the value in its document, as kubectl explain
	// and yq spell it: spec.template.spec.containers[1].image.
	Path string
}

// String is "FILE:LINE: document N: PATH", or just FILE.
func (l Location) String() string {
	if l.Doc == 0 {
		return l.File
	}
	return fmt.Sprintf("%s:%d: document %d: %s", l.File, l.Line, l.Doc, l.Path)
}

// Problem is a value or a file that could not be read as intended.
type Problem struct {
	Location
	Err error
}

func (p *Problem) Error() string { return p.Location.String() + ": " + p.Err.Error() }
func (p *Problem) Unwrap() error { return p.Err }

// MaxListedProblems is how many problems the text of an Error lists; the
// rest are counted (a mistake repeated in thousands of containers would
// otherwise make an error of megabytes). Problems holds them all.
const MaxListedProblems = 100

// Error lists every problem of a scan (up to MaxListedProblems), so the
// operator fixes them in one pass.
type Error struct {
	Problems []*Problem
}

func (e *Error) Error() string {
	if len(e.Problems) == 1 {
		return e.Problems[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d problems in the manifests:", len(e.Problems))
	for i, p := range e.Problems {
		if i == MaxListedProblems {
			fmt.Fprintf(&b, "\n  … and %d more problems", len(e.Problems)-i)
			break
		}
		b.WriteString("\n  ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// Unwrap returns every problem, so errors.Is finds any of their causes.
func (e *Error) Unwrap() []error {
	out := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		out[i] = p
	}
	return out
}

// errorOf is nil for no problems, else an *Error.
func errorOf(problems []*Problem) error {
	if len(problems) == 0 {
		return nil
	}
	return &Error{Problems: problems}
}
