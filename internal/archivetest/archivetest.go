// Package archivetest holds helpers for tests that take a ferry bundle apart
// and put a tampered one back together: split a bundle into its tar entries
// and their original zstd frames, edit them, and re-encode the result as one
// stream or frame by frame behind a valid seek table. It is imported only by
// tests and is not linked into the ferry binary.
//
// It does not import package bundle, so that bundle's own (internal) tests
// can use it; the seek table is encoded here from docs/format.md.
package archivetest

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
)

// Entry is one tar entry of a bundle, with its original zstd frame while it
// is unchanged. Clear Frame (or use WithBody) when changing Header or Body.
type Entry struct {
	Header tar.Header
	Body   []byte
	Frame  []byte
	// Raw, when set, is the entry's tar bytes as they are (header blocks,
	// content and padding), for headers tar.Writer refuses to write; Header
	// then only gives the name and size the seek table lists (Framed).
	Raw []byte
}

// File returns a regular file entry without frame.
func File(name string, body []byte) Entry {
	return Entry{Header: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}, Body: body}
}

// SeekEntry is one entry of a seek table, as docs/format.md describes it.
type SeekEntry struct {
	Name   string        `json:"name"`
	Digest digest.Digest `json:"digest,omitempty"`
	Size   int64         `json:"size"`
	Offset int64         `json:"offset"`
	Length int64         `json:"length"`
}

const (
	seekFrameMagic  = 0x184D2A5B
	seekFooterSize  = 32
	seekFooterMagic = "FRYSEEK1"
)

// Split splits a bundle with a seek table into its entries, each with its
// original frame, and returns the end-of-archive frame(s) that follow them.
func Split(t testing.TB, bundle []byte) (entries []Entry, endOfArchive []byte) {
	t.Helper()
	n := len(bundle)
	if n < 8+seekFooterSize || string(bundle[n-8:]) != seekFooterMagic {
		t.Fatal("archivetest.Split: the bundle has no seek table")
	}
	jsLen := binary.LittleEndian.Uint64(bundle[n-seekFooterSize:])
	tableOff := binary.LittleEndian.Uint64(bundle[n-seekFooterSize+8:])
	if tableOff+8+jsLen+seekFooterSize != uint64(n) {
		t.Fatal("archivetest.Split: the seek table footer does not match the bundle size")
	}
	var tbl struct{ Entries []SeekEntry }
	if err := json.Unmarshal(bundle[tableOff+8:tableOff+8+jsLen], &tbl); err != nil {
		t.Fatalf("archivetest.Split: seek table: %v", err)
	}
	if len(tbl.Entries) == 0 {
		t.Fatal("archivetest.Split: empty seek table")
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for _, e := range tbl.Entries {
		frame := bundle[e.Offset : e.Offset+e.Length]
		plain, err := dec.DecodeAll(frame, nil)
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(bytes.NewReader(plain))
		h, err := tr.Next()
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, Entry{Header: *h, Body: body, Frame: frame})
	}
	last := tbl.Entries[len(tbl.Entries)-1]
	return entries, bundle[last.Offset+last.Length : tableOff]
}

// Tar returns the entries as an uncompressed tar stream, with the
// end-of-archive blocks if close is set.
func Tar(t testing.TB, entries []Entry, close bool) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		if e.Raw != nil {
			// Pad the entry before, then the raw bytes, already padded.
			if err := tw.Flush(); err != nil {
				t.Fatal(err)
			}
			b.Write(e.Raw)
			continue
		}
		h := e.Header
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.Body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	if close {
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// Stream encodes the entries as one tar stream in one zstd frame, without
// a seek table: every reader reads it sequentially.
func Stream(t testing.TB, entries []Entry) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(Tar(t, entries, true), nil)
}

var blobNameRe = regexp.MustCompile(`^blobs/(sha256/[a-f0-9]{64}|sha512/[a-f0-9]{128})$`)

