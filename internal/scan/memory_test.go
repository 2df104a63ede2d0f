package scan

import (
	"runtime"
	"strings"
	"testing"
)

// TestSmallNodesMemory: a file well under MaxFileBytes made of tiny YAML
// nodes (empty documents, or one flow list of one-letter scalars) must not
// take a hundred times its size in memory: at 64 MiB that is 6 GB or more,
// enough to kill the operator's machine. Measured here on 4 MiB: what the
// scan allocates, at most 16 times the input.
func TestSmallNodesMemory(t *testing.T) {
	t.Skip("BUG: the scan decodes every document of a file into yaml.Node trees before looking at any, ~100 bytes of memory per byte of input for tiny nodes (12 MiB of '---' lines: 1.4 GB RSS); MaxFileBytes (64 MiB) bounds the input, not the memory")
	const size = 4 << 20
	for name, in := range map[string]string{
		"empty documents": strings.Repeat("---\n", size/4),
		"flow list":       "x: [" + strings.Repeat("a,", size/2) + "a]\n",
	} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := Read(name, strings.NewReader(in))
		runtime.ReadMemStats(&after)
		if err == nil {
			if got := after.TotalAlloc - before.TotalAlloc; got > 16*size {
				t.Errorf("%s: the scan of %d bytes allocated %d MiB", name, size, got>>20)
			}
		}
	}
}
