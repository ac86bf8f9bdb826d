package main

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
)

func TestDisplayText(t *testing.T) {
	for in, want := range map[string]string{
		"s3":                   "s3",
		"eu-west-1":            "eu-west-1",
		"statebucket 0.1.0":    "statebucket 0.1.0",
		"région-é":             "région-é",
		"":                     "",
		"\x1b[31mred\x1b[0m":   `"\x1b[31mred\x1b[0m"`,
		"a\tb\nc\rd":           `"a\tb\nc\rd"`,
		"bell\a":               `"bell\a"`,
		"\xff\xfe":             `"\xff\xfe"`,
		"\u202eevil":           `"\u202eevil"`,
		"\u009b31m":            `"\u009b31m"`,
		`"looks quoted"`:       `"\"looks quoted\""`,
		"tab\there":            `"tab\there"`,
		"back\\slash is fine":  "back\\slash is fine",
		"nbsp\u00a0not simple": `"nbsp\u00a0not simple"`,
	} {
		assert.Equal(t, want, displayText(in), "%q", in)
	}
}

func TestDisplayKey(t *testing.T) {
	for in, want := range map[string]string{
		"photos/cat.jpg":               "photos/cat.jpg",
		"":                             `""`,
		"with space":                   `"with space"`,
		"b/k\x00v1":                    `"b/k\x00v1"`,
		"\xff":                         `"\xff"`,
		`say "hi"`:                     `"say \"hi\""`,
		"\x1b]0;title\x07":             `"\x1b]0;title\a"`,
		"../../etc/passwd":             "../../etc/passwd",
		"数据/ファイル":                      "数据/ファイル",
		"b/" + strings.Repeat("x", 57): "b/" + strings.Repeat("x", 57),
	} {
		assert.Equal(t, want, displayKey(in), "%q", in)
	}

	// Long keys are shortened in the middle, whole escapes kept.
	long := "bucket/" + strings.Repeat("dir/", 1000) + "file\x00v1"
	got := displayKey(long)
	assert.Equal(t, maxKeyWidth, utf8.RuneCountInString(got), got)
	assert.True(t, strings.HasPrefix(got, `"bucket/dir/`), got)
	assert.True(t, strings.HasSuffix(got, `/file\x00v1"`), got)
	assert.Contains(t, got, ellipsis)

	for _, k := range []string{
		strings.Repeat("\x00", 4096),
		strings.Repeat("\xff", 100) + strings.Repeat("é", 100),
		strings.Repeat("\U0010ffff", 50),
		strings.Repeat("a", 61),
		strings.Repeat("界", 300),
	} {
		got := displayKey(k)
		assert.LessOrEqual(t, utf8.RuneCountInString(got), maxKeyWidth, "%q", got)
		assert.True(t, isPrintable(got), "%q", got)
		head, tail, ok := strings.Cut(got, ellipsis)
		if !assert.True(t, ok, "%q", got) {
			continue
		}
		// The halves are the quoted key's start and end, cut between
		// escape sequences, never inside one.
		quoted := quoteKey(k)
		assert.True(t, strings.HasPrefix(quoted, head), "%q", got)
		assert.True(t, strings.HasSuffix(quoted, tail), "%q", got)
		cuts := map[int]bool{0: true}
		at := 0
		for _, u := range displayUnits(quoted) {
			at += len(u)
			cuts[at] = true
		}
		assert.True(t, cuts[len(head)], "head %q ends inside an escape", head)
		assert.True(t, cuts[len(quoted)-len(tail)], "tail %q starts inside an escape", tail)
	}
}

func TestEscapeControls(t *testing.T) {
	for in, want := range map[string]string{
		`store: get "b/k\x00": not found`: `store: get "b/k\x00": not found`,
		"raw \x1b[2J clear":               `raw \x1b[2J clear`,
		"bad \xff byte":                   `bad \xff byte`,
		"line\nbreak":                     `line\nbreak`,
		"rtl \u202e":                      `rtl \u202e`,
		"plain é":                         "plain é",
	} {
		assert.Equal(t, want, escapeControls(in), "%q", in)
	}
}
