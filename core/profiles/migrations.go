package profiles

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"

	"github.com/omni/omni/core/store/migrations"
	"github.com/pocketbase/pocketbase/tools/types"
)

// Profiles, their identity graph and segments. Profiles, identities and
// memberships are written by the events processor with plain SQL in the
// events transaction (core/profiles); the collections give them a schema,
// indexes and read access for staff.
// Registered under the file name it was first applied with, so existing
// databases do not run it again. New migrations of this module are named
// "<unix time>_profiles_<what>.go" (see app.Module).
func init() {
	m.Register(func(app core.App) error {
		profiles := core.NewBaseCollection("profiles")
		profiles.Fields.Add(
			&core.TextField{Name: "merged_into", Max: 50},
			&core.TextField{Name: "name", Max: 300},
			&core.TextField{Name: "email", Max: 300},
			&core.TextField{Name: "phone", Max: 50},
			&core.JSONField{Name: "traits", MaxSize: 1 << 18},
			&core.JSONField{Name: "computed", MaxSize: 1 << 18},
			&core.JSONField{Name: "consent", MaxSize: 1 << 14},
			&core.DateField{Name: "first_seen"},
			&core.DateField{Name: "last_seen"},
			&core.NumberField{Name: "orders_count"},
			&core.TextField{Name: "lifecycle_stage", Max: 30},
			&core.TextField{Name: "engagement_level", Max: 30},
			&core.DateField{Name: "traits_due_at"},
			&core.AutodateField{Name: "created", OnCreate: true},
			&core.AutodateField{Name: "updated", OnCreate: true, OnUpdate: true},
		)
		// Few indexes: every one is paid on the hot path. Exact search goes
		// through identities (kind, value); merged_into is sparse.
		profiles.AddIndex("idx_profiles_merged_into", false, "merged_into", "merged_into != ''")
		profiles.AddIndex("idx_profiles_last_seen", false, "last_seen", "")
		profiles.AddIndex("idx_profiles_due", false, "traits_due_at", "traits_due_at != ''")
		profiles.ListRule = types.Pointer(migrations.RuleStaff)
		profiles.ViewRule = types.Pointer(migrations.RuleStaff)
		if err := app.Save(profiles); err != nil {
			return err
		}

		identities := core.NewBaseCollection("identities")
		identities.Fields.Add(
			&core.TextField{Name: "kind", Required: true, Max: 50},
			&core.TextField{Name: "value", Required: true, Max: 300},
			&core.TextField{Name: "profile", Required: true, Max: 50},
			&core.AutodateField{Name: "created", OnCreate: true},
		)
		identities.AddIndex("idx_identities_kind_value", true, "kind, value", "")
		identities.AddIndex("idx_identities_profile", false, "profile, kind", "")
		identities.ListRule = types.Pointer(migrations.RuleStaff)
		identities.ViewRule = types.Pointer(migrations.RuleStaff)
		if err := app.Save(identities); err != nil {
			return err
		}

		conflicts := core.NewBaseCollection("profile_conflicts")
		conflicts.Fields.Add(
			&core.TextField{Name: "profile_a", Required: true, Max: 50},
			&core.TextField{Name: "profile_b", Max: 50},
			&core.TextField{Name: "kind", Max: 50},
			&core.TextField{Name: "value_a", Max: 300},
			&core.TextField{Name: "value_b", Max: 300},
			&core.TextField{Name: "reason", Required: true, Max: 100},
			&core.SelectField{Name: "status", Values: []string{"open", "resolved", "ignored"}, MaxSelect: 1},
			&core.TextField{Name: "event_id", Max: 200},
			&core.TextField{Name: "note", Max: 2000},
			&core.AutodateField{Name: "created", OnCreate: true},
			&core.AutodateField{Name: "updated", OnCreate: true, OnUpdate: true},
		)
		conflicts.AddIndex("idx_profile_conflicts_pair", true, "profile_a, profile_b, reason", "")
		conflicts.AddIndex("idx_profile_conflicts_b", false, "profile_b", "")
		conflicts.ListRule = types.Pointer(migrations.RuleStaff)
		conflicts.ViewRule = types.Pointer(migrations.RuleStaff)
		conflicts.UpdateRule = types.Pointer(migrations.RuleOwner)
		if err := app.Save(conflicts); err != nil {
			return err
		}

		merges := core.NewBaseCollection("profile_merges")
		merges.Fields.Add(
			&core.TextField{Name: "survivor", Required: true, Max: 50},
			&core.TextField{Name: "loser", Required: true, Max: 50},
			&core.TextField{Name: "event_id", Max: 200},
			&core.AutodateField{Name: "created", OnCreate: true},
		)
		merges.AddIndex("idx_profile_merges_survivor", false, "survivor", "")
		merges.AddIndex("idx_profile_merges_loser", false, "loser", "")
		merges.ListRule = types.Pointer(migrations.RuleStaff)
		merges.ViewRule = types.Pointer(migrations.RuleStaff)
		if err := app.Save(merges); err != nil {
			return err
		}

		// Tombstones keep only hashes of erased identities.
		tombstones := core.NewBaseCollection("profile_tombstones")
		tombstones.Fields.Add(
			&core.TextField{Name: "hash", Required: true, Max: 100},
			&core.TextField{Name: "kind", Max: 50},
			&core.TextField{Name: "profile", Max: 50},
			&core.AutodateField{Name: "created", OnCreate: true},
		)
		tombstones.AddIndex("idx_profile_tombstones_hash", true, "hash", "")
		tombstones.ListRule = types.Pointer(migrations.RuleOwner)
		tombstones.ViewRule = types.Pointer(migrations.RuleOwner)
		if err := app.Save(tombstones); err != nil {
			return err
		}

		segments := core.NewBaseCollection("segments")
		segments.Fields.Add(
			&core.TextField{Name: "name", Required: true, Max: 200},
			&core.TextField{Name: "description", Max: 2000},
			&core.JSONField{Name: "rule", Required: true, MaxSize: 1 << 16},
			&core.AutodateField{Name: "created", OnCreate: true},
			&core.AutodateField{Name: "updated", OnCreate: true, OnUpdate: true},
		)
		segments.AddIndex("idx_segments_name", true, "name", "")
		segments.ListRule = types.Pointer(migrations.RuleStaff)
		segments.ViewRule = types.Pointer(migrations.RuleStaff)
		segments.CreateRule = types.Pointer(migrations.RuleOwner)
		segments.UpdateRule = types.Pointer(migrations.RuleOwner)
		segments.DeleteRule = types.Pointer(migrations.RuleOwner)
		if err := app.Save(segments); err != nil {
			return err
		}

		members := core.NewBaseCollection("segment_members")
		members.Fields.Add(
			&core.TextField{Name: "segment", Required: true, Max: 50},
			&core.TextField{Name: "profile", Required: true, Max: 50},
			&core.DateField{Name: "entered_at"},
		)
		members.AddIndex("idx_segment_members_pair", true, "segment, profile", "")
		members.AddIndex("idx_segment_members_profile", false, "profile", "")
		members.ListRule = types.Pointer(migrations.RuleStaff)
		members.ViewRule = types.Pointer(migrations.RuleStaff)
		if err := app.Save(members); err != nil {
			return err
		}

		counts := core.NewBaseCollection("segment_counts")
		counts.Fields.Add(
			&core.TextField{Name: "segment", Required: true, Max: 50},
			&core.TextField{Name: "day", Required: true, Max: 10},
			&core.NumberField{Name: "count"},
		)
		counts.AddIndex("idx_segment_counts_day", true, "segment, day", "")
		counts.ListRule = types.Pointer(migrations.RuleStaff)
		counts.ViewRule = types.Pointer(migrations.RuleStaff)
		return app.Save(counts)
	}, func(app core.App) error {
		for _, name := range []string{"segment_counts", "segment_members", "segments", "profile_tombstones", "profile_merges", "profile_conflicts", "identities", "profiles"} {
			c, err := app.FindCollectionByNameOrId(name)
			if err != nil {
				continue
			}
			if err := app.Delete(c); err != nil {
				return err
			}
		}
		return nil
	}, "0003_profiles.go")
}
