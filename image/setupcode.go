package image

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"net/url"
	"strings"

	qrcode "github.com/skip2/go-qrcode"
)

// setupAlphabet leaves out 0/O, 1/I/L so a code read off a screen or paper
// can be typed back without guessing.
const setupAlphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"

// setupCodeLen characters of a 31-letter alphabet give about 79 bits: far
// beyond guessing, while the setup page also rate-limits attempts.
const setupCodeLen = 16

// SetupCodeFile is the name of the text file on the boot partition (readable
// on any computer the SD card is put into) holding the image's setup code.
const SetupCodeFile = "hearth-setup.txt"

// PermSetupCodeFile is where the same code is placed on /perm for the
// appliance itself (relative to /perm).
const PermSetupCodeFile = "hearth/setup-code"

// NewSetupCode returns a fresh setup code like "ABCD-EFGH-JKMN-PQRS", drawn
// with crypto/rand: every image gets its own, so no box shares a secret.
func NewSetupCode() (string, error) {
	var b strings.Builder
	max := big.NewInt(int64(len(setupAlphabet)))
	for i := 0; i < setupCodeLen; i++ {
		if i > 0 && i%4 == 0 {
			b.WriteByte('-')
		}
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", fmt.Errorf("setup code: %w", err)
		}
		b.WriteByte(setupAlphabet[n.Int64()])
	}
	return b.String(), nil
}

// ValidSetupCode reports whether s has the shape NewSetupCode produces.
func ValidSetupCode(s string) bool {
	if len(s) != setupCodeLen+setupCodeLen/4-1 {
		return false
	}
	for i, c := range s {
		if i%5 == 4 {
			if c != '-' {
				return false
			}
			continue
		}
		if !strings.ContainsRune(setupAlphabet, c) {
			return false
		}
	}
	return true
}

// SetupURL is the address the QR code points a phone at.
func SetupURL(code string) string {
	return "http://hearth.local/setup?code=" + url.QueryEscape(code)
}

// SetupText is the content of the setup-code file on the boot partition.
func SetupText(code string) string {
	return fmt.Sprintf("Hearth setup code: %s\r\n\r\nConnect the box to your router, then open\r\n%s\r\non a phone or computer in the same network and enter the code.\r\n", code, SetupURL(code))
}

// SetupQR renders the setup URL as a QR code made of text, for a terminal.
func SetupQR(code string) (string, error) {
	q, err := qrcode.New(SetupURL(code), qrcode.Medium)
	if err != nil {
		return "", fmt.Errorf("setup QR: %w", err)
	}
	return q.ToSmallString(false), nil
}
