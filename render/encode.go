package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"

	gojson "github.com/goccy/go-json"
)

// writeIndented writes v as encoding/json's Encoder with SetIndent("", "  ")
// does, byte for byte, with github.com/goccy/go-json doing the work. Why:
// encoding/json indents after encoding, and on a 33,000-port report (35 MB
// of JSON) that took 0.1-0.2 s of the doctor's second; goccy writes the
// same bytes two to three times as fast. Whenever it fails or panics,
// encoding/json writes the document instead, so an encoder bug costs time,
// never output. TestFastJSONMatchesEncodingJSON holds the two to the same
// bytes on every fixture's report and plan.
func writeIndented(w io.Writer, v any) error {
	b, err := fastIndented(v)
	if err != nil {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	_, err = w.Write(b)
	return err
}

var errEncoderPanic = errors.New("encoder panicked")

func fastIndented(v any) (b []byte, err error) {
	defer func() {
		if recover() != nil {
			b, err = nil, errEncoderPanic
		}
	}()
	var buf bytes.Buffer
	enc := gojson.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
