package profiles

import (
	"fmt"
	"net/http"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/events"
)

// The identity cap (profiles.identity_cap) is set in omni.yaml and applies
// to new events. Before an owner changes it, the preview says what the new
// value would have done to the customers there are today: who holds more
// identities of one kind than a lower cap allows (those merges would have
// been refused; they stay until un-merged), and which merges a higher cap
// would let through (refused today as identity_cap conflicts; the next
// event carrying both identifiers joins them).

const limitExamples = 5

// LimitsPreview is the answer of POST /api/v1/profiles/limits/preview.
type LimitsPreview struct {
	Current  int `json:"current"`
	Proposed int `json:"proposed"`
	// OverCap: customers holding more identities of one kind than the
	// proposed cap.
	OverCap         int          `json:"over_cap"`
	OverCapExamples []CapExample `json:"over_cap_examples"`
	// WouldJoin: refused merges and attachments (open identity_cap
	// conflicts) that the proposed cap would allow.
	WouldJoin         int           `json:"would_join"`
	WouldJoinExamples []JoinExample `json:"would_join_examples"`
	Message           string        `json:"message"`
}

// CapExample is one customer over the proposed cap.
type CapExample struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	Count int    `json:"count"`
}

// JoinExample is one refused join the proposed cap would allow.
type JoinExample struct {
	A     string `json:"a"`
	AName string `json:"a_name"`
	B     string `json:"b,omitempty"`
	BName string `json:"b_name,omitempty"`
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

// capped reports whether kind is counted against profiles.identity_cap
// (single-valued kinds hold one value; anonymous ids have their own cap).
func capped(kind string) bool {
	return !singleValued[kind] && kind != events.AnonymousID
}

// PreviewIdentityCap computes what cap would change against today's data.
func PreviewIdentityCap(app core.App, current, proposed int) (*LimitsPreview, error) {
	out := &LimitsPreview{Current: current, Proposed: proposed,
		OverCapExamples: []CapExample{}, WouldJoinExamples: []JoinExample{}}
	db := app.DB()

	var over []struct {
		Profile string `db:"profile"`
		Kind    string `db:"kind"`
		N       int    `db:"n"`
		Name    string `db:"name"`
	}
	err := db.NewQuery(`SELECT i.profile, i.kind, COUNT(*) AS n, COALESCE(p.name, '') AS name
FROM identities i LEFT JOIN profiles p ON p.id = i.profile
GROUP BY i.profile, i.kind HAVING COUNT(*) > {:cap} ORDER BY n DESC`).Bind(dbx.Params{"cap": proposed}).All(&over)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, r := range over {
		if !capped(r.Kind) || seen[r.Profile] {
			continue
		}
		seen[r.Profile] = true
		out.OverCap++
		if len(out.OverCapExamples) < limitExamples {
			out.OverCapExamples = append(out.OverCapExamples, CapExample{ID: r.Profile, Name: r.Name, Kind: r.Kind, Count: r.N})
		}
	}

	var refused []struct {
		A     string `db:"profile_a"`
		B     string `db:"profile_b"`
		Kind  string `db:"kind"`
		Value string `db:"value_b"`
	}
	err = db.NewQuery(`SELECT profile_a, profile_b, kind, value_b FROM profile_conflicts
WHERE reason = 'identity_cap' AND status = 'open' ORDER BY created`).All(&refused)
	if err != nil {
		return nil, err
	}
	counts := func(profile string) (map[string]map[string]bool, error) {
		var ids []struct {
			Kind  string `db:"kind"`
			Value string `db:"value"`
		}
		if err := db.NewQuery("SELECT kind, value FROM identities WHERE profile = {:p}").Bind(dbx.Params{"p": profile}).All(&ids); err != nil {
			return nil, err
		}
		out := map[string]map[string]bool{}
		for _, id := range ids {
			if out[id.Kind] == nil {
				out[id.Kind] = map[string]bool{}
			}
			out[id.Kind][id.Value] = true
		}
		return out, nil
	}
	for _, c := range refused {
		a, err := counts(c.A)
		if err != nil {
			return nil, err
		}
		if len(a) == 0 {
			continue // the profile is gone (merged or erased)
		}
		fits := true
		if c.B == "" {
			// A refused attachment: the profile plus the one refused value.
			fits = len(a[c.Kind])+1 <= proposed
		} else {
			b, err := counts(c.B)
			if err != nil {
				return nil, err
			}
			if len(b) == 0 {
				continue
			}
			for kind, vals := range b {
				if !capped(kind) {
					continue
				}
				union := len(a[kind])
				for v := range vals {
					if !a[kind][v] {
						union++
					}
				}
				if union > proposed {
					fits = false
					break
				}
			}
		}
		if !fits {
			continue
		}
		out.WouldJoin++
		if len(out.WouldJoinExamples) < limitExamples {
			ex := JoinExample{A: c.A, AName: profileName(app, c.A), B: c.B, Kind: c.Kind, Value: c.Value}
			if c.B != "" {
				ex.BName = profileName(app, c.B)
			}
			out.WouldJoinExamples = append(out.WouldJoinExamples, ex)
		}
	}
	out.Message = limitsMessage(out)
	return out, nil
}

func profileName(app core.App, id string) string {
	var name string
	_ = app.DB().NewQuery("SELECT COALESCE(name, '') FROM profiles WHERE id = {:id}").Bind(dbx.Params{"id": id}).Row(&name)
	return name
}

func limitsMessage(p *LimitsPreview) string {
	switch {
	case p.Proposed == p.Current:
		return fmt.Sprintf("The cap is already %d: nothing changes.", p.Current)
	case p.Proposed < p.Current:
		who := fmt.Sprintf("%d customers hold", p.OverCap)
		if p.OverCap == 1 {
			who = "1 customer holds"
		}
		return fmt.Sprintf("With a cap of %d, %s more identities of one kind than it allows. They stay as they are: the cap applies to new events; un-merge any wrong merge from the customer's page.", p.Proposed, who)
	default:
		what := fmt.Sprintf("%d merges or identities", p.WouldJoin)
		if p.WouldJoin == 1 {
			what = "1 merge or identity"
		}
		return fmt.Sprintf("With a cap of %d, %s refused by the current cap would be allowed: the next event carrying them joins them.", p.Proposed, what)
	}
}

func (m *Module) registerLimits(r *router.Router[*core.RequestEvent]) {
	r.GET("/api/v1/profiles/limits", func(e *core.RequestEvent) error {
		return e.JSON(http.StatusOK, map[string]any{"identity_cap": m.identityCap, "anonymous_cap": anonymousCap})
	}).Bind(api.RequireStaff())
	r.POST("/api/v1/profiles/limits/preview", m.handleLimitsPreview).Bind(api.RequireOwner())
}

func (m *Module) handleLimitsPreview(e *core.RequestEvent) error {
	var body struct {
		IdentityCap *int `json:"identity_cap"`
	}
	if err := e.BindBody(&body); err != nil {
		return api.BadRequest("body", `must be JSON like {"identity_cap": 3}`)
	}
	if body.IdentityCap == nil {
		return api.BadRequest("identity_cap", "is required: the cap to preview (1 to 1000)")
	}
	if *body.IdentityCap < 1 || *body.IdentityCap > 1000 {
		return api.BadRequest("identity_cap", "must be between 1 and 1000")
	}
	p, err := PreviewIdentityCap(e.App, m.identityCap, *body.IdentityCap)
	if err != nil {
		return api.Internal("Could not compute the preview.", err)
	}
	return e.JSON(http.StatusOK, p)
}
