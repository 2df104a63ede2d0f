package bundle

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ent is one crafted tar entry.
type ent struct {
	name string
	typ  byte
	body []byte
	size int64 // header size when it must differ from len(body)
}

// sample is a tiny valid image: index.json, manifest, config, layer.
type sample struct {
	index, manifest, config, layer []byte
	mDesc, cDesc, lDesc            ocispec.Descriptor
}

func newSample(layer []byte) sample { return newSampleTyped(layer, ocispec.MediaTypeImageLayerGzip) }

// newSampleTyped is newSample with a layer of the given media type.
func newSampleTyped(layer []byte, layerType string) sample {
	var s sample
	s.config = []byte(`{"architecture":"amd64","os":"linux"}`)
	s.layer = layer
	s.cDesc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(s.config), Size: int64(len(s.config))}
	s.lDesc = ocispec.Descriptor{MediaType: layerType, Digest: digest.FromBytes(layer), Size: int64(len(layer))}
	s.manifest = []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[{"mediaType":%q,"digest":%q,"size":%d}]}`,
		ocispec.MediaTypeImageManifest, s.cDesc.MediaType, s.cDesc.Digest, s.cDesc.Size, s.lDesc.MediaType, s.lDesc.Digest, s.lDesc.Size))
	s.mDesc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(s.manifest), Size: int64(len(s.manifest))}
	s.index = []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":%d,"annotations":{%q:"example.com/app:1.0"}}]}`,
		ocispec.MediaTypeImageIndex, s.mDesc.MediaType, s.mDesc.Digest, s.mDesc.Size, AnnotationRefName))
	return s
}

func (s sample) entries() []ent {
	return []ent{
		{name: LayoutFile, body: []byte(layoutContent)},
		{name: IndexFile, body: s.index},
		{name: "blobs/", typ: tar.TypeDir},
		{name: "blobs/sha256/", typ: tar.TypeDir},
		{name: BlobPath(s.mDesc.Digest), body: s.manifest},
		{name: BlobPath(s.cDesc.Digest), body: s.config},
		{name: BlobPath(s.lDesc.Digest), body: s.layer},
	}
}

// craft encodes entries as a bundle without seek table, one frame each.
func craft(t testing.TB, ents []ent) []byte {
	t.Helper()
	enc, _ := zstd.NewWriter(nil)
	var out []byte
	for _, e := range ents {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		size := int64(len(e.body))
		if e.size != 0 {
			size = e.size
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Mode: 0o644, Size: size}
		if typ == tar.TypeSymlink || typ == tar.TypeLink {
			h.Linkname, h.Size = "/etc/passwd", 0
		}
		if typ == tar.TypeDir || typ == tar.TypeChar {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			b.Write(e.body)
			b.Write(make([]byte, padding(int64(len(e.body)))))
		}
		out = enc.EncodeAll(b.Bytes(), out)
	}
	return enc.EncodeAll(make([]byte, 1024), out)
}

// readAll opens a stream and reads every blob, returning the first error.
func readAll(data []byte) error {
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		return err
	}
	defer r.Close()
	return consume(r)
}

