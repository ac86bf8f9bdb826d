package main

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxKeyWidth is the most characters a blob key takes in a table; longer
// keys are shortened in the middle.
const maxKeyWidth = 60

// ellipsis marks where a shortened key lost its middle.
const ellipsis = "…"

// displayText returns s for text output: as it is when every rune is
// printable, and otherwise as a Go string literal, so that a hostile
// manifest cannot send a terminal control characters or escape sequences.
// Invalid UTF-8 and text that starts with a double quote (which would look
// quoted) are quoted too. --json output never goes through it.
func displayText(s string) string {
	if isPrintable(s) && !strings.HasPrefix(s, `"`) {
		return s
	}
	return strconv.Quote(s)
}

// displayKey returns a blob key for a table column: quoted unless it is
// printable, not empty and free of spaces, and shortened in the middle to
// at most maxKeyWidth characters. A shortened key keeps its quotes and
// whole escape sequences: "photos/…\x00v1".
func displayKey(key string) string {
	s := quoteKey(key)
	if utf8.RuneCountInString(s) <= maxKeyWidth {
		return s
	}
	units := displayUnits(s)
	keep := maxKeyWidth - utf8.RuneCountInString(ellipsis)
	width := 0
	head := 0 // units kept from the start: up to half the width
	for head < len(units) && width+utf8.RuneCountInString(units[head]) <= keep/2 {
		width += utf8.RuneCountInString(units[head])
		head++
	}
	tail := len(units) // units[tail:] are kept from the end: the rest
	for tail > head && width+utf8.RuneCountInString(units[tail-1]) <= keep {
		width += utf8.RuneCountInString(units[tail-1])
		tail--
	}
	return strings.Join(units[:head], "") + ellipsis + strings.Join(units[tail:], "")
}

// quoteKey returns key as a Go string literal unless it is printable, not
// empty and free of spaces and double quotes.
func quoteKey(key string) string {
	if key == "" || !isPrintable(key) || strings.ContainsAny(key, ` "`) {
		return strconv.Quote(key)
	}
	return key
}

// displayUnits splits s, the output of quoteKey, into the
// pieces a shortened key may not cut: escape sequences and single runes.
func displayUnits(s string) []string {
	var units []string
	for i := 0; i < len(s); {
		n := 1
		if s[i] == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case 'x':
				n = 4
			case 'u':
				n = 6
			case 'U':
				n = 10
			default:
				n = 2
			}
		} else {
			_, n = utf8.DecodeRuneInString(s[i:])
		}
		n = min(n, len(s)-i)
		units = append(units, s[i:i+n])
		i += n
	}
	return units
}

// isPrintable reports whether s is valid UTF-8 made only of printable
// runes (letters, marks, numbers, punctuation, symbols and the ASCII
// space), which print as themselves.
func isPrintable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !strconv.IsPrint(r) {
			return false
		}
	}
	return true
}

// escapeControls returns s with every rune that is not printable, and
// every invalid byte, written as a Go escape sequence; the rest, quotes
// and backslashes included, stays as it is. It makes a message safe for
// a terminal.
func escapeControls(s string) string {
	if isPrintable(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case strconv.IsPrint(r):
			b.WriteString(s[i : i+n])
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}
