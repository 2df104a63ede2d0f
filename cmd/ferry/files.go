package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// replaceFile writes data to path the way the bundle output is written: to a
// new file made with O_EXCL under a random name in the same directory,
// which is then renamed over path. Neither step follows a symbolic link
// someone planted, at the temporary name or at path (rename replaces the
// link itself), and a reader never sees a half-written file.
func replaceFile(path string, data []byte, perm fs.FileMode) error {
	if err := replaceable(path); err != nil {
		return err
	}
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// createFile is replaceFile for a file that must not exist yet (a key): the
// finished temporary file is linked to path, which fails with
// fs.ErrExist when anything has that name, a symbolic link included,
// even one planted after a check. On a file system without hard links the
// file is created at path with O_EXCL, which does not follow links either.
func createFile(path string, data []byte, perm fs.FileMode) error {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	err = os.Link(tmp, path)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// writeTemp writes data with mode perm to a new file beside path and
// returns its name.
func writeTemp(path string, data []byte, perm fs.FileMode) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-*")
	if err != nil {
		return "", err
	}
	if _, err = f.Write(data); err == nil {
		if err = f.Chmod(perm); err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Name(), nil
}

// replaceable refuses a name that exists and is not a regular file: a
// symbolic link (such as /dev/stdout, which renaming over would replace
// for the whole system), a device, a pipe or a directory. Commands check
// it before their work as well, so a bad name fails first.
func replaceable(path string) error {
	st, err := os.Lstat(path)
	if err != nil || st.Mode().IsRegular() {
		return nil
	}
	kind := "a directory"
	switch {
	case st.Mode()&fs.ModeSymlink != 0:
		kind = "a symbolic link"
	case st.Mode()&fs.ModeDevice != 0:
		kind = "a device"
	case st.Mode()&fs.ModeNamedPipe != 0:
		kind = "a named pipe"
	case st.Mode()&fs.ModeSocket != 0:
		kind = "a socket"
	case !st.IsDir():
		kind = "not a regular file"
	}
	return fmt.Errorf("%s exists and is %s; ferry writes this file by replacing a regular file only: remove it, or choose another name", path, kind)
}

// outputFile is a file a command writes, with the flag that names it.
type outputFile struct {
	flag, path string
}

// distinctOutputs refuses two flags that name one file (the same path,
// spelled alike or not, or two names of one existing file): the second
// written would replace the first, the bundle by its egress report for
// one. Empty paths and "-" are skipped.
func distinctOutputs(outs ...outputFile) error {
	for i, a := range outs {
		for _, b := range outs[i+1:] {
			if a.path == "" || a.path == "-" || b.path == "" || b.path == "-" || !sameFile(a.path, b.path) {
				continue
			}
			return usagef("%s and %s both name %s: one would replace the other; give them different names", a.flag, b.flag, b.path)
		}
	}
	return nil
}

func sameFile(a, b string) bool {
	aa, aerr := filepath.Abs(a)
	ba, berr := filepath.Abs(b)
	if aerr == nil && berr == nil && aa == ba {
		return true
	}
	as, aerr := os.Stat(a)
	bs, berr := os.Stat(b)
	return aerr == nil && berr == nil && os.SameFile(as, bs)
}
