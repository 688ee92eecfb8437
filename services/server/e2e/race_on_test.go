//go:build race

package e2e

// raceEnabled: the race detector's shadow memory makes RSS bounds moot.
const raceEnabled = true