func TestReaderRejectsHostileArchives(t *testing.T) {
	s := newSample([]byte("layer content, pretend gzip"))
	base := s.entries()
	with := func(f func([]ent) []ent) []byte {
		return craft(t, f(append([]ent(nil), base...)))
	}
	flipped := append([]byte(nil), s.layer...)
	flipped[3] ^= 1
	bigIndex := append([]byte(`{"schemaVersion":2,"x":"`), bytes.Repeat([]byte("a"), MaxManifestBytes)...)
	extra := []byte("an extra blob")
	sha1Index := bytes.Replace(s.index, []byte(s.mDesc.Digest.String()), []byte("sha1:"+strings.Repeat("a", 40)), 1)
	valid := craft(t, base)
	cases := []struct {
		name    string
		data    []byte
		wantErr error
		wantMsg string
	}{
		{"dotdot", with(func(e []ent) []ent { return append(e[:6], ent{name: "../x", body: []byte("x")}) }), ErrCorrupt, "unsafe entry name"},
		{"absolute", with(func(e []ent) []ent { return append(e[:6], ent{name: "/etc/x", body: []byte("x")}) }), ErrCorrupt, "unsafe entry name"},
		{"symlink", with(func(e []ent) []ent { e[6] = ent{name: e[6].name, typ: tar.TypeSymlink}; return e }), ErrCorrupt, "symbolic link"},
		{"hardlink", with(func(e []ent) []ent { e[6] = ent{name: e[6].name, typ: tar.TypeLink}; return e }), ErrCorrupt, "hard link"},
		{"device", with(func(e []ent) []ent { e[6] = ent{name: e[6].name, typ: tar.TypeChar}; return e }), ErrCorrupt, "device"},
		{"duplicate layer", with(func(e []ent) []ent { return append(e, e[6]) }), ErrCorrupt, "duplicate entry"},
		{"duplicate manifest", with(func(e []ent) []ent { return append(e, e[4]) }), ErrCorrupt, "duplicate entry"},
		{"unreachable blob", with(func(e []ent) []ent { return append(e, ent{name: BlobPath(digest.FromBytes(extra)), body: extra}) }), ErrCorrupt, "not referenced"},
		{"missing layer", with(func(e []ent) []ent { return e[:6] }), ErrMissingBlob, s.lDesc.Digest.String()},
		{"missing manifest", with(func(e []ent) []ent { return e[:2] }), ErrMissingBlob, s.mDesc.Digest.String()},
		{"flipped layer byte", with(func(e []ent) []ent { e[6].body = flipped; return e }), ErrDigestMismatch, s.lDesc.Digest.String()},
		{"flipped manifest byte", with(func(e []ent) []ent {
			e[4].body = bytes.Replace(s.manifest, []byte(`"schemaVersion":2`), []byte(`"schemaVersion":3`), 1)
			return e
		}), ErrDigestMismatch, s.mDesc.Digest.String()},
		{"entry larger than descriptor", with(func(e []ent) []ent { e[6].body = append(append([]byte(nil), s.layer...), 'x'); return e }), ErrDigestMismatch, "bytes, descriptor says"},
		{"layer before manifest", with(func(e []ent) []ent { e[4], e[6] = e[6], e[4]; return e }), ErrCorrupt, "before the manifests"},
		{"index too large", with(func(e []ent) []ent { e[1].body = bigIndex; return e }), ErrTooLarge, "index.json"},
		{"sha1 digest", with(func(e []ent) []ent { e[1].body = sha1Index; return e }), ErrUnsupported, "only sha256 and sha512"},
		{"first entry not oci-layout", with(func(e []ent) []ent { return e[1:] }), ErrNotBundle, "not oci-layout"},
		{"truncated", valid[:len(valid)*2/3], ErrTruncated, "ends early"},
		{"empty", nil, ErrNotBundle, "empty"},
		{"garbage", []byte("this is not a bundle at all, just text"), ErrNotBundle, "zstd"},
		{"gzip", []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0}, ErrNotBundle, "gzip"},
	}
	if err := readAll(valid); err != nil {
		t.Fatalf("the valid base archive fails: %v", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := readAll(tc.data)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not say %q", err, tc.wantMsg)
			}
		})
	}
}

