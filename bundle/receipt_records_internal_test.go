package bundle

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// pendingRecords looked each record tag up in the merged receipt's
// records list one by one: tags times records string comparisons, at each
// load and each settled check of every import. A receipt repository with
// 100000 record tags (the tag limit; or ten thousands after as many
// imports over the years) and a receipt listing as many, or someone with
// write access listing a million names in records (64 MiB), held every
// import for minutes to hours. It is a set look-up now.
func TestReceiptPendingRecordsLinear(t *testing.T) {
	const n = 100000
	tags := make([]string, 0, n+2)
	rc := &Receipt{}
	for i := range n {
		name := fmt.Sprintf("%s%064x", RecordTagPrefix, i)
		tags = append(tags, name)
		rc.Records = append(rc.Records, name)
	}
	tags = append(tags, "latest", RecordTagPrefix+"zz", RecordTagPrefix+"aa")
	start := time.Now()
	got := pendingRecords(tags, rc)
	took := time.Since(start)
	if want := []string{RecordTagPrefix + "aa", RecordTagPrefix + "zz"}; !slices.Equal(got, want) {
		t.Errorf("pending %q, want %q", got, want)
	}
	if took > 2*time.Second {
		t.Errorf("pendingRecords of %d tags against %d records took %v", len(tags), len(rc.Records), took)
	}
}
