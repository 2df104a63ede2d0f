package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/archivetest"
	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/testimages"
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
			refusedEverywhere(t, c, pub, sample)
		})
	}
}

// refusedEverywhere runs every read path over c.data and checks that each
// refuses it with exit code 3 and every word of c.words, and that nothing
// is tagged or pullable by digest at the destination.
func refusedEverywhere(t *testing.T, c hostileCase, pub string, sample *testimages.Sample) {
	t.Helper()
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

// notByFerry ends the message of every refusal of content that ferry
// export never writes.
const notByFerry = "; ferry export never writes this, so the bundle was changed after export or made by another tool: export the images again"

// resigned returns ents with index.json replaced by index and signed
// again with key, as an attacker holding the key (or a faulty writer
// signing what it wrote) would.
func resigned(t *testing.T, ents []archivetest.Entry, key crypto.Signer, index []byte) []archivetest.Entry {
	t.Helper()
	sigs, err := bundle.Signer(key)(index)
	if err != nil {
		t.Fatal(err)
	}
	out := archivetest.WithBody(t, ents, bundle.IndexFile, index)
	for _, n := range []string{bundle.SignatureFile, bundle.SigstoreBundleFile} {
		out = archivetest.WithBody(t, out, n, sigs[n])
	}
	return out
}

// withManifest returns ents with the manifest old replaced by body (under
// its own digest, at the same place), index.json pointing at it with
// mediaType, and signed again with key. It returns the new digest.
func withManifest(t *testing.T, ents []archivetest.Entry, key crypto.Signer, old, mediaType string, body []byte) ([]archivetest.Entry, string) {
	t.Helper()
	d := digest.FromBytes(body)
	var index ocispec.Index
	if err := json.Unmarshal(ents[archivetest.Index(t, ents, bundle.IndexFile)].Body, &index); err != nil {
		t.Fatal(err)
	}
	found := false
	for i, m := range index.Manifests {
		if m.Digest.String() == old {
			index.Manifests[i].Digest, index.Manifests[i].Size, index.Manifests[i].MediaType = d, int64(len(body)), mediaType
			found = true
		}
	}
	if !found {
		t.Fatalf("index.json does not list %s", old)
	}
	ib, err := json.Marshal(index)
	if err != nil {
		t.Fatal(err)
	}
	out := resigned(t, ents, key, ib)
	i := archivetest.Index(t, out, blobName(old))
	out[i] = archivetest.File(blobName(d.String()), body)
	return out, d.String()
}

// padded returns b, a JSON object, grown to n bytes by a "padding" member.
func padded(t *testing.T, b []byte, n int) []byte {
	t.Helper()
	b = bytes.TrimRight(b, " \n")
	head := append(bytes.Clone(b[:len(b)-1]), `,"padding":"`...)
	out := append(head, bytes.Repeat([]byte("x"), n-len(head)-2)...)
	out = append(out, `"}`...)
	if len(out) != n || !json.Valid(out) {
		t.Fatalf("padded: %d bytes (valid JSON: %v), want %d", len(out), json.Valid(out), n)
	}
	return out
}

// Content that ferry export never writes, in a bundle that is otherwise
// well formed (framed behind a valid seek table, or one tar | zstd stream,
// and signed with the trusted key): every read path refuses it with exit
// code 3 and the same message, naming the entry and what to do, and
// nothing is pushed.
func TestOneViewNotWrittenByFerry(t *testing.T) {
	t.Parallel()
	_, sample := source(t)
	orig, key, _ := signedSample(t)
	pub := writeFile(t, "trusted.pub", pubPEM(t, key.Public()))
	ents, eoa := archivetest.Split(t, orig)
	alpine := sample.Refs[0]
	manifest := sample.Digests[alpine]
	mb := ents[archivetest.Index(t, ents, blobName(manifest))].Body
	ii := archivetest.Index(t, ents, bundle.IndexFile)
	last := len(ents) - 1
	const limit = bundle.MaxManifestBytes
	tooLarge := func(what string, n int) string {
		return fmt.Sprintf("archive is corrupt: content exceeds size limit: %s is %d bytes, more than the %d allowed%s", what, n, limit, notByFerry)
	}

	type form struct {
		name string
		data []byte
	}
	// both encodes entries as the two forms every reader meets.
	both := func(e []archivetest.Entry) []form {
		return []form{{"framed", archivetest.Framed(t, e, eoa)}, {"stream", archivetest.Stream(t, e)}}
	}
	var cases []struct {
		name  string
		forms []form
		want  string
	}
	add := func(name string, forms []form, want string) {
		cases = append(cases, struct {
			name  string
			forms []form
			want  string
		}{name, forms, want})
	}
	with := func(i int, e archivetest.Entry) []archivetest.Entry {
		out := append([]archivetest.Entry(nil), ents...)
		out[i] = e
		return out
	}

	// A PAX extended header over the 1 MiB the tar reader accepts.
	bigPAX := archivetest.PAXRecord("comment", strings.Repeat("x", 1<<20))
	add("PAX header over 1 MiB on oci-layout", both(with(0, archivetest.WithPAX(t, ents[0], bigPAX))),
		"archive is corrupt: the first entry has an extended tar header (PAX or GNU long name) of more than 1 MiB"+notByFerry)
	add("PAX header over 1 MiB on index.json", both(with(ii, archivetest.WithPAX(t, ents[ii], bigPAX))),
		"archive is corrupt: entry 1 (after oci-layout) has an extended tar header (PAX or GNU long name) of more than 1 MiB"+notByFerry)
	add("PAX header over 1 MiB on a layer", both(with(last, archivetest.WithPAX(t, ents[last], bigPAX))),
		fmt.Sprintf("archive is corrupt: entry %d (after %s) has an extended tar header (PAX or GNU long name) of more than 1 MiB%s", last, ents[last-1].Header.Name, notByFerry))

	// A PAX size that makes index.json larger than the limit: with a seek
	// table that agrees with it, with one that gives the real size, and in
	// a stream.
	paxSize := archivetest.WithPAX(t, ents[ii], archivetest.PAXRecord("size", fmt.Sprint(limit+1)))
	claimed := paxSize
	claimed.Header.Size = limit + 1
	add("PAX size over 4 MiB on index.json", []form{
		{"framed, table gives the PAX size", archivetest.Framed(t, with(ii, claimed), eoa)},
		{"framed, table gives the real size", archivetest.Framed(t, with(ii, paxSize), eoa)},
		{"stream", archivetest.Stream(t, with(ii, paxSize))},
	}, tooLarge("index.json", limit+1))

	// Metadata over 4 MiB, each a real entry of that size.
	layout := padded(t, []byte(`{"imageLayoutVersion":"1.0.0"}`), limit+1)
	add("oci-layout over 4 MiB", both(archivetest.WithBody(t, ents, bundle.LayoutFile, layout)), tooLarge("oci-layout", limit+1))
	index := padded(t, ents[ii].Body, limit+1)
	add("index.json over 4 MiB", both(resigned(t, ents, key, index)), tooLarge("index.json", limit+1))
	for _, n := range []string{bundle.SignatureFile, bundle.SigstoreBundleFile} {
		body := append(bytes.Clone(ents[archivetest.Index(t, ents, n)].Body), bytes.Repeat([]byte(" "), limit)...)
		add(n+" over 4 MiB", both(archivetest.WithBody(t, ents, n, body)), tooLarge(n, len(body)))
	}
	big, bigDigest := withManifest(t, ents, key, manifest, ocispec.MediaTypeImageManifest, padded(t, mb, limit+1))
	add("manifest over 4 MiB", both(big), tooLarge("manifest "+bigDigest+" of "+alpine, limit+1))

	// Digest algorithms other than sha256 and sha512.
	md5 := "md5:" + strings.Repeat("0", 32)
	var idx ocispec.Index
	if err := json.Unmarshal(ents[ii].Body, &idx); err != nil {
		t.Fatal(err)
	}
	if idx.Manifests[0].Digest.String() != manifest {
		t.Fatalf("index.json lists %s first, not %s", idx.Manifests[0].Digest, alpine)
	}
	idx.Manifests[0].Digest = digest.Digest(md5)
	md5Index, err := json.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	add("md5 digest in index.json", both(resigned(t, ents, key, md5Index)),
		fmt.Sprintf("archive is corrupt: index.json entry 0 (%s): unsupported content: digest %q (only sha256 and sha512 are accepted)%s", alpine, md5, notByFerry))
	sha1 := "sha1:" + strings.Repeat("1", 40)
	sha1Body := bytes.Replace(mb, []byte(sample.SharedLayer), []byte(sha1), 1)
	if bytes.Equal(sha1Body, mb) {
		t.Fatalf("the manifest of %s does not list %s", alpine, sample.SharedLayer)
	}
	sha1Ents, sha1Manifest := withManifest(t, ents, key, manifest, ocispec.MediaTypeImageManifest, sha1Body)
	add("sha1 digest in a manifest", both(sha1Ents),
		fmt.Sprintf("archive is corrupt: manifest %s of %s: unsupported content: digest %q (only sha256 and sha512 are accepted)%s", sha1Manifest, alpine, sha1, notByFerry))

	// The same in a child manifest of an index: named with the image that
	// uses it.
	var tool string
	for _, r := range sample.Refs {
		if strings.Contains(r, "/multi/tool:") {
			tool = r
		}
	}
	var parent ocispec.Index
	pb := ents[archivetest.Index(t, ents, blobName(sample.Digests[tool]))].Body
	if err := json.Unmarshal(pb, &parent); err != nil || len(parent.Manifests) == 0 {
		t.Fatalf("the index of %s: %v", tool, err)
	}
	child := parent.Manifests[len(parent.Manifests)-1]
	cb := ents[archivetest.Index(t, ents, blobName(child.Digest.String()))].Body
	var cm ocispec.Manifest
	if err := json.Unmarshal(cb, &cm); err != nil || len(cm.Layers) == 0 {
		t.Fatalf("a child manifest of %s: %v", tool, err)
	}
	childBody := bytes.Replace(cb, []byte(cm.Layers[len(cm.Layers)-1].Digest), []byte(sha1), 1)
	childDigest := digest.FromBytes(childBody)
	parent.Manifests[len(parent.Manifests)-1].Digest, parent.Manifests[len(parent.Manifests)-1].Size = childDigest, int64(len(childBody))
	parentBody, err := json.Marshal(parent)
	if err != nil {
		t.Fatal(err)
	}
	childEnts, _ := withManifest(t, ents, key, sample.Digests[tool], ocispec.MediaTypeImageIndex, parentBody)
	childEnts[archivetest.Index(t, childEnts, blobName(child.Digest.String()))] = archivetest.File(blobName(childDigest.String()), childBody)
	add("sha1 digest in a child manifest of an index", both(childEnts),
		fmt.Sprintf("archive is corrupt: manifest %s of %s: unsupported content: digest %q (only sha256 and sha512 are accepted)%s", childDigest, tool, sha1, notByFerry))

	// A Docker schema 1 manifest.
	schema1 := []byte(`{"schemaVersion":1,"name":"library/alpine","tag":"3.20","architecture":"amd64","fsLayers":[{"blobSum":"` + sample.SharedLayer + `"}],"history":[{"v1Compatibility":"{}"}]}`)
	s1Ents, s1Manifest := withManifest(t, ents, key, manifest, "application/vnd.docker.distribution.manifest.v1+prettyjws", schema1)
	add("Docker schema 1 manifest", both(s1Ents),
		fmt.Sprintf("archive is corrupt: manifest %s of %s: unsupported content: Docker schema 1 manifest (deprecated and not content-addressable); re-push the image with a current docker, podman or skopeo to convert it%s", s1Manifest, alpine, notByFerry))

	for _, c := range cases {
		for _, f := range c.forms {
			t.Run(c.name+"/"+f.name, func(t *testing.T) {
				t.Parallel()
				refusedEverywhere(t, hostileCase{name: c.name, data: f.data, words: []string{c.want}}, pub, sample)
			})
		}
	}
}
