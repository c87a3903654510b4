package profiles

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// idx_profiles_last_seen (last_seen alone) is dropped: the writer paid for
// it on every event that moved a profile's last_seen, and no reader needs
// it. The customers and visitors lists walk idx_profiles_known_last_seen
// (known, last_seen); the Everyone list and a segment preview count every
// live profile anyway (a full scan), so sorting their page without the
// index costs no more than the count beside it; segment rules read
// last_seen from the computed traits, not the column.
func init() {
	m.Register(func(app core.App) error {
		profiles, err := app.FindCollectionByNameOrId("profiles")
		if err != nil {
			return err
		}
		profiles.RemoveIndex("idx_profiles_last_seen")
		return app.Save(profiles)
	}, func(app core.App) error {
		profiles, err := app.FindCollectionByNameOrId("profiles")
		if err != nil {
			return nil
		}
		profiles.AddIndex("idx_profiles_last_seen", false, "last_seen", "")
		return app.Save(profiles)
	}, "1764500500_profiles_last_seen_index.go")
}
