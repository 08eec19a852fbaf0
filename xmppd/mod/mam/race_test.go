//go:build race

package mam

// The race detector allocates on its own: allocation bounds are checked
// without it.
const raceEnabled = true
