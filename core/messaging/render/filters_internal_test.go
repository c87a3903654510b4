package render

import (
	"strings"
	"testing"
)

// Check's list of filters must match what the engine really has.
func TestFilterNamesExistInTheEngine(t *testing.T) {
	for name := range filterNames {
		_, err := Render(`{{ "1" | `+name+` }}`, nil)
		if err != nil && strings.Contains(err.Error(), "undefined filter") {
			t.Errorf("filter %s is listed but the engine lacks it", name)
		}
	}
	if _, err := Render(`{{ "1" | nosuch }}`, nil); err == nil || !strings.Contains(err.Error(), "undefined filter") {
		t.Fatalf("the probe cannot tell a missing filter: %v", err)
	}
}
