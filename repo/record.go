package repo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"unicode/utf8"
)

// maxRecordBytes caps the small JSON records a repository keeps, tags and
// locks: a stored one that is larger is corrupt.
const maxRecordBytes = 64 << 10

// encodeRecord returns the JSON form of a tag or lock record: indented by
// two spaces, with a trailing newline.
func encodeRecord(v any) ([]byte, error) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// decodeRecord decodes data, a stored tag or lock record, into v, a
// pointer to a struct whose JSON fields are required and optional, as
// strictly as manifest.Decode: data must be valid UTF-8 holding exactly
// one JSON object, with each of required exactly once and each of optional
// at most once, spelled exactly, no other member, and no null, object or
// array as a value; nothing may follow it. The caller checks the values.
func decodeRecord(data []byte, v any, required []string, optional ...string) error {
	fields := slices.Concat(required, optional)
	if !utf8.Valid(data) {
		return errors.New("not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fmt.Errorf("want a JSON object at byte %d", dec.InputOffset())
	}
	seen := make([]bool, len(fields))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := tok.(string) // the decoder only yields strings as member names
		i := slices.Index(fields, name)
		switch {
		case i < 0:
			return fmt.Errorf("unknown field %q", name)
		case seen[i]:
			return fmt.Errorf("field %q is repeated", name)
		}
		seen[i] = true
		if tok, err = dec.Token(); err != nil {
			return err
		}
		switch tok.(type) {
		case string, json.Number, bool:
		default:
			return fmt.Errorf("field %q: want a string, number or boolean", name)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("trailing data at byte %d", dec.InputOffset())
	}
	if i := slices.Index(seen[:len(required)], false); i >= 0 {
		return fmt.Errorf("field %q is missing", fields[i])
	}
	// The shape is checked: what encoding/json accepts beyond it (names in
	// another case, repeated members) cannot occur any more.
	dec = json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
