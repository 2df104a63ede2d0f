package bundle

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryproject/ferry/internal/archivetest"
)

// handFrame writes a zstd frame by hand (RFC 8878 section 3.1.1): magic,
// Frame_Header_Descriptor fhd, an optional Window_Descriptor (when the
// Single_Segment flag, bit 5 of fhd, is clear), the Frame_Content_Size field
// fcs (its width must match bits 7-6 of fhd), then content as raw blocks. No
// checksum.
func handFrame(fhd byte, window byte, fcs []byte, content []byte) []byte {
	out := binary.LittleEndian.AppendUint32(nil, zstdMagic)
	out = append(out, fhd)
	if fhd&0x20 == 0 {
		out = append(out, window)
	}
	out = append(out, fcs...)
	const maxBlock = 64 << 10
	for first := true; first || len(content) > 0; first = false {
		n := min(len(content), maxBlock)
		hdr := uint32(n) << 3 // Block_Type 0: raw
		if n == len(content) {
			hdr |= 1 // Last_Block
		}
		out = append(out, byte(hdr), byte(hdr>>8), byte(hdr>>16))
		out = append(out, content[:n]...)
		content = content[n:]
	}
	return out
}

func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// tarOf is the tar bytes of one entry as a ferry frame holds them.
func tarOf(t *testing.T, e archivetest.Entry) []byte {
	return archivetest.Tar(t, []archivetest.Entry{e}, false)
}

// TestHostileZstdFrames: frames that declare a window above MaxWindowSize,
// or an absurd Frame_Content_Size around tiny real content, are refused as
// corrupt (or truncated) by NewReader and by Open, quickly and without
// allocating what they declare.
func TestHostileZstdFrames(t *testing.T) {
	s := newSample(bytes.Repeat([]byte("layer "), 100))
	entries, eoa := archivetest.Split(t, writeBundle(t, s))
	type frameFn func(content []byte) []byte
	frames := []struct {
		name string
		make frameFn
		ok   bool
	}{
		// Control: a well-formed hand-made frame (1 MiB window, exact
		// content size) must be accepted, so the refusals below are for
		// the declared sizes and not for a malformed header.
		{"control", func(c []byte) []byte { return handFrame(0xC0, 10<<3, le64(uint64(len(c))), c) }, true},
		{"window 1 GiB", func(c []byte) []byte { return handFrame(0x00, 20<<3, nil, c) }, false},
		{"window 3.75 TiB", func(c []byte) []byte { return handFrame(0x00, 31<<3|7, nil, c) }, false},
		{"content size 1<<62", func(c []byte) []byte { return handFrame(0xC0, 10<<3, le64(1<<62), c) }, false},
		{"single segment, content size 1<<62", func(c []byte) []byte { return handFrame(0xE0, 0, le64(1<<62), c) }, false},
	}
	targets := []string{IndexFile, BlobPath(s.mDesc.Digest), BlobPath(s.lDesc.Digest)}
	dir := t.TempDir()
	for _, fr := range frames {
		for _, target := range targets {
			t.Run(fr.name+"/"+filepath.Base(target), func(t *testing.T) {
				ents := append([]archivetest.Entry(nil), entries...)
				i := archivetest.Index(t, ents, target)
				ents[i].Frame = fr.make(tarOf(t, ents[i]))
				data := archivetest.Framed(t, ents, eoa)
				path := filepath.Join(dir, fmt.Sprintf("b%d.tar.zst", time.Now().UnixNano()))
				if err := os.WriteFile(path, data, 0o644); err != nil {
					t.Fatal(err)
				}
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				start := time.Now()
				// Sequential: NewReader, then every blob.
				seqErr := readAll(data)
				// Random access: Open, then every blob through the seek table.
				raErr := func() error {
					r, err := Open(path)
					if err != nil {
						return err
					}
					defer r.Close()
					if !r.RandomAccess() {
						return errors.New("not opened through the seek table")
					}
					return consume(r)
				}()
				elapsed := time.Since(start)
				runtime.ReadMemStats(&after)
				if d := after.TotalAlloc - before.TotalAlloc; d > 512<<20 {
					t.Errorf("reading allocated %d MiB", d>>20)
				}
				if elapsed > 5*time.Second {
					t.Errorf("reading took %v", elapsed)
				}
				for _, c := range []struct {
					how string
					err error
				}{{"NewReader", seqErr}, {"Open", raErr}} {
					switch {
					case fr.ok && c.err != nil:
						t.Errorf("%s refused the well-formed control frame: %v", c.how, c.err)
					case !fr.ok && c.err == nil:
						t.Errorf("%s accepted the hostile frame", c.how)
					case !fr.ok && !errors.Is(c.err, ErrCorrupt) && !errors.Is(c.err, ErrTruncated):
						t.Errorf("%s: got %v, want ErrCorrupt or ErrTruncated", c.how, c.err)
					case !fr.ok:
						t.Logf("%s: %v", c.how, c.err)
					}
				}
			})
		}
	}
}

// TestIndexNestedTooDeep: a chain of 10 indexes (index.json → idx1 → … →
// idx10 → manifest) is deeper than maxGraphDepth and refused.
func TestIndexNestedTooDeep(t *testing.T) {
	s := newSample([]byte("layer content, pretend gzip"))
	child := s.mDesc
	var chain []ent // innermost first
	for range 10 {
		b := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":%d}]}`,
			ocispec.MediaTypeImageIndex, child.MediaType, child.Digest, child.Size))
		child = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(b), Size: int64(len(b))}
		chain = append(chain, ent{name: BlobPath(child.Digest), body: b})
	}
	index := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":%d,"annotations":{%q:"example.com/deep:1"}}]}`,
		ocispec.MediaTypeImageIndex, child.MediaType, child.Digest, child.Size, AnnotationRefName))
	ents := []ent{
		{name: LayoutFile, body: []byte(layoutContent)},
		{name: IndexFile, body: index},
		{name: "blobs/", typ: tar.TypeDir},
		{name: "blobs/sha256/", typ: tar.TypeDir},
	}
	for i := len(chain) - 1; i >= 0; i-- { // parents before children
		ents = append(ents, chain[i])
	}
	ents = append(ents, s.entries()[4:]...) // manifest, config, layer
	err := readAll(craft(t, ents))
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("got %v, want ErrCorrupt saying nested deeper", err)
	}
	if !strings.Contains(err.Error(), "example.com/deep:1") {
		t.Errorf("error %q does not name the reference", err)
	}
	// A chain within the limit reads.
	short := append(append([]ent(nil), ents[:4]...), s.entries()[4:]...)
	short[1].body = s.index
	if err := readAll(craft(t, short)); err != nil {
		t.Fatalf("control: %v", err)
	}
}
