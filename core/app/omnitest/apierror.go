package omnitest

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"
)

// APIError is an error answer in PocketBase's shape, the one shape of
// every /api/v1 error (core/api).
type APIError struct {
	Status  int                   `json:"status"`
	Message string                `json:"message"`
	Data    map[string]FieldIssue `json:"data"`
}

// FieldIssue is one field's entry in APIError.Data.
type FieldIssue struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// WantError checks that code and body are a status answer in PocketBase's
// shape, with exactly the keys status, message and data, and returns it.
func WantError(t testing.TB, code int, body []byte, status int) APIError {
	t.Helper()
	if code != status {
		t.Fatalf("status %d, want %d: %s", code, status, body)
	}
	var keys map[string]json.RawMessage
	var out APIError
	if err := json.Unmarshal(body, &keys); err != nil {
		t.Fatalf("error body is not a JSON object: %s", body)
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "data,message,status" {
		t.Fatalf("error body has keys %v, want data, message, status: %s", names, body)
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Status != status || out.Message == "" || out.Data == nil {
		t.Fatalf("error body: %v %s", err, body)
	}
	return out
}

// WantFieldError is WantError for an answer about field: data.<field> has
// a code and a message, and the message starts with the field's name.
func WantFieldError(t testing.TB, code int, body []byte, status int, field string) APIError {
	t.Helper()
	out := WantError(t, code, body, status)
	if d, ok := out.Data[field]; !ok || d.Code == "" || d.Message == "" {
		t.Fatalf("no data.%s {code, message}: %s", field, body)
	}
	if !strings.HasPrefix(out.Message, field+": ") {
		t.Fatalf("message %q does not start with %q", out.Message, field+": ")
	}
	return out
}
