package mirrorconfig

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func sampleFiles(t *testing.T, images []Image) []File {
	t.Helper()
	c, err := New(images, Options{Registry: "reg.local:5000"})
	if err != nil {
		t.Fatal(err)
	}
	return c.Files()
}

// tree lists the files below dir, with slashes.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func wantTree(files []File) []string {
	var names []string
	for _, f := range files {
		names = append(names, f.Path)
	}
	slices.Sort(names)
	return names
}

// noLeftovers fails if a temporary directory is left in parent.
func noLeftovers(t *testing.T, parent string) {
	t.Helper()
	entries, _ := os.ReadDir(parent)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

func TestWriteNewEmptyAndReplace(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	dir := filepath.Join(parent, "cluster")
	first := sampleFiles(t, fixture("reg.local:5000", "m", false))
	if err := Write(dir, first); err != nil {
		t.Fatal(err)
	}
	if got := tree(t, dir); !slices.Equal(got, wantTree(first)) {
		t.Errorf("new: %v, want %v", got, wantTree(first))
	}
	for _, f := range first {
		if b, _ := os.ReadFile(filepath.Join(dir, f.Path)); string(b) != string(f.Data) {
			t.Errorf("%s: content differs", f.Path)
		}
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o755 {
		t.Errorf("mode %v, want 0755", st.Mode().Perm())
	}

	// A second import with one registry replaces the whole directory: no
	// hosts.toml of the first is left over.
	second := sampleFiles(t, fixture("reg.local:5000", "m", false)[2:3])
	if err := Write(dir, second); err != nil {
		t.Fatal(err)
	}
	if got := tree(t, dir); !slices.Equal(got, wantTree(second)) {
		t.Errorf("replaced: %v, want %v", got, wantTree(second))
	}

	empty := filepath.Join(parent, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Write(empty, second); err != nil {
		t.Fatal(err)
	}
	if got := tree(t, empty); !slices.Equal(got, wantTree(second)) {
		t.Errorf("empty: %v, want %v", got, wantTree(second))
	}
	noLeftovers(t, parent)
}

func TestWriteRefuses(t *testing.T) {
	t.Parallel()
	files := sampleFiles(t, fixture("reg.local:5000", "m", false))
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string // %s is dir
	}{
		{"a file", func(t *testing.T, dir string) {
			os.WriteFile(dir, []byte("x"), 0o644)
		}, "mirror configuration directory: %s exists and is not a directory: remove it, or choose another name"},
		{"a symbolic link", func(t *testing.T, dir string) {
			target := filepath.Join(filepath.Dir(dir), "target")
			os.Mkdir(target, 0o755)
			os.Symlink(target, dir)
		}, "mirror configuration directory: %s is a symbolic link; ferry does not write through links: remove it, or choose another name"},
		{"a dangling symbolic link", func(t *testing.T, dir string) {
			os.Symlink(filepath.Join(filepath.Dir(dir), "nowhere"), dir)
		}, "mirror configuration directory: %s is a symbolic link; ferry does not write through links: remove it, or choose another name"},
		{"someone else's file", func(t *testing.T, dir string) {
			os.Mkdir(dir, 0o755)
			os.WriteFile(filepath.Join(dir, FileMapping), nil, 0o644)
			os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o644)
		}, "mirror configuration directory: %s holds %[1]s/notes.txt, which ferry did not write; ferry replaces only an empty directory or one it wrote before: choose a new or empty directory"},
		{"ferry's name as a directory", func(t *testing.T, dir string) {
			os.MkdirAll(filepath.Join(dir, FileRegistriesConf), 0o755)
		}, "mirror configuration directory: %s holds %[1]s/registries.conf, which ferry did not write; ferry replaces only an empty directory or one it wrote before: choose a new or empty directory"},
		{"a link in certs.d", func(t *testing.T, dir string) {
			os.MkdirAll(filepath.Join(dir, "certs.d"), 0o755)
			os.Symlink("/etc", filepath.Join(dir, "certs.d", "docker.io"))
		}, "mirror configuration directory: %s holds %[1]s/certs.d/docker.io, which ferry did not write; ferry replaces only an empty directory or one it wrote before: choose a new or empty directory"},
		{"another file in a host directory", func(t *testing.T, dir string) {
			os.MkdirAll(filepath.Join(dir, "certs.d", "docker.io"), 0o755)
			os.WriteFile(filepath.Join(dir, "certs.d", "docker.io", "ca.crt"), nil, 0o644)
		}, "mirror configuration directory: %s holds %[1]s/certs.d/docker.io/ca.crt, which ferry did not write; ferry replaces only an empty directory or one it wrote before: choose a new or empty directory"},
		{"no parent", func(t *testing.T, dir string) {}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			parent := t.TempDir()
			dir := filepath.Join(parent, "cluster")
			want := ""
			if tc.want == "" { // no parent
				dir = filepath.Join(parent, "missing", "cluster")
				want = "mirror configuration directory: the directory " + filepath.Join(parent, "missing") + " that would hold " + dir + " does not exist"
			} else {
				tc.setup(t, dir)
				want = strings.ReplaceAll(tc.want, "%[1]s", dir)
				want = strings.Replace(want, "%s", dir, 1)
			}
			before := tree(t, parent)
			for _, f := range []func() error{func() error { return CheckDir(dir) }, func() error { return Write(dir, files) }} {
				err := f()
				if !errors.Is(err, ErrOutputDir) || err.Error() != want {
					t.Errorf("got %v, want %s", err, want)
				}
			}
			if after := tree(t, parent); !slices.Equal(before, after) {
				t.Errorf("the refused write changed %v into %v", before, after)
			}
			noLeftovers(t, parent)
		})
	}
}

