package scan

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"

	"github.com/ferryproject/ferry/bundle"
)

// Stdin is the path that means standard input.
const Stdin = "-"

// MaxFileBytes is the largest file or stream read: manifests sit in memory
// while they are parsed. The rendered output of large Helm charts is a few
// MiB.
var MaxFileBytes int64 = 64 << 20

// Image is an image reference found in a manifest.
type Image struct {
	Ref   bundle.Reference
	Where Location
}

// Paths scans each path: a file (whatever its name), a directory (walked
// recursively for *.yaml, *.yml and *.json files, in lexical order,
// without following symbolic links to directories), or "-" for stdin. It
// returns every image found, in the order found, and an *Error listing
// every problem (with the images of the files that had none).
func Paths(paths []string, stdin io.Reader) ([]Image, error) {
	var images []Image
	var problems []*Problem
	for _, p := range paths {
		imgs, probs := scanPath(p, stdin)
		images = append(images, imgs...)
		problems = append(problems, probs...)
	}
	return images, errorOf(problems)
}

func scanPath(path string, stdin io.Reader) ([]Image, []*Problem) {
	if path == Stdin {
		if stdin == nil {
			stdin = strings.NewReader("")
		}
		return scanReader("standard input", stdin)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, []*Problem{fileProblem(path, err)}
	}
	if !st.IsDir() {
		return scanFile(path)
	}
	root := path
	if lst, err := os.Lstat(path); err == nil && lst.Mode()&fs.ModeSymlink != 0 {
		// A link named as the path is followed; WalkDir follows none.
		root = path + string(filepath.Separator)
	}
	var images []Image
	var problems []*Problem
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			problems = append(problems, fileProblem(p, err))
			if d != nil && d.IsDir() && p != root {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || !manifestName(d.Name()) {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			// A link to a file is read; one to a directory is not walked
			// (it could lead back up the tree).
			if st, err := os.Stat(p); err == nil && st.IsDir() {
				return nil
			}
		} else if !d.Type().IsRegular() {
			return nil
		}
		imgs, probs := scanFile(p)
		images = append(images, imgs...)
		problems = append(problems, probs...)
		return nil
	})
	if err != nil {
		problems = append(problems, fileProblem(path, err))
	}
	return images, problems
}

// manifestName reports whether a directory walk reads the file: YAML and
// JSON files, compose files (compose.yaml, docker-compose.yml) included.
func manifestName(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

func scanFile(path string) ([]Image, []*Problem) {
	f, err := os.Open(path)
	if err != nil {
		return nil, []*Problem{fileProblem(path, err)}
	}
	defer f.Close()
	return scanReader(path, f)
}

// fileProblem names path once: "x.yaml: no such file or directory", not
// "x.yaml: open x.yaml: no such file or directory".
func fileProblem(path string, err error) *Problem {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &Problem{Location: Location{File: path}, Err: err}
}

// Read scans one stream of YAML or JSON documents; name is how problems
// name it.
func Read(name string, r io.Reader) ([]Image, error) {
	images, problems := scanReader(name, r)
	return images, errorOf(problems)
}

func scanReader(name string, r io.Reader) ([]Image, []*Problem) {
	b, err := io.ReadAll(io.LimitReader(r, MaxFileBytes+1))
	if err != nil {
		return nil, []*Problem{fileProblem(name, err)}
	}
	if int64(len(b)) > MaxFileBytes {
		return nil, []*Problem{{Location: Location{File: name}, Err: fmt.Errorf("%w: larger than %d MiB, more than a manifest file should be", bundle.ErrTooLarge, MaxFileBytes>>20)}}
	}
	s, err := scanDocs(name, b)
	if err != nil {
		// JSON that YAML refuses only because it is indented with tabs
		// (jq --tab, many editors) is read with the tabs taken as spaces:
		// outside strings they are whitespace, and inside a JSON string a
		// tab is always escaped, so nothing else changes.
		if t := bytes.TrimLeft(b, " \t\r\n"); len(t) > 0 && (t[0] == '{' || t[0] == '[') && bytes.IndexByte(b, '\t') >= 0 {
			if js, jerr := scanDocs(name, bytes.ReplaceAll(b, []byte{'\t'}, []byte{' '})); jerr == nil {
				s, err = js, nil
			}
		}
	}
	if err != nil {
		return nil, []*Problem{{Location: Location{File: name}, Err: notYAML(b, err.Error())}}
	}
	if !s.structured && s.scalar {
		return nil, []*Problem{{Location: Location{File: name}, Err: notYAML(b, "plain text, no mapping or list")}}
	}
	return s.images, s.problems
}

// scanDocs decodes the documents of b one at a time and scans each before
// the next: the memory a tree of small nodes takes (some hundred bytes a
// node) is that of one document, not of the file.
func scanDocs(name string, b []byte) (*scanner, error) {
	s := &scanner{file: name}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for i := 1; ; i++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if err == io.EOF {
			return s, nil
		}
		if err != nil {
			return nil, err
		}
		s.doc = i
		s.nextDocument()
		root := deref(&n)
		if root == nil {
			continue
		}
		switch root.Kind {
		case yaml.MappingNode, yaml.SequenceNode:
			s.structured = true
			s.document(root)
		case yaml.ScalarNode:
			// Plain text; refused if nothing else is there.
			s.scalar = s.scalar || root.Tag != "!!null"
		}
	}
}

// notYAML words the refusal of a file, with a hint when it looks like an
// unrendered Helm chart template.
func notYAML(b []byte, why string) error {
	why = strings.TrimPrefix(why, "yaml: ")
	if i := invalidUTF8(b); i >= 0 {
		why += fmt.Sprintf("; line %d is not UTF-8: convert the file to UTF-8 (iconv -f LATIN1 -t UTF-8, for one)", bytes.Count(b[:i], []byte{'\n'})+1)
	}
	if bytes.Contains(b, []byte("{{")) {
		why += "; it holds {{ }}: a Helm chart template? scan the output of 'helm template' instead"
	}
	return fmt.Errorf("%w: %s", ErrNotYAML, why)
}

// Refs returns the references of images sorted by their normalised form,
// each once.
func Refs(images []Image) []bundle.Reference {
	seen := map[string]bool{}
	var out []bundle.Reference
	for _, img := range images {
		if s := img.Ref.String(); !seen[s] {
			seen[s] = true
			out = append(out, img.Ref)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// invalidUTF8 is the offset of the first byte of b that is not UTF-8, -1
// if all are (or b starts with a UTF-16 byte order mark, which the YAML
// library reads).
func invalidUTF8(b []byte) int {
	if bytes.HasPrefix(b, []byte{0xfe, 0xff}) || bytes.HasPrefix(b, []byte{0xff, 0xfe}) {
		return -1
	}
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}
