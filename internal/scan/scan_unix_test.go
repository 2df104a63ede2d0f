//go:build unix

package scan

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestWalkSkipsSpecialFiles: a named pipe called *.yaml is not opened (it
// would block the walk forever); a dangling link called *.yaml is an error
// naming it.
func TestWalkSkipsSpecialFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	images, err := Paths([]string{dir}, nil)
	if len(images) != 0 || err != nil {
		t.Fatalf("walk over a named pipe: %v, %v", images, err)
	}
	link := filepath.Join(dir, "gone.yaml")
	if err := os.Symlink(filepath.Join(dir, "nothing"), link); err != nil {
		t.Fatal(err)
	}
	_, err = Paths([]string{dir}, nil)
	if !errors.Is(err, fs.ErrNotExist) || err.Error() != link+": no such file or directory" {
		t.Errorf("walk over a dangling link: %v", err)
	}
}
