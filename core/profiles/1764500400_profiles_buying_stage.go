package profiles

import (
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// buying_stage (traits.go) is derived with the other computed traits.
// Profiles stored before it have none: marking them due lets the
// scheduled pass derive it, in short transactions, without a rebuild.
func init() {
	m.Register(func(app core.App) error {
		_, err := app.DB().NewQuery("UPDATE profiles SET traits_due_at = {:now} WHERE merged_into = ''").
			Bind(dbx.Params{"now": time.Now().UTC().Format(dbTime)}).Execute()
		return err
	}, nil, "1764500400_profiles_buying_stage.go")
}