// Framed keeps the original frame of every unchanged entry, encodes each
// changed one (Frame nil) as a frame of its own, appends endOfArchive and
// writes a valid seek table, as a careful attacker would: readers read it
// through the seek table. Blob entries get the digest their name says,
// directories none, other files the digest of their content.
func Framed(t testing.TB, entries []Entry, endOfArchive []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	var out []byte
	var tbl []SeekEntry
	for _, e := range entries {
		frame := e.Frame
		if frame == nil {
			frame = enc.EncodeAll(Tar(t, []Entry{e}, false), nil)
		}
		se := SeekEntry{Name: e.Header.Name, Size: e.Header.Size, Offset: int64(len(out)), Length: int64(len(frame))}
		switch {
		case strings.HasSuffix(e.Header.Name, "/"):
		case blobNameRe.MatchString(e.Header.Name):
			alg, hex, _ := strings.Cut(strings.TrimPrefix(e.Header.Name, "blobs/"), "/")
			se.Digest = digest.NewDigestFromEncoded(digest.Algorithm(alg), hex)
		default:
			se.Digest = digest.FromBytes(e.Body)
		}
		tbl = append(tbl, se)
		out = append(out, frame...)
	}
	out = append(out, endOfArchive...)
	return append(out, SeekFrame(t, struct {
		Entries []SeekEntry `json:"entries"`
	}{tbl}, int64(len(out)))...)
}

// SeekFrame encodes table, any value that marshals to the seek table JSON
// (such as a *bundle.SeekTable), as the seek table frame of a bundle whose
// table starts at file offset off: a zstd skippable frame with the JSON and
// the 32-byte footer of docs/format.md.
func SeekFrame(t testing.TB, table any, off int64) []byte {
	t.Helper()
	js, err := json.Marshal(table)
	if err != nil {
		t.Fatal(err)
	}
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, seekFrameMagic)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(js)+seekFooterSize))
	b = append(b, js...)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(js)))
	b = binary.LittleEndian.AppendUint64(b, uint64(off))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(js, crc32.MakeTable(crc32.Castagnoli)))
	b = binary.LittleEndian.AppendUint32(b, 1) // version
	return append(b, seekFooterMagic...)
}

// Index returns the position of entry name, failing the test if there is
// none.
func Index(t testing.TB, entries []Entry, name string) int {
	t.Helper()
	for i, e := range entries {
		if e.Header.Name == name {
			return i
		}
	}
	t.Fatalf("the bundle has no entry %s", name)
	return -1
}

// WithBody returns a copy of entries with the content of entry name
// replaced (and its frame dropped).
func WithBody(t testing.TB, entries []Entry, name string, body []byte) []Entry {
	t.Helper()
	out := append([]Entry(nil), entries...)
	i := Index(t, out, name)
	out[i].Body, out[i].Frame, out[i].Header.Size = body, nil, int64(len(body))
	return out
}

// Flipped returns a copy of entries with one byte in the middle of the
// content of entry name changed.
func Flipped(t testing.TB, entries []Entry, name string) []Entry {
	t.Helper()
	b := bytes.Clone(entries[Index(t, entries, name)].Body)
	b[len(b)/2] ^= 0x20
	return WithBody(t, entries, name, b)
}

// PAXRecord returns one PAX extended header record, "LEN key=value\n",
// where LEN counts the whole record.
func PAXRecord(key, value string) string {
	rest := " " + key + "=" + value + "\n"
	n := len(rest) + 1
	for len(fmt.Sprint(n))+len(rest) != n {
		n++
	}
	return fmt.Sprint(n) + rest
}

// WithPAX returns e preceded, in the same tar entry, by a PAX extended
// header (typeflag x) holding records as they are, which may be invalid or
// larger than tar.Writer allows: the result is a Raw entry without frame.
// The Header stays e's, for the seek table; set its Size to what the
// records claim when a table should agree with them.
func WithPAX(t testing.TB, e Entry, records string) Entry {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	// A ustar header for a file of len(records) bytes, then the typeflag
	// changed to x and the checksum recomputed.
	if err := tw.WriteHeader(&tar.Header{Name: "PaxHeaders/" + path.Base(e.Header.Name), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(records)), Format: tar.FormatUSTAR}); err != nil {
		t.Fatal(err)
	}
	hdr := b.Bytes()[:512] // written by WriteHeader
	hdr[156] = tar.TypeXHeader
	copy(hdr[148:156], "        ")
	var sum int64
	for _, c := range hdr {
		sum += int64(c)
	}
	copy(hdr[148:156], fmt.Sprintf("%06o\x00 ", sum))
	out := append(bytes.Clone(hdr), records...)
	out = append(out, make([]byte, (512-len(records)%512)%512)...)
	plain := e
	plain.Raw, plain.Frame = nil, nil
	out = append(out, Tar(t, []Entry{plain}, false)...)
	// Tar leaves the last entry's padding to the next header: add it.
	if pad := (512 - len(out)%512) % 512; pad > 0 {
		out = append(out, make([]byte, pad)...)
	}
	e.Raw, e.Frame = out, nil
	return e
}
