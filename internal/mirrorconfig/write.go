package mirrorconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// CheckDir says whether Write may write dir: a name that does not exist yet
// (in a directory that does), an empty directory, or a directory that holds
// only files a previous Write put there (which Write replaces as a whole).
// Anything else is refused with ErrOutputDir: a file, a symbolic link
// (never written through), or a directory with other content.
func CheckDir(dir string) error {
	// "link/" would follow the link; Write cleans the name too.
	dir = filepath.Clean(dir)
	parent := filepath.Dir(dir)
	if st, err := os.Stat(parent); err != nil || !st.IsDir() {
		return fmt.Errorf("%w: the directory %s that would hold %s does not exist", ErrOutputDir, parent, dir)
	}
	st, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrOutputDir, err)
	}
	switch {
	case st.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%w: %s is a symbolic link; ferry does not write through links: remove it, or choose another name", ErrOutputDir, dir)
	case !st.IsDir():
		return fmt.Errorf("%w: %s exists and is not a directory: remove it, or choose another name", ErrOutputDir, dir)
	}
	if foreign, err := foreignEntry(dir); err != nil {
		return fmt.Errorf("%w: %v", ErrOutputDir, err)
	} else if foreign != "" {
		return fmt.Errorf("%w: %s holds %s, which ferry did not write; ferry replaces only an empty directory or one it wrote before: choose a new or empty directory", ErrOutputDir, dir, foreign)
	}
	return nil
}

// foreignEntry returns the first name in dir that is not a file Write puts
// there (with the type Write gives it), or "".
func foreignEntry(dir string) (string, error) {
	top := map[string]bool{FileRegistriesConf: true, FileIDMS: true, FileITMS: true, FileRKE2: true, FileKustomize: true, FileMapping: true}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		name := filepath.Join(dir, e.Name())
		switch {
		case top[e.Name()] && e.Type().IsRegular():
		case e.Name() == DirContainerd && e.IsDir():
			hosts, err := os.ReadDir(name)
			if err != nil {
				return "", err
			}
			for _, h := range hosts {
				hdir := filepath.Join(name, h.Name())
				if !h.IsDir() {
					return hdir, nil
				}
				files, err := os.ReadDir(hdir)
				if err != nil {
					return "", err
				}
				for _, f := range files {
					if f.Name() != FileHostsTOML || !f.Type().IsRegular() {
						return filepath.Join(hdir, f.Name()), nil
					}
				}
			}
		default:
			return name, nil
		}
	}
	return "", nil
}

// Write writes files into dir so that dir never holds a mix of old and new
// files, nor a half-written one: they are written into a new directory
// beside dir (.NAME.partial-NNN, made with mode 0700 so nobody can plant a
// link in it; every file is created exclusively), which is then renamed to
// dir. An existing dir (see CheckDir) is first renamed aside
// (.NAME.old-NNN) and removed once the new one is in place; if that rename
// fails, the old dir is put back. On failure nothing but the old dir is
// left.
func Write(dir string, files []File) (err error) {
	dir = filepath.Clean(dir)
	if err := CheckDir(dir); err != nil {
		return err
	}
	parent, base := filepath.Dir(dir), filepath.Base(dir)
	tmp, err := os.MkdirTemp(parent, "."+base+".partial-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	for _, f := range files {
		if err := writeFile(tmp, f); err != nil {
			return fmt.Errorf("writing %s: %w", filepath.Join(dir, filepath.FromSlash(f.Path)), err)
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("writing %s: %w", dir, err)
	}
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.Rename(tmp, dir); err != nil {
			return fmt.Errorf("writing %s: %w", dir, err)
		}
		return nil
	}
	// os.Rename does not replace a directory, even an empty one: move the
	// old one aside, under the temporary name's random part.
	old := filepath.Join(parent, "."+base+".old-"+strings.TrimPrefix(filepath.Base(tmp), "."+base+".partial-"))
	if err := os.Rename(dir, old); err != nil {
		return fmt.Errorf("moving the previous %s aside: %w", dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if rerr := os.Rename(old, dir); rerr != nil {
			return fmt.Errorf("writing %s: %w (the previous content is in %s)", dir, err, old)
		}
		return fmt.Errorf("writing %s: %w", dir, err)
	}
	return os.RemoveAll(old)
}

// writeFile creates f below root with O_EXCL: it never follows a link.
func writeFile(root string, f File) error {
	if !fs.ValidPath(f.Path) || strings.Contains(f.Path, "\\") {
		return fmt.Errorf("invalid file name %q", f.Path)
	}
	name := filepath.Join(root, filepath.FromSlash(f.Path))
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	w, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := w.Write(f.Data); err != nil {
		w.Close()
		return err
	}
	if err := w.Sync(); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}