func writeBundle(t testing.TB, s sample) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf, EncoderOptions{})
	for _, err := range []error{
		w.WriteFile(LayoutFile, []byte(layoutContent)),
		w.WriteFile(IndexFile, s.index),
		w.WriteBlob(s.mDesc, bytes.NewReader(s.manifest)),
		w.WriteBlob(s.cDesc, bytes.NewReader(s.config)),
		w.WriteBlob(s.lDesc, bytes.NewReader(s.layer)),
		w.Close(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestSeekTableRandomAccess(t *testing.T) {
	s := newSample(bytes.Repeat([]byte("layer "), 1000))
	data := writeBundle(t, s)
	r, err := OpenReaderAt(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if !r.RandomAccess() {
		t.Fatal("no random access")
	}
	rc, err := r.OpenBlob(s.lDesc)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, s.layer) {
		t.Fatalf("OpenBlob = %d bytes, %v", len(got), err)
	}
	// The same file without its seek table still reads, sequentially.
	table, end, err := readSeekTable(bytes.NewReader(data), int64(len(data)))
	if err != nil || len(table.Entries) != 7 {
		t.Fatalf("seek table: %v, %+v", err, table)
	}
	if err := readAll(data[:end]); err != nil {
		t.Fatalf("reading without the seek table: %v", err)
	}
	path := filepath.Join(t.TempDir(), "noseek.tar.zst")
	if err := os.WriteFile(path, data[:end], 0o644); err != nil {
		t.Fatal(err)
	}
	fr, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if fr.RandomAccess() {
		t.Error("a file without seek table must be read sequentially")
	}
	fr.Close()
}

func TestSeekTableTampered(t *testing.T) {
	s := newSample(bytes.Repeat([]byte("layer "), 1000))
	data := writeBundle(t, s)
	table, end, err := readSeekTable(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	rewrite := func(mut func(*SeekTable)) []byte {
		tt := SeekTable{Entries: append([]SeekEntry(nil), table.Entries...)}
		mut(&tt)
		frame, err := encodeSeekFrame(&tt, end)
		if err != nil {
			t.Fatal(err)
		}
		return append(append([]byte(nil), data[:end]...), frame...)
	}
	n := len(table.Entries)
	cases := []struct {
		name string
		data []byte
		msg  string
	}{
		{"offset outside the file", rewrite(func(t *SeekTable) { t.Entries[n-1].Offset = end + 100 }), "does not start where the previous one ends"},
		{"points at the wrong entry", rewrite(func(t *SeekTable) {
			t.Entries[n-1].Offset, t.Entries[n-2].Offset = t.Entries[n-2].Offset, t.Entries[n-1].Offset
		}), "seek table"},
		{"checksum", func() []byte { d := append([]byte(nil), data...); d[end+20] ^= 1; return d }(), "checksum"},
		{"footer size", func() []byte { d := append([]byte(nil), data...); d[len(d)-30] ^= 1; return d }(), "footer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := OpenReaderAt(bytes.NewReader(tc.data), int64(len(tc.data)))
			if err == nil {
				r, _ := OpenReaderAt(bytes.NewReader(tc.data), int64(len(tc.data)))
				rc, oerr := r.OpenBlob(s.lDesc)
				if oerr == nil {
					_, oerr = io.ReadAll(rc)
				}
				err = oerr
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want ErrCorrupt saying %q", err, tc.msg)
			}
		})
	}
}

func TestVerifyReader(t *testing.T) {
	content := []byte("hello")
	desc := ocispec.Descriptor{Digest: digest.FromBytes(content), Size: 5}
	for _, tc := range []struct {
		name string
		in   []byte
		ok   bool
	}{{"ok", content, true}, {"short", content[:4], false}, {"long", append(content, '!'), false}, {"flipped", []byte("hellp"), false}} {
		_, err := io.ReadAll(NewVerifyReader(bytes.NewReader(tc.in), desc))
		if (err == nil) != tc.ok || (!tc.ok && !errors.Is(err, ErrDigestMismatch)) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestSchema1Refused(t *testing.T) {
	for _, tc := range []struct{ body, mt string }{
		{`{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}`, ""},
		{`{}`, "application/vnd.docker.distribution.manifest.v1+prettyjws"},
	} {
		_, _, err := parseManifest([]byte(tc.body), tc.mt)
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "schema 1") {
			t.Errorf("parseManifest(%s, %q) = %v, want a schema 1 refusal", tc.body, tc.mt, err)
		}
	}
}
