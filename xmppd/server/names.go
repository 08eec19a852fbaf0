package server

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/width"
)

// One rule for "this text names that member", shared by the group chat's
// mentions (a member not in the room is woken, mod/muc) and push (a
// hibernating member's phone is woken for a group chat line that names
// them, mod/push): the two used to differ, and push woke "al" for "also".
// Names match as whole words after folding case and width (a full-width
// "ｃａｒｏｌ" names carol, as the nickname rules fold them); "carol" is
// not named in "carolyn".

// FoldText folds case and width; fold text and names once, then call
// ContainsName as often as needed.
func FoldText(s string) string { return strings.ToLower(width.Fold.String(s)) }

// IsNameRune is what continues a word.
func IsNameRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' }

// ContainsName reports whether name occurs in text as a whole word (or
// words: a nickname may have spaces). Both must be folded (FoldText).
func ContainsName(text, name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i <= len(text)-len(name); {
		k := strings.Index(text[i:], name)
		if k < 0 {
			return false
		}
		at := i + k
		before, _ := utf8.DecodeLastRuneInString(text[:at])
		after, _ := utf8.DecodeRuneInString(text[at+len(name):])
		if (at == 0 || !IsNameRune(before)) && (at+len(name) == len(text) || !IsNameRune(after)) {
			return true
		}
		_, size := utf8.DecodeRuneInString(text[at:])
		i = at + size
	}
	return false
}

// Names reports whether text names name (both unfolded).
func Names(text, name string) bool { return ContainsName(FoldText(text), FoldText(name)) }
