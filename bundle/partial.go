package bundle

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// A bundle written by ExportFile is first written to ".NAME.partial-N" in
// the output directory (N is os.CreateTemp's random number), then renamed
// to NAME. An export killed outright (SIGKILL, a power cut) leaves that
// file behind, at its full reserved size. ExportFile holds an exclusive
// lock (flock) on its partial file for as long as it writes it; the kernel
// drops the lock when the process ends, however it ends. So on start,
// a partial file of the same output that is ferry's (by name), the
// current user's, and not locked is a leftover, and is removed; the
// partial file of an export still running into the same output is locked,
// and kept.

// partialPrefix is the name prefix of the partial files of output base.
func partialPrefix(base string) string { return "." + base + ".partial-" }

// isPartialName reports whether name is a partial file of output base as
// os.CreateTemp names them: the prefix, then digits only.
func isPartialName(name, base string) bool {
	rest, ok := strings.CutPrefix(name, partialPrefix(base))
	if !ok || rest == "" {
		return false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// createPartial makes and locks the partial file of path. A leftover
// cleaner in another export may remove the new file between its creation
// and the lock; then the name no longer leads to the file, and a new one
// is made.
func createPartial(dir, base string) (*os.File, error) {
	for range 5 {
		f, err := os.CreateTemp(dir, partialPrefix(base)+"*")
		if err != nil {
			return nil, err
		}
		if err := lockPartial(f); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, err
		}
		own, err1 := f.Stat()
		named, err2 := os.Lstat(f.Name())
		if err1 == nil && err2 == nil && os.SameFile(own, named) {
			return f, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("the partial file of %s was removed as soon as it was made, five times", filepath.Join(dir, base))
}

// removeStalePartials removes the leftover partial files of output base
// in dir (see above) and returns their names. It never follows a symbolic
// link, and keeps what it cannot check.
func removeStalePartials(dir, base string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range ents {
		if !e.Type().IsRegular() || !isPartialName(e.Name(), base) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if removeIfStale(p) {
			removed = append(removed, p)
		}
	}
	return removed
}
