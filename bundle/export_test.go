package bundle

// SetMaxReferrers lowers the number of referrers an export carries, for a
// test that must not run in parallel with others; it returns the function
// that restores the limit.
func SetMaxReferrers(n int) (restore func()) {
	old := maxReferrers
	maxReferrers = n
	return func() { maxReferrers = old }
}

// SetMaxReceiptBytes lowers the size of a receipt readers accept, for a
// test that must not run in parallel with others (the padded receipts of
// the cap's tests are then a few MiB, not 64); it returns the function
// that restores the limit.
func SetMaxReceiptBytes(n int64) (restore func()) {
	old := maxReceiptBytes
	maxReceiptBytes = n
	return func() { maxReceiptBytes = old }
}

// MaxReceiptBytes is the size of a receipt readers accept.
func MaxReceiptBytes() int64 { return maxReceiptBytes }
