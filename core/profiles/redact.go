package profiles

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/eventstore"
)

// vendorErasures acts on erasure requests that come from a vendor: a
// profile.erased event from a connector (Shopify's customers/redact, for
// one) erases, in the transaction that stores it, the profile it resolved
// to, exactly as an owner's DELETE would (tombstones, other modules' rows,
// and Omni's own profile.erased, which connectors pass on to vendors that
// can delete). Omni's own profile.erased (source omni) only reports an
// erasure already made and is left alone.
type vendorErasures struct {
	m      *Module
	erased atomic.Bool // a batch erased something: kick the relay after commit
}

// ProcessBatch implements eventstore.Processor; it runs after the
// profiles processor has resolved the batch.
func (v *vendorErasures) ProcessBatch(tx core.App, batch []*eventstore.Stored) error {
	for _, s := range batch {
		ev := s.Event
		if ev.Type != events.ProfileErased || ev.Source == "omni" || s.Profile == "" {
			continue
		}
		out, err := v.m.Erase(tx, s.Profile)
		if errors.Is(err, ErrNotFound) {
			continue // erased earlier in this batch
		}
		if err != nil {
			return fmt.Errorf("erase profile %s at %s's request: %w", s.Profile, ev.Source, err)
		}
		v.erased.Store(true)
		v.m.log.Info("profile erased at the vendor's request", "source", ev.Source, "profile_id", out.Erased,
			"profiles", out.Profiles, "events", out.Events)
	}
	return nil
}

// afterCommit publishes the profile.erased events staged by the batch.
func (v *vendorErasures) afterCommit([]*eventstore.Stored) {
	if v.erased.Swap(false) {
		v.m.relay.Kick()
	}
}
