//go:build race

package main

// raceEnabled: the race detector's shadow memory makes RSS bounds moot.
const raceEnabled = true
