package coretest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/statebucket/statebucket/core"
)

// RawString is a string of arbitrary bytes that survives a JSON round trip
// byte-exact. encoding/json silently replaces invalid UTF-8 in a string
// with U+FFFD, so RawString encodes valid UTF-8 as a plain JSON string and
// anything else as an object holding the standard, padded base64 of the
// bytes:
//
//	"photos/2024/cat.jpg"
//	{"base64":"//4="}
//
// Decoding accepts both forms, whatever the bytes; JSON null leaves the
// value unchanged, as for a plain string.
type RawString string

type rawStringBase64 struct {
	Base64 string `json:"base64"`
}

// MarshalJSON implements json.Marshaler.
func (s RawString) MarshalJSON() ([]byte, error) {
	if utf8.ValidString(string(s)) {
		return json.Marshal(string(s))
	}
	return json.Marshal(rawStringBase64{Base64: base64.StdEncoding.EncodeToString([]byte(s))})
}

// UnmarshalJSON implements json.Unmarshaler. An object must hold exactly the
// field "base64", with valid standard base64.
func (s *RawString) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	switch {
	case bytes.Equal(data, []byte("null")):
		return nil
	case len(data) > 0 && data[0] == '"':
		var plain string
		if err := json.Unmarshal(data, &plain); err != nil {
			return err
		}
		*s = RawString(plain)
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var b rawStringBase64
	if err := dec.Decode(&b); err != nil {
		return fmt.Errorf("coretest: raw string: want a string or {\"base64\": …}: %w", err)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(b.Base64)
	if err != nil {
		return fmt.Errorf("coretest: raw string: %w: %w", core.ErrInvalid, err)
	}
	*s = RawString(raw)
	return nil
}
