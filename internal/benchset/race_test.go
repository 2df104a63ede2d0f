//go:build race

package benchset_test

// The race detector makes compression some twenty times slower: the sized
// test builds a smaller set under it.
const raceEnabled = true
