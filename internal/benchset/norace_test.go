//go:build !race

package benchset_test

const raceEnabled = false
