package bundle

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
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
	enc, _ := zstd.NewWriter(nil)
	eoaFrame := enc.EncodeAll(make([]byte, 1024), nil)
	if !bytes.HasSuffix(valid, eoaFrame) {
		t.Fatal("craft does not end with the end-of-archive frame")
	}
	noEOA := valid[:len(valid)-len(eoaFrame)]
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
		{"no end-of-archive marker", noEOA, ErrTruncated, "the archive ends without the tar end-of-archive marker"},
		{"a frame header cut short", append(bytes.Clone(noEOA), 0x28, 0xb5, 0x2f, 0xfd), ErrTruncated, fmt.Sprintf("the stream ends inside the frame at offset %d", len(noEOA))},
		{"half an end-of-archive marker", enc.EncodeAll(make([]byte, 512), bytes.Clone(noEOA)), ErrTruncated, "the archive ends without the tar end-of-archive marker"},
		{"a second end-of-archive frame", append(bytes.Clone(valid), eoaFrame...), ErrCorrupt, fmt.Sprintf("a zstd frame at offset %d follows the end-of-archive marker", len(valid))},
		{"bytes after the marker in its frame", enc.EncodeAll(append(make([]byte, 1024), "junk"...), bytes.Clone(noEOA)), ErrCorrupt, "data follows the tar end-of-archive marker"},
		{"a skippable frame", append(bytes.Clone(valid), 0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0), ErrCorrupt, "skippable frame (magic 0x184d2a50)"},
		{"bytes that are not a frame", append(bytes.Clone(valid), "junk"...), ErrCorrupt, fmt.Sprintf("the bytes at offset %d are not a zstd frame", len(valid))},
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
			// Found in a bundle, what export refuses is corrupt too.
			if (errors.Is(err, ErrTooLarge) || errors.Is(err, ErrUnsupported)) && !errors.Is(err, ErrCorrupt) {
				t.Errorf("got %v, want it to be ErrCorrupt as well", err)
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

// Each check of the seek table, pinned by the case it alone catches: the
// seek-table reader and the sequential reader (which checks the table it
// meets at the end of the stream) each refuse with their exact message.
func TestSeekTableTampered(t *testing.T) {
	s := newSample(bytes.Repeat([]byte("layer "), 1000))
	data := writeBundle(t, s)
	table, end, err := readSeekTable(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	frames := data[:end]
	rewrite := func(mut func(*SeekTable)) []byte {
		tt := SeekTable{Entries: append([]SeekEntry(nil), table.Entries...)}
		mut(&tt)
		frame, err := encodeSeekFrame(&tt, end)
		if err != nil {
			t.Fatal(err)
		}
		return append(bytes.Clone(frames), frame...)
	}
	n := len(table.Entries)
	last := table.Entries[n-1]
	layerName := BlobPath(s.lDesc.Digest)
	// The layer's frame holding a second entry after it.
	enc, _ := zstd.NewWriter(nil)
	extra := craftTar(t, []ent{{name: layerName, body: s.layer}, {name: BlobPath(digest.FromBytes([]byte("x"))), body: []byte("x")}})
	twoInOne := enc.EncodeAll(extra, nil)
	hidden := append(bytes.Clone(data[:last.Offset]), twoInOne...)
	eoa := data[last.Offset+last.Length : end]
	hiddenTable := SeekTable{Entries: append([]SeekEntry(nil), table.Entries...)}
	hiddenTable.Entries[n-1].Length = int64(len(twoInOne))
	hidden = append(hidden, eoa...)
	hf, err := encodeSeekFrame(&hiddenTable, int64(len(hidden)))
	if err != nil {
		t.Fatal(err)
	}
	hidden = append(hidden, hf...)

	// replaceTail keeps the frames of the entries before index i, puts
	// entryFrames and then eoaFrames after them, and a table listing the
	// entries as given (lengths from entryFrames).
	replaceTail := func(i int, entryFrames [][]byte, eoaFrames ...[]byte) []byte {
		d := bytes.Clone(data[:table.Entries[i].Offset])
		tt := SeekTable{Entries: append([]SeekEntry(nil), table.Entries[:i]...)}
		for j, f := range entryFrames {
			e := table.Entries[i+j]
			e.Offset, e.Length = int64(len(d)), int64(len(f))
			tt.Entries = append(tt.Entries, e)
			d = append(d, f...)
		}
		for _, f := range eoaFrames {
			d = append(d, f...)
		}
		frame, err := encodeSeekFrame(&tt, int64(len(d)))
		if err != nil {
			t.Fatal(err)
		}
		return append(d, frame...)
	}
	layerTar := craftTar(t, []ent{{name: layerName, body: s.layer}})
	cases := []struct {
		name     string
		data     []byte
		sentinel error
		random   string // the seek-table reader's message
		stream   string // the sequential reader's
	}{
		{"an entry outside the file", rewrite(func(t *SeekTable) { t.Entries[n-1].Offset = end + 100 }), ErrCorrupt,
			"starts at offset " + strconv.FormatInt(end+100, 10) + ", not where the previous one ends", "starts at offset " + strconv.FormatInt(end+100, 10) + ", not where the previous one ends"},
		{"two entries swapped", rewrite(func(t *SeekTable) { t.Entries[n-1], t.Entries[n-2] = t.Entries[n-2], t.Entries[n-1] }), ErrCorrupt,
			"not where the previous one ends", "not where the previous one ends"},
		{"the last entry runs into the end-of-archive frame", rewrite(func(t *SeekTable) { t.Entries[n-1].Length = end - last.Offset }), ErrCorrupt,
			"leaves no room for the end-of-archive frame", "leaves no room for the end-of-archive frame"},
		{"an entry of length 0", rewrite(func(t *SeekTable) { t.Entries[n-1].Length = 0 }), ErrCorrupt,
			"has length 0 and size", "has length 0 and size"},
		{"two frames listed as one entry", rewrite(func(t *SeekTable) {
			t.Entries[n-2].Length += t.Entries[n-1].Length
			t.Entries = t.Entries[:n-1]
		}), ErrCorrupt, "is not one zstd frame: its frame is", "lists 6 entries; the archive holds 7"},
		{"a skippable frame before the seek table", func() []byte {
			skip := append(binary.LittleEndian.AppendUint32(nil, 0x184D2A50), 4, 0, 0, 0, 'x', 'x', 'x', 'x')
			d := append(bytes.Clone(frames), skip...)
			f, err := encodeSeekFrame(table, int64(len(d)))
			if err != nil {
				t.Fatal(err)
			}
			return append(d, f...)
		}(), ErrCorrupt, "is not one zstd frame of 1024 zero bytes ending at the seek table", "skippable frame (magic 0x184d2a50)"},
		{"an end-of-archive frame without content size", func() []byte {
			// magic, descriptor 0 (no size, window follows), window, one
			// RLE block of 1024 zeros
			bh := uint32(1 | 1<<1 | 1024<<3)
			eoaFrame := append(binary.LittleEndian.AppendUint32(nil, zstdMagic), 0, 0x38, byte(bh), byte(bh>>8), byte(bh>>16), 0)
			d := append(bytes.Clone(data[:last.Offset+last.Length]), eoaFrame...)
			f, err := encodeSeekFrame(table, int64(len(d)))
			if err != nil {
				t.Fatal(err)
			}
			return append(d, f...)
		}(), ErrCorrupt, "it is 10 bytes and declares -1 bytes of content", "is not one zstd frame of 1024 zero bytes"},
		{"a frame length halved", rewrite(func(t *SeekTable) { t.Entries[n-1].Length /= 2 }), ErrCorrupt,
			"is not one zstd frame: it runs past the length the table gives", "is not one zstd frame: its frame is at offset"},
		{"two names swapped with their digests and sizes", rewrite(func(t *SeekTable) {
			a, b := &t.Entries[n-1], &t.Entries[n-2]
			a.Name, a.Digest, a.Size, b.Name, b.Digest, b.Size = b.Name, b.Digest, b.Size, a.Name, a.Digest, a.Size
		}), ErrCorrupt, "seek table points at", "in the table but"},
		{"a blob entry lists another digest", rewrite(func(t *SeekTable) { t.Entries[n-1].Digest = s.cDesc.Digest }), ErrCorrupt,
			"lists digest " + s.cDesc.Digest.String(), "lists digest " + s.cDesc.Digest.String()},
		{"index.json with another digest", rewrite(func(t *SeekTable) { t.Entries[1].Digest = s.cDesc.Digest }), ErrDigestMismatch,
			"index.json does not match the digest in the seek table", "index.json does not match the digest in the seek table"},
		{"a blob left out", rewrite(func(t *SeekTable) { t.Entries = t.Entries[:n-1] }), ErrCorrupt,
			"the end-of-archive marker at offset " + strconv.FormatInt(last.Offset, 10) + " is not one zstd frame of 1024 zero bytes", "lists 6 entries; the archive holds 7"},
		{"a second entry in the frame of the layer", hidden, ErrCorrupt,
			"the frame of entry \"" + layerName + "\" declares", "not referenced by the index or any manifest"},
		{"an entry frame without content size", replaceTail(n-1, [][]byte{rawFrame(layerTar, false)}, eoa), ErrCorrupt,
			"declares -1 bytes of content", "the frame of entry 6 (\"" + layerName + "\") does not declare its content size"},
		{"the last entry's frame carries an extra zero block", replaceTail(n-1, [][]byte{rawFrame(append(bytes.Clone(layerTar), make([]byte, 512)...), true)}, eoa), ErrCorrupt,
			"declares " + strconv.Itoa(len(layerTar)+512) + " bytes of content", "does not end where the entry ends"},
		{"the end-of-archive marker split in two frames", replaceTail(n-1, [][]byte{rawFrame(layerTar, true)}, rawFrame(make([]byte, 512), true), rawFrame(make([]byte, 512), true)), ErrCorrupt,
			"is not one zstd frame of 1024 zero bytes ending at the seek table", "the archive has 9 zstd frames for 7 entries"},
		{"an end-of-archive frame of other bytes", replaceTail(n-1, [][]byte{rawFrame(layerTar, true)}, rawFrame(bytes.Repeat([]byte{'x'}, 1024), true)), ErrCorrupt,
			"it holds bytes other than zeros", "invalid tar header"},
		{"checksum", func() []byte { d := bytes.Clone(data); d[end+20] ^= 1; return d }(), ErrCorrupt,
			"seek table: checksum mismatch", "seek table: checksum mismatch"},
		{"footer size", func() []byte { d := bytes.Clone(data); d[len(d)-30] ^= 1; return d }(), ErrCorrupt,
			"seek table: footer does not match the file size", "seek table: footer does not match the table frame"},
		{"trailing bytes", append(bytes.Clone(data), 0), ErrCorrupt,
			"more bytes follow the seek table", "more bytes follow the seek table"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raErr := func() error {
				r, err := OpenReaderAt(bytes.NewReader(tc.data), int64(len(tc.data)))
				if err != nil {
					return err
				}
				defer r.Close()
				return consume(r)
			}()
			for way, got := range map[string]struct {
				err  error
				want string
			}{"seek table": {raErr, tc.random}, "sequential": {readAll(tc.data), tc.stream}} {
				if !errors.Is(got.err, tc.sentinel) || !strings.Contains(got.err.Error(), got.want) {
					t.Errorf("%s: got %v, want %v saying %q", way, got.err, tc.sentinel, got.want)
				}
			}
		})
	}
}

// rawFrame is content as one zstd frame of raw blocks, declaring its
// content size or not.
func rawFrame(content []byte, withSize bool) []byte {
	b := binary.LittleEndian.AppendUint32(nil, zstdMagic)
	if withSize {
		b = binary.LittleEndian.AppendUint64(append(b, 0xC0, rawWindowDescriptor), uint64(len(content)))
	} else {
		b = append(b, 0x00, rawWindowDescriptor)
	}
	for len(content) > 0 || len(b) < 8 {
		n := min(len(content), rawBlockMax)
		bh := uint32(n) << 3
		if n == len(content) {
			bh |= 1
		}
		b = append(b, byte(bh), byte(bh>>8), byte(bh>>16))
		b = append(b, content[:n]...)
		content = content[n:]
	}
	return b
}

// craftTar is the tar of ents without end-of-archive marker.
func craftTar(t testing.TB, ents []ent) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range ents {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(e.body))}); err != nil {
			t.Fatal(err)
		}
		tw.Write(e.body)
	}
	tw.Flush()
	return b.Bytes()
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
