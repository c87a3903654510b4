package profiles

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// The merge ledger says why two profiles became one (docs/profiles.md
// "Merge ledger"): the identifier that joined them, the event that
// carried it and the earlier event that had put it on the other profile,
// plus what an un-merge needs (the identities the loser brought). Rows
// written before this migration have these fields empty and are explained
// from their event_id alone.
func init() {
	m.Register(func(app core.App) error {
		merges, err := app.FindCollectionByNameOrId("profile_merges")
		if err != nil {
			return err
		}
		merges.Fields.Add(
			&core.TextField{Name: "kind", Max: 50},
			&core.TextField{Name: "value", Max: 300},
			&core.JSONField{Name: "cause", MaxSize: 1 << 12},
			&core.JSONField{Name: "earlier", MaxSize: 1 << 12},
			&core.TextField{Name: "survivor_name", Max: 300},
			&core.TextField{Name: "loser_name", Max: 300},
			&core.JSONField{Name: "loser_identities", MaxSize: 1 << 16},
		)
		return app.Save(merges)
	}, func(app core.App) error {
		merges, err := app.FindCollectionByNameOrId("profile_merges")
		if err != nil {
			return nil
		}
		for _, f := range []string{"kind", "value", "cause", "earlier", "survivor_name", "loser_name", "loser_identities"} {
			merges.Fields.RemoveByName(f)
		}
		return app.Save(merges)
	}, "1764500100_profiles_ledger.go")
}