// TestWriteFailureLeavesNothing: a file that cannot be written fails the
// whole write; neither dir nor a temporary directory is left, and an
// earlier dir stays as it was.
func TestWriteFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	dir := filepath.Join(parent, "cluster")
	bad := append(sampleFiles(t, fixture("reg.local:5000", "m", false)), File{Path: "../escape", Data: []byte("x")})
	err := Write(dir, bad)
	if err == nil || err.Error() != "writing "+filepath.Join(parent, "escape")+`: invalid file name "../escape"` {
		t.Errorf("got %v", err)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Errorf("%s exists after a failed write: %v", dir, err)
	}
	noLeftovers(t, parent)

	good := sampleFiles(t, fixture("reg.local:5000", "m", false)[:1])
	if err := Write(dir, good); err != nil {
		t.Fatal(err)
	}
	dup := append(sampleFiles(t, fixture("reg.local:5000", "m", false)), good[0])
	if err := Write(dir, dup); err == nil || !strings.Contains(err.Error(), "file exists") {
		t.Errorf("a file written twice: got %v, want the O_EXCL failure", err)
	}
	if got := tree(t, dir); !slices.Equal(got, wantTree(good)) {
		t.Errorf("after a failed write: %v, want the earlier %v", got, wantTree(good))
	}
	noLeftovers(t, parent)
}

// TestCheckDirTrailingSlash: a link named with a trailing slash (as shell
// completion spells a link to a directory) is refused by CheckDir, before
// the import, as Write refuses it after: "link/" is not followed.
func TestCheckDirTrailingSlash(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	target, link := filepath.Join(parent, "target"), filepath.Join(parent, "cluster")
	os.Mkdir(target, 0o755)
	os.Symlink(target, link)
	want := "mirror configuration directory: " + link + " is a symbolic link; ferry does not write through links: remove it, or choose another name"
	for name, f := range map[string]func() error{
		"CheckDir": func() error { return CheckDir(link + "/") },
		"Write":    func() error { return Write(link+"/", sampleFiles(t, fixture("reg.local:5000", "m", false))) },
	} {
		if err := f(); !errors.Is(err, ErrOutputDir) || err.Error() != want {
			t.Errorf("%s: got %v, want %s", name, err, want)
		}
	}
	if ents, _ := os.ReadDir(target); len(ents) != 0 {
		t.Errorf("written through the link: %v", ents)
	}
}

// TestPlainHTTPMirror: a mirror that speaks plain HTTP is named with
// http:// where a URL names it (containerd, RKE2/k3s) and is insecure in
// registries.conf, the only way containers/image pulls over HTTP; an
// https:// URL would make every pull fail.
func TestPlainHTTPMirror(t *testing.T) {
	t.Parallel()
	fs := files(t, fixture("10.0.0.5:5000", "m", false), Options{Registry: "10.0.0.5:5000", PlainHTTP: true})
	wantHosts := `# Written by ferry import: pull docker.io images from the mirror 10.0.0.5:5000/m.
# Install as /etc/containerd/certs.d/docker.io/hosts.toml (containerd's registry config_path).
server = "https://registry-1.docker.io"

[host."http://10.0.0.5:5000/v2/m"]
  capabilities = ["pull", "resolve"]
  override_path = true
`
	if got := string(fs["certs.d/docker.io/hosts.toml"]); got != wantHosts {
		t.Errorf("hosts.toml:\n%s\nwant\n%s", got, wantHosts)
	}
	if got := string(fs[FileRKE2]); !strings.Contains(got, "    endpoint:\n      - \"http://10.0.0.5:5000\"\n") || strings.Contains(got, "https://10.0.0.5") {
		t.Errorf("registries.yaml:\n%s", got)
	}
	if got := string(fs[FileRegistriesConf]); strings.Count(got, "insecure = true\n") != 3 {
		t.Errorf("registries.conf: want every mirror insecure:\n%s", got)
	}
}
