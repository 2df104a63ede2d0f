//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package bundle_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/ferryproject/ferry/bundle"
)

// A receipt given as --base through a pipe (a shell's process
// substitution) was refused with "seek …: illegal seek": ReadBase sought
// back to the start after sniffing the first bytes.
func TestReadBaseReceiptFromPipe(t *testing.T) {
	receipt := []byte(`{"version":1,"destination":"reg.local/m","tags":{},"blobs":["` + digest.FromString("layer").String() + `"],"bundles":[]}`)
	fifo := filepath.Join(t.TempDir(), "receipt.json")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("this file system cannot make a named pipe for the test: %v", err)
	}
	go func() {
		if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			_, _ = f.Write(receipt)
			f.Close()
		}
	}()
	b, err := bundle.ReadBase(fifo)
	if err != nil {
		t.Fatal(err)
	}
	if b.Kind != bundle.BaseReceipt || b.Digest != digest.FromBytes(receipt) || b.Blobs() != 1 || !b.Holds(digest.FromString("layer")) {
		t.Errorf("base %v with %d blobs", b, b.Blobs())
	}
}
