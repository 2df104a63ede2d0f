package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/archivetest"
	"github.com/ferryproject/ferry/internal/registrytest"
)

// One bundle, one view: every way of reading a file (verify, inspect,
// import FILE, import --verify-first FILE, import - from standard input)
// sees the same content, or refuses with the same exit code and pushes
// nothing that could be pulled.

// readPath is one way of reading a bundle file from the CLI.
type readPath struct {
	name string
	// stdin: the bundle goes in on standard input.
	stdin bool
	// pushes: the path imports into a registry.
	pushes bool
	args   func(path, pub, to string) []string
}

var readPaths = []readPath{
	{name: "verify", args: func(path, pub, _ string) []string { return []string{"verify", "--key", pub, path} }},
	{name: "inspect", args: func(path, _, _ string) []string { return []string{"inspect", path} }},
	{name: "import FILE", pushes: true, args: func(path, pub, to string) []string {
		return []string{"import", "-q", "--key", pub, "--to", to, path}
	}},
	{name: "import --verify-first", pushes: true, args: func(path, pub, to string) []string {
		return []string{"import", "-q", "--verify-first", "--key", pub, "--to", to, path}
	}},
	{name: "import -", stdin: true, pushes: true, args: func(_, pub, to string) []string {
		return []string{"import", "-q", "--key", pub, "--to", to, "-"}
	}},
}

// everyPath runs every read path over data and checks each one, with a
// fresh destination registry for each import.
func everyPath(t *testing.T, data []byte, pub string, check func(t *testing.T, p readPath, res result, dst *registrytest.Registry, to string)) {
	t.Helper()
	path := writeFile(t, "images.tar.zst", data)
	for _, p := range readPaths {
		t.Run(p.name, func(t *testing.T) {
			var dst *registrytest.Registry
			var to string
			if p.pushes {
				dst = registrytest.New(t, registrytest.Options{})
				to = dst.Host + "/mirror"
			}
			var stdin *bytes.Reader
			if p.stdin {
				stdin = bytes.NewReader(data)
			}
			var res result
			if stdin != nil {
				res = ferry(t, stdin, p.args(path, pub, to)...)
			} else {
				res = ferry(t, nil, p.args(path, pub, to)...)
			}
			check(t, p, res, dst, to)
		})
	}
}

