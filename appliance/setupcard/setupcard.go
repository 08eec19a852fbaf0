// Package setupcard is the box's setup code: the one-time secret that
// claims an unset box, how it is made and kept on /perm, and how a person
// finds it — hearth-setup.txt on the SD card's boot partition (readable on
// any computer) and the box's console.
//
// An image built by its owner carries a code made at build time (image/).
// A published image carries none (every box flashed from it would share
// it): the box makes its own on first start (LoadOrCreate) and writes the
// file onto its own card (WriteBoot).
package setupcard

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	qrcode "github.com/skip2/go-qrcode"
)

// FileName is the text file on the boot partition.
const FileName = "hearth-setup.txt"

// alphabet leaves out 0/O and 1/I/L so a code read off paper or a screen
// is typed back without guessing.
const alphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"

// New draws a code like "ABCD-EFGH-JKMN-PQRS" from crypto/rand (16 of 31
// symbols: about 79 bits; the setup page also rate-limits attempts).
func New() (string, error) {
	var b strings.Builder
	buf := make([]byte, 1)
	for n := 0; n < 16; {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("setup code: %w", err)
		}
		// Rejection sampling: 248 = 8*31, so every symbol is equally likely.
		if buf[0] >= 248 {
			continue
		}
		if n > 0 && n%4 == 0 {
			b.WriteByte('-')
		}
		b.WriteByte(alphabet[int(buf[0])%len(alphabet)])
		n++
	}
	return b.String(), nil
}

// Valid reports whether s has the shape New produces.
func Valid(s string) bool {
	if len(s) != 19 {
		return false
	}
	for i, c := range s {
		if i%5 == 4 {
			if c != '-' {
				return false
			}
		} else if !strings.ContainsRune(alphabet, c) {
			return false
		}
	}
	return true
}

// Find returns the first code in text ("" if none): how the build checks
// that a published image carries none, and the box that its card file
// holds the current one.
func Find(text string) string {
	for _, f := range strings.FieldsFunc(text, func(r rune) bool { return !(r == '-' || unicode.IsDigit(r) || unicode.IsUpper(r)) }) {
		for i := 0; i+19 <= len(f); i++ {
			if Valid(f[i : i+19]) {
				return f[i : i+19]
			}
		}
	}
	return ""
}

// Normalize makes what a person typed comparable with the stored code:
// upper case, no spaces, dashes every four characters.
func Normalize(s string) string {
	var b strings.Builder
	n := 0
	for _, c := range strings.ToUpper(s) {
		if c == '-' || unicode.IsSpace(c) {
			continue
		}
		if n > 0 && n%4 == 0 {
			b.WriteByte('-')
		}
		b.WriteRune(c)
		n++
	}
	return b.String()
}

// LoadOrCreate returns the code in path, making and saving a fresh one
// when there is none. Two programs may ask at once on first boot (xmppd
// and cmd/firstboot): the file is created with link(2), which fails if it
// exists, so both end with the same code. created says whether this call
// made it.
func LoadOrCreate(path string) (code string, created bool, err error) {
	for range 3 {
		b, err := os.ReadFile(path)
		if err == nil {
			if c := Normalize(string(b)); c != "" {
				return c, false, nil
			}
			// An empty file (a cut before its data reached the disk):
			// replace it.
			os.Remove(path)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", false, fmt.Errorf("setup code: %w", err)
		}
		if code, err = New(); err != nil {
			return "", false, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return "", false, fmt.Errorf("setup code: %w", err)
		}
		tmp, err := os.CreateTemp(filepath.Dir(path), ".setup-code.tmp*")
		if err != nil {
			return "", false, fmt.Errorf("setup code: %w", err)
		}
		_, werr := tmp.WriteString(code + "\n")
		if werr == nil {
			werr = tmp.Sync()
		}
		if cerr := tmp.Close(); werr == nil {
			werr = cerr
		}
		if werr == nil {
			werr = os.Link(tmp.Name(), path)
		}
		os.Remove(tmp.Name())
		if werr == nil {
			syncDir(filepath.Dir(path))
			return code, true, nil
		}
		if !errors.Is(werr, fs.ErrExist) {
			return "", false, fmt.Errorf("setup code: %w", werr)
		}
		// Someone else made it first: read theirs.
	}
	return "", false, errors.New("setup code: the file keeps changing")
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// URL is the address the QR code points a phone at.
func URL(code string) string {
	return "http://hearth.local/setup?code=" + url.QueryEscape(code)
}

// QR renders URL(code) as a QR code of text (half-block characters), for a
// terminal or a file shown in a fixed-width font.
func QR(code string) (string, error) {
	q, err := qrcode.New(URL(code), qrcode.Medium)
	if err != nil {
		return "", fmt.Errorf("setup QR: %w", err)
	}
	return q.ToSmallString(false), nil
}

// Text is hearth-setup.txt: the code, plain-words steps, the link and its
// QR code. CRLF line ends, so every computer's text viewer shows lines.
func Text(code string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Hearth setup code: %s\n\n", code)
	b.WriteString("How to set up your chat:\n" +
		"1. Put this memory card back into the box.\n" +
		"2. Connect the box to your router with a network cable, then plug in its power.\n" +
		"3. Wait about two minutes.\n" +
		"4. On a phone or computer connected to the same home network, open\n" +
		"   " + URL(code) + "\n" +
		"   (or open http://hearth.local and type the code above).\n" +
		"   If that page does not open, look in your router's list of devices\n" +
		"   for \"hearth\" and open its number instead, like http://192.168.1.23\n\n" +
		"Keep this code to yourself until the chat is set up: whoever has it can\n" +
		"set up the box. Once set up, the code is no longer needed.\n")
	if qr, err := QR(code); err == nil {
		b.WriteString("\nThe same link as a QR code (point a phone's camera at it; it shows\n" +
			"correctly only in a fixed-width font):\n\n" + qr)
	}
	return strings.ReplaceAll(b.String(), "\n", "\r\n")
}

// Placeholder is hearth-setup.txt in a published image before its first
// start: there is no code yet.
func Placeholder() string {
	return strings.ReplaceAll("This box has not made its setup code yet.\n\n"+
		"Put this memory card into the box, connect the box to your router with a\n"+
		"network cable and plug in its power. On its first start the box makes its\n"+
		"own setup code and writes it into this file. After about two minutes, take\n"+
		"the card out again (unplug the power first) and read this file, or plug a\n"+
		"screen into the box: the code is shown there too.\n", "\n", "\r\n")
}
