// Package fastjson decodes JSON the way encoding/json does, faster: the
// tracking API decodes every event it acknowledges, and encoding/json's
// reflective decoder into maps was half of the handler's CPU.
//
// Unmarshal decodes with github.com/goccy/go-json and, when that fails,
// decodes again with encoding/json, so a caller sees encoding/json's
// errors (types, messages, offsets) and its result on any input it
// rejects. fastjson_test.go holds the two decoders' results identical on
// the vendors' sample payloads and on random Segment batches.
package fastjson

import (
	"encoding/json"
	"reflect"
	"unsafe"

	gojson "github.com/goccy/go-json"
)

// Unmarshal is json.Unmarshal into a fresh value: v (a non-nil pointer)
// is zeroed before the second decode, so what a failed fast decode left
// in it never mixes with encoding/json's partial result.
func Unmarshal(data []byte, v any) error {
	if decodedFast(data, v) {
		return nil
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv.Elem().SetZero()
	}
	return json.Unmarshal(data, v)
}

// UnmarshalString is Unmarshal of s without copying it into a []byte
// first (a stored row's JSON text: go-json copies its input anyway, and
// encoding/json only reads it).
func UnmarshalString(s string, v any) error {
	return Unmarshal(unsafe.Slice(unsafe.StringData(s), len(s)), v)
}

// decodedFast reports whether the fast decoder took data. A panic inside
// it (a bug on some odd input) counts as not taken: the input is then
// decoded by encoding/json, and no single request or event can stop a
// handler or a consumer.
func decodedFast(data []byte, v any) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return gojson.Unmarshal(data, v) == nil
}
