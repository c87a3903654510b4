package profiles

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
	"github.com/pocketbase/pocketbase/tools/types"

	"github.com/omni/omni/core/store/migrations"
)

// Un-merge (docs/profiles.md "Un-merge"): the merge ledger says when and by
// whom a merge was undone, and which other modules' rows the merge moved
// (so an un-merge moves exactly those back). profile_pair_blocks keeps two
// profiles an owner split apart from being merged again. Staff may read
// both; writes go through /api/v1/profiles/{id}/merges/{merge}/undo.
func init() {
	m.Register(func(app core.App) error {
		merges, err := app.FindCollectionByNameOrId("profile_merges")
		if err != nil {
			return err
		}
		merges.Fields.Add(
			&core.TextField{Name: "undone_at", Max: 30},
			&core.TextField{Name: "undone_by", Max: 50},
			&core.TextField{Name: "undone_by_name", Max: 300},
			&core.BoolField{Name: "pair_blocked"},
			&core.JSONField{Name: "moved_rows", MaxSize: 1 << 22},
		)
		if err := app.Save(merges); err != nil {
			return err
		}
		pairs := core.NewBaseCollection("profile_pair_blocks")
		pairs.Fields.Add(
			&core.TextField{Name: "profile_a", Required: true, Max: 50},
			&core.TextField{Name: "profile_b", Required: true, Max: 50},
			&core.TextField{Name: "kind", Max: 50},
			&core.TextField{Name: "value", Max: 300},
			&core.TextField{Name: "merge", Max: 50},
			&core.TextField{Name: "created_by", Max: 50},
			&core.AutodateField{Name: "created", OnCreate: true},
		)
		// profile_a < profile_b: one row per pair, found from either side.
		pairs.AddIndex("idx_profile_pair_blocks_pair", true, "profile_a, profile_b", "")
		pairs.AddIndex("idx_profile_pair_blocks_b", false, "profile_b", "")
		pairs.ListRule = types.Pointer(migrations.RuleStaff)
		pairs.ViewRule = types.Pointer(migrations.RuleStaff)
		return app.Save(pairs)
	}, func(app core.App) error {
		if c, err := app.FindCollectionByNameOrId("profile_pair_blocks"); err == nil {
			if err := app.Delete(c); err != nil {
				return err
			}
		}
		merges, err := app.FindCollectionByNameOrId("profile_merges")
		if err != nil {
			return nil
		}
		for _, f := range []string{"undone_at", "undone_by", "undone_by_name", "pair_blocked", "moved_rows"} {
			merges.Fields.RemoveByName(f)
		}
		return app.Save(merges)
	}, "1764500200_profiles_unmerge.go")
}
