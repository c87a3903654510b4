package events

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestSchemaMatchesGoType keeps event.schema.json and the Event type in step.
func TestSchemaMatchesGoType(t *testing.T) {
	b, err := os.ReadFile("event.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	check := func(typ reflect.Type, props map[string]json.RawMessage, where string) {
		for i := 0; i < typ.NumField(); i++ {
			name := strings.Split(typ.Field(i).Tag.Get("json"), ",")[0]
			if _, ok := props[name]; !ok {
				t.Errorf("%s.%s missing from event.schema.json", where, name)
			}
		}
		if len(props) != typ.NumField() {
			t.Errorf("%s: schema has %d properties, Go type %d", where, len(props), typ.NumField())
		}
	}
	top := map[string]json.RawMessage{}
	for k := range schema.Properties {
		top[k] = nil
	}
	check(reflect.TypeOf(Event{}), top, "event")
	check(reflect.TypeOf(Context{}), schema.Properties["context"].Properties, "context")
	ids := schema.Properties["identities"].Properties
	for _, k := range IdentityKinds {
		if _, ok := ids[k]; !ok {
			t.Errorf("identity %s missing from schema", k)
		}
	}
	if len(ids) != len(IdentityKinds) {
		t.Errorf("schema has %d identity kinds, Go %d", len(ids), len(IdentityKinds))
	}
}
