//go:build !race

package heatmap_test

// raceEnabled: see race_test.go.
const raceEnabled = false
