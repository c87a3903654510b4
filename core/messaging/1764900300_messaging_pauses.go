package messaging

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
	"github.com/pocketbase/pocketbase/tools/types"

	"github.com/omni/omni/core/store/migrations"
)

// marketing_pauses holds "pause marketing for this customer" (from the
// inbox, beside a conversation): until then the gate refuses marketing to
// them; replies and transactional messages still go. Staff read it; only
// /api/v1/profiles/{id}/marketing-pause writes it. No unique index on
// profile: a merge moves both customers' rows onto one profile, and the
// latest until wins.
func init() {
	m.Register(func(app core.App) error {
		c := core.NewBaseCollection(PausesCollection)
		c.Fields.Add(
			&core.TextField{Name: "profile", Required: true, Max: 50},
			&core.DateField{Name: "until", Required: true},
			&core.TextField{Name: "by", Max: 50}, // the staff member
			&core.TextField{Name: "reason", Max: 500},
			&core.AutodateField{Name: "created", OnCreate: true},
		)
		c.AddIndex("idx_marketing_pauses_profile", false, "profile, until", "")
		c.ListRule = types.Pointer(migrations.RuleStaff)
		c.ViewRule = types.Pointer(migrations.RuleStaff)
		return app.Save(c)
	}, func(app core.App) error {
		c, err := app.FindCollectionByNameOrId(PausesCollection)
		if err != nil {
			return nil
		}
		return app.Delete(c)
	}, "1764900300_messaging_pauses.go")
}