// older is a second bundle signed with the same key as signedSample: two of
// the sample images, made earlier.
func olderSigned(t *testing.T, key crypto.Signer) []byte {
	t.Helper()
	_, sample := source(t)
	path := filepath.Join(t.TempDir(), "older.tar.zst")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := bundle.ExportFile(ctx, sample.Refs[:2], path, bundle.ExportOptions{Created: time.Unix(1600000000, 0), Sign: bundle.Signer(key)}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// table returns the seek table of b and where it starts.
func table(t *testing.T, b []byte) (*bundle.SeekTable, int64) {
	t.Helper()
	tbl, err := bundle.ReadSeekTable(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return tbl, int64(binary.LittleEndian.Uint64(b[len(b)-24:]))
}

// withTable returns frames followed by a seek table frame holding entries.
func withTable(t *testing.T, frames []byte, entries []bundle.SeekEntry) []byte {
	t.Helper()
	return append(bytes.Clone(frames), archivetest.SeekFrame(t, &bundle.SeekTable{Entries: entries}, int64(len(frames)))...)
}

// oneFrame encodes entries as a single zstd frame, as a hostile writer
// hiding a second entry in the frame of the first would.
func oneFrame(t *testing.T, entries ...archivetest.Entry) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(archivetest.Tar(t, entries, false), nil)
}

// A bundle every path must refuse.
type hostileCase struct {
	name string
	data []byte
	// what every refusal says
	words []string
}

func hostileBundles(t *testing.T) []hostileCase {
	orig, key, _ := signedSample(t)
	tbl, tableOff := table(t, orig)
	es := tbl.Entries
	n := len(es)
	last := es[n-1]
	eoaOff := last.Offset + last.Length
	frames := orig[:tableOff]

	var cases []hostileCase
	add := func(name string, data []byte, words ...string) {
		cases = append(cases, hostileCase{name, data, append([]string{"archive is corrupt"}, words...)})
	}

	// The newer bundle, then the frames of an older one signed by the same
	// key, and a table listing only the older frames.
	older := olderSigned(t, key)
	otbl, otableOff := table(t, older)
	shifted := make([]bundle.SeekEntry, len(otbl.Entries))
	for i, e := range otbl.Entries {
		e.Offset += tableOff
		shifted[i] = e
	}
	add("two-faced bundle", withTable(t, append(bytes.Clone(frames), older[:otableOff]...), shifted))

	// Lying tables over the original frames.
	lie := func(name string, edit func([]bundle.SeekEntry) []bundle.SeekEntry) {
		add(name, withTable(t, frames, edit(append([]bundle.SeekEntry(nil), es...))), "seek table")
	}
	lie("table omits a blob", func(e []bundle.SeekEntry) []bundle.SeekEntry { return append(e[:n-1:n-1], e[n:]...) })
	lie("table omits oci-layout", func(e []bundle.SeekEntry) []bundle.SeekEntry { return e[1:] })
	lie("table swaps two entries", func(e []bundle.SeekEntry) []bundle.SeekEntry {
		e[n-1], e[n-2] = e[n-2], e[n-1]
		return e
	})
	lie("table halves a frame length", func(e []bundle.SeekEntry) []bundle.SeekEntry {
		e[n-1].Length /= 2
		return e
	})
	lie("table names another entry", func(e []bundle.SeekEntry) []bundle.SeekEntry {
		e[n-1].Name, e[n-2].Name = e[n-2].Name, e[n-1].Name
		return e
	})

	// Entries the table does not list: hidden in the frame of a listed one.
	ents, eoa := archivetest.Split(t, orig)
	hide := func(name string, extra archivetest.Entry) {
		e := append([]archivetest.Entry(nil), ents...)
		i := len(e) - 1
		e[i].Frame = oneFrame(t, e[i], extra)
		add(name, archivetest.Framed(t, e, eoa))
	}
	link := archivetest.Entry{Header: tar.Header{Name: "blobs/sha256/" + strings.Repeat("a", 64), Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd", Mode: 0o777}}
	hide("symlink in the frame of a layer", link)
	dev := archivetest.Entry{Header: tar.Header{Name: "blobs/sha256/" + strings.Repeat("b", 64), Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o666}}
	hide("device in the frame of a layer", dev)
	idx := ents[archivetest.Index(t, ents, bundle.IndexFile)]
	hide("second index.json in the frame of a layer", archivetest.File(bundle.IndexFile, idx.Body))
	layer := ents[len(ents)-2]
	hide("second entry in the frame of a layer", archivetest.File(layer.Header.Name, layer.Body))

	// Bytes where none may be.
	between := append(bytes.Clone(orig[:eoaOff]), orig[eoaOff:tableOff]...)
	between = append(between, oneFrame(t, archivetest.File("blobs/sha256/"+strings.Repeat("c", 64), []byte("x")))...)
	add("a frame between the end-of-archive frame and the table", withTable(t, between, es))
	add("bytes after the footer", append(bytes.Clone(orig), "trailing"...))
	damaged := bytes.Clone(orig)
	damaged[tableOff+8+20] ^= 0x01 // inside the table JSON: its CRC no longer matches
	add("damaged seek table", damaged, "seek table: checksum mismatch")
	return cases
}

// Every hostile bundle is refused by every read path with exit code 3, and
// nothing is tagged or pullable by digest at the destination.
func TestOneViewHostile(t *testing.T) {
	t.Parallel()
	_, sample := source(t)
	_, key, _ := signedSample(t)
	pub := writeFile(t, "trusted.pub", pubPEM(t, key.Public()))
	for _, c := range hostileBundles(t) {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			everyPath(t, c.data, pub, func(t *testing.T, p readPath, res result, dst *registrytest.Registry, to string) {
				res.expect(t, exitVerify, c.words...)
				if dst != nil {
					if !p.stdin {
						// A file is checked whole before anything is pushed.
						if n := dst.Requests.Load(); n != 0 {
							t.Errorf("%s sent %d requests to the destination", p.name, n)
						}
					}
					assertNothingAt(t, dst, to, sample)
				}
			})
		})
	}
}

// The control: the untouched signed bundle, and a plain tar | zstd copy of
// it without seek table, are accepted by every path with the same images.
func TestOneViewAccepted(t *testing.T) {
	t.Parallel()
	_, sample := source(t)
	orig, key, _ := signedSample(t)
	pub := writeFile(t, "trusted.pub", pubPEM(t, key.Public()))
	ents, _ := archivetest.Split(t, orig)
	for name, data := range map[string][]byte{"signed bundle": orig, "tar | zstd, no seek table": archivetest.Stream(t, ents)} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			everyPath(t, data, pub, func(t *testing.T, p readPath, res result, dst *registrytest.Registry, to string) {
				res.expect(t, exitOK)
				if p.name == "inspect" {
					for _, ref := range sample.Refs {
						if !strings.Contains(res.stdout, ref) {
							t.Errorf("inspect does not list %s", ref)
						}
					}
				}
				if dst != nil {
					assertTagged(t, to, false, sample)
				}
			})
		})
	}
}

// index.json must list an image.
func TestOneViewEmptyIndex(t *testing.T) {
	t.Parallel()
	orig, key, _ := signedSample(t)
	ents, eoa := archivetest.Split(t, orig)
	var index map[string]json.RawMessage
	i := archivetest.Index(t, ents, bundle.IndexFile)
	if err := json.Unmarshal(ents[i].Body, &index); err != nil {
		t.Fatal(err)
	}
	index["manifests"] = json.RawMessage("[]")
	body, err := json.Marshal(index)
	if err != nil {
		t.Fatal(err)
	}
	sigs, err := bundle.Signer(key)(body)
	if err != nil {
		t.Fatal(err)
	}
	e := []archivetest.Entry{ents[0], archivetest.File(bundle.IndexFile, body)}
	for _, n := range []string{bundle.SignatureFile, bundle.SigstoreBundleFile} {
		e = append(e, archivetest.File(n, sigs[n]))
	}
	pub := writeFile(t, "trusted.pub", pubPEM(t, key.Public()))
	for form, data := range map[string][]byte{"framed": archivetest.Framed(t, e, eoa), "stream": archivetest.Stream(t, e)} {
		t.Run(form, func(t *testing.T) {
			everyPath(t, data, pub, func(t *testing.T, p readPath, res result, dst *registrytest.Registry, to string) {
				res.expect(t, exitVerify, "archive is corrupt: index.json lists no image")
			})
		})
	}
}
