//go:build !race

package mam

const raceEnabled = false
