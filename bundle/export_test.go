package bundle

// SetMaxReferrers lowers the number of referrers an export carries, for a
// test that must not run in parallel with others; it returns the function
// that restores the limit.
func SetMaxReferrers(n int) (restore func()) {
	old := maxReferrers
	maxReferrers = n
	return func() { maxReferrers = old }
}
