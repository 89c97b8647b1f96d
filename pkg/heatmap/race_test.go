//go:build race

package heatmap_test

// raceEnabled shrinks the random series under the race detector: the package
// runs no goroutines, so the detector has little to find, and at its ~10×
// slowdown the full series would dominate the repository's test time.
const raceEnabled = true
