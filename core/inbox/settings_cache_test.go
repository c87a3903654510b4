package inbox_test

import (
	"testing"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/inbox"
)

// Settings are cached for the events path; a write through the records
// API (the admin UI) is seen at once, as is its removal.
func TestSettingsCacheSeesRecordWrites(t *testing.T) {
	s, m := startInbox(t, inbox.Options{})
	if got := m.SettingForTest("general"); got != nil {
		t.Fatalf("unset setting read as %v", got)
	}
	col, err := s.PB.FindCollectionByNameOrId(inbox.SettingsCollection)
	if err != nil {
		t.Fatal(err)
	}
	r := core.NewRecord(col)
	r.Set("key", "general")
	r.Set("value", `{"reopen_window":"2d"}`)
	if err := s.PB.Save(r); err != nil {
		t.Fatal(err)
	}
	if got := m.SettingForTest("general"); got["reopen_window"] != "2d" {
		t.Fatalf("after create: %v", got)
	}
	r.Set("value", `{"reopen_window":"3d"}`)
	if err := s.PB.Save(r); err != nil {
		t.Fatal(err)
	}
	if got := m.SettingForTest("general"); got["reopen_window"] != "3d" {
		t.Fatalf("after update: %v", got)
	}
	if err := s.PB.Delete(r); err != nil {
		t.Fatal(err)
	}
	if got := m.SettingForTest("general"); got != nil {
		t.Fatalf("after delete: %v", got)
	}
}
