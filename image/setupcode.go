package image

import (
	"github.com/hearthchat/hearth/appliance/setupcard"
)

// SetupCodeFile is the name of the text file on the boot partition (readable
// on any computer the SD card is put into) holding the image's setup code.
const SetupCodeFile = setupcard.FileName

// PermSetupCodeFile is where the same code is placed on /perm for the
// appliance itself (relative to /perm; state.Dir.SetupCode).
const PermSetupCodeFile = "hearth/setup-code"

// NewSetupCode returns a fresh setup code like "ABCD-EFGH-JKMN-PQRS", drawn
// with crypto/rand: every image gets its own, so no box shares a secret.
func NewSetupCode() (string, error) { return setupcard.New() }

// ValidSetupCode reports whether s has the shape NewSetupCode produces.
func ValidSetupCode(s string) bool { return setupcard.Valid(s) }

// SetupURL is the address the QR code points a phone at.
func SetupURL(code string) string { return setupcard.URL(code) }

// SetupText is the content of the setup-code file on the boot partition
// (the same text the box writes there itself when it makes its code).
func SetupText(code string) string { return setupcard.Text(code) }

// SetupQR renders the setup URL as a QR code made of text, for a terminal.
func SetupQR(code string) (string, error) { return setupcard.QR(code) }
