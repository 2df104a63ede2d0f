package bundle_test

// Hostile review of the per-import records and pruning of the import
// receipt (docs/format.md, 11.1 and 11.4): holes found, each pinned by a
// test.

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ferryproject/ferry/bundle"
)

// Two import hosts share one destination: host A trusts the keys of two
// teams (K1, K2), host B trusts K1 alone. B imports K1's January bundle of
// team/app:1.0; A imports K2's February bundle of the same tag. A pruned
// the January entry as superseded, but only for A's key set: to B, which
// cannot verify February's entry, January's was the only signed history
// of the tag, and a K1-signed bundle older than January then passed B's
// rollback check. An entry is superseded only by a later entry signed
// with the same key, which every host that trusts the one trusts.
func TestReceiptPruneKeepsOtherKeySetHistory(t *testing.T) {
	f := newRfix(t)
	k2, err := bundle.GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	dec := jan.AddDate(0, -1, 0)
	d0 := f.push(t, "team/app:1.0", "app-0")
	pDec, iDec := f.export(t, dec, f.key, "team/app:1.0")
	d1 := f.push(t, "team/app:1.0", "app-1")
	pJan, iJan := f.export(t, jan, f.key, "team/app:1.0")
	d2 := f.push(t, "team/app:1.0", "app-2")
	pFeb, _ := f.export(t, feb, k2, "team/app:1.0")
	if _, err := f.imp(t, pJan, bundle.ImportOptions{}, f.key.Public()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.imp(t, pFeb, bundle.ImportOptions{}, f.key.Public(), k2.Public()); err != nil {
		t.Fatal(err)
	}
	_, err = f.imp(t, pDec, bundle.ImportOptions{}, f.key.Public())
	key := f.dst.Host + "/m/team/app:1.0"
	want := fmt.Sprintf("rollback refused: %s holds %s, but bundle %s created %s set it to %s; this bundle (%s, created %s) is older and would set it to %s; nothing was pushed (to accept this knowingly, import again with --allow-rollback)",
		key, d2, iJan, jan.Format(time.RFC3339), d1, iDec, dec.Format(time.RFC3339), d0)
	if !errors.Is(err, bundle.ErrRollback) || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	if got := f.tag(t, "team/app:1.0"); got != d2 {
		t.Errorf("tag moved back to %s", got)
	}
}
