package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ferryproject/ferry/internal/registrytest"
)

// planted makes a victim file holding "victim" in a directory of its own
// and a symbolic link at link pointing to it (or, when dangling, to a name
// in that directory that does not exist yet). It returns the victim's path.
func planted(t *testing.T, link string, dangling bool) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("symbolic links need privileges on Windows")
	}
	victim := filepath.Join(t.TempDir(), "victim")
	if !dangling {
		if err := os.WriteFile(victim, []byte("victim"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	return victim
}

// assertUntouched checks that the victim of a planted link still holds
// "victim", or, when it did not exist, still does not.
func assertUntouched(t *testing.T, victim string, dangling bool) {
	t.Helper()
	b, err := os.ReadFile(victim)
	switch {
	case dangling && !os.IsNotExist(err):
		t.Errorf("ferry created %s through the planted link (%d bytes, %v)", victim, len(b), err)
	case !dangling && (err != nil || string(b) != "victim"):
		t.Errorf("ferry wrote through the planted link: %s holds %q (%v)", victim, b, err)
	}
}

// TestKeygenPlantedSymlink: a symbolic link planted at P.key or P.pub,
// pointing to an existing file or to nowhere, makes keygen refuse with
// exit 1 and a message naming the link; nothing is written through it and
// no key is left behind. Not parallel: t.Setenv.
func TestKeygenPlantedSymlink(t *testing.T) {
	unsetenv(t, "COSIGN_PASSWORD")
	t.Setenv("FERRY_PASSWORD", "planted")
	for _, tc := range []struct {
		name     string
		ext      string
		dangling bool
	}{
		{"key to an existing file", ".key", false},
		{"key to nowhere", ".key", true},
		{"pub to an existing file", ".pub", false},
		{"pub to nowhere", ".pub", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			prefix := filepath.Join(dir, "ferry")
			victim := planted(t, prefix+tc.ext, tc.dangling)
			res := ferry(t, nil, "keygen", "--output-prefix", prefix)
			want := "ferry: " + prefix + tc.ext + " already exists as a symbolic link; ferry does not write through links: remove it or choose another --output-prefix\n"
			if res.code != exitFailure || res.stderr != want {
				t.Errorf("exit %d, stderr %q; want exit %d, stderr %q", res.code, res.stderr, exitFailure, want)
			}
			assertUntouched(t, victim, tc.dangling)
			ents, _ := os.ReadDir(dir)
			if len(ents) != 1 {
				t.Errorf("keygen left %d entries in the directory, want only the planted link", len(ents))
			}
		})
	}
}

// TestCreateFileRace: createFile refuses a name planted after any check,
// through the link itself: a dangling link gets no target.
func TestCreateFileRace(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "ferry.key")
	victim := planted(t, path, true)
	err := createFile(path, []byte("secret"), 0o600)
	if !os.IsExist(err) {
		t.Errorf("createFile through a planted link: %v, want a file-exists error", err)
	}
	assertUntouched(t, victim, true)
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("createFile left %d entries, want only the link", len(ents))
	}
}

// TestKeygenMissingDirectory: keygen into a directory that does not exist
// says to create it.
func TestKeygenMissingDirectory(t *testing.T) {
	t.Setenv("FERRY_PASSWORD", "x")
	dir := filepath.Join(t.TempDir(), "etc", "ferry")
	res := ferry(t, nil, "keygen", "--output-prefix", filepath.Join(dir, "ferry"))
	want := "ferry: --output-prefix: directory " + dir + " does not exist; create it first (mkdir -p " + dir + ") (see 'ferry --help')\n"
	if res.code != exitUsage || res.stderr != want {
		t.Errorf("exit %d, stderr %q; want exit %d, stderr %q", res.code, res.stderr, exitUsage, want)
	}
}

// TestMappingOutPlantedSymlink: links planted at the mapping file's old
// temporary name (F.partial) and at F itself are not followed: the victims
// are untouched and F becomes a regular file holding the mapping.
func TestMappingOutPlantedSymlink(t *testing.T) {
	t.Parallel()
	_, sample := source(t)
	dst := registrytest.New(t, registrytest.Options{})
	path := writeFile(t, "images.tar.zst", sampleBundle(t))
	// A link at the name itself (as /dev/stdout is) is refused before the
	// import: renaming over it would replace it.
	{
		dir := t.TempDir()
		mapping := filepath.Join(dir, "map.txt")
		victim := planted(t, mapping, false)
		res := ferry(t, nil, "import", "--insecure-skip-verify", "-q", "--to", dst.Host+"/refused", "--mapping-out", mapping, path)
		res.expect(t, exitUsage, "--mapping-out: "+mapping+" exists and is a symbolic link; ferry writes this file by replacing a regular file only: remove it, or choose another name")
		assertUntouched(t, victim, false)
		assertNoTags(t, dst.Host, dst.Host+"/refused", sample, basicAuth{})
		if st, err := os.Lstat(mapping); err != nil || st.Mode()&os.ModeSymlink == 0 {
			t.Errorf("the link at %s was replaced: %v %v", mapping, st, err)
		}
	}
	for _, at := range []string{".partial"} {
		dir := t.TempDir()
		mapping := filepath.Join(dir, "map.txt")
		victim := planted(t, mapping+at, false)
		res := ferry(t, nil, "import", "--insecure-skip-verify", "-q", "--to", dst.Host+"/mirror", "--mapping-out", mapping, path)
		res.expect(t, exitOK)
		assertUntouched(t, victim, false)
		st, err := os.Lstat(mapping)
		if err != nil || !st.Mode().IsRegular() {
			t.Fatalf("link at map.txt%s: %s is %v (%v), want a regular file", at, mapping, st, err)
		}
		b, _ := os.ReadFile(mapping)
		if n := bytes.Count(b, []byte("\n")); n != len(sample.Refs) || !strings.Contains(string(b), "/mirror/") {
			t.Errorf("link at map.txt%s: the mapping file holds %d lines, want %d:\n%s", at, n, len(sample.Refs), b)
		}
	}
}

// TestSignatureOutPlantedSymlink: --signature-out does not write through a
// link planted at its name.
func TestSignatureOutPlantedSymlink(t *testing.T) {
	_, sample := source(t)
	unsetenv(t, "COSIGN_PASSWORD")
	t.Setenv("FERRY_PASSWORD", "sig out")
	dir := t.TempDir()
	prefix := filepath.Join(dir, "k")
	ferry(t, nil, "keygen", "--output-prefix", prefix).expect(t, exitOK)
	sig := filepath.Join(dir, "index.sig")
	victim := planted(t, sig, false)
	out := filepath.Join(dir, "b.tar.zst")
	res := ferry(t, nil, "export", "-q", "--key", prefix+".key", "--signature-out", sig, "-o", out, sample.Refs[0])
	res.expect(t, exitUsage, "--signature-out: "+sig+" exists and is a symbolic link; ferry writes this file by replacing a regular file only: remove it, or choose another name")
	assertUntouched(t, victim, false)
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("the export ran: %s exists (%v)", out, err)
	}
	// Without the link: a regular file with the signature.
	os.Remove(sig)
	ferry(t, nil, "export", "-q", "--key", prefix+".key", "--signature-out", sig, "-o", out, sample.Refs[0]).expect(t, exitOK)
	if st, err := os.Lstat(sig); err != nil || !st.Mode().IsRegular() || st.Size() < 10 {
		t.Errorf("%s is %v (%v), want a regular file with the signature", sig, st, err)
	}
}
