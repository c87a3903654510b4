// Package deadletter parks the messages a consumer could not process, so
// that one bad event never stops the rest: the consumer retries a failed
// batch event by event, parks each event that still fails in the
// events_dead collection, acknowledges it and moves on.
//
// A parked row keeps the raw message, the last error, how often it failed
// and when. Owners list them (`omni events dead`, the admin, the API) and
// ask for a retry (`omni events retry-dead`), which only marks the rows:
// the consumer that parked a row re-drives it in its own process, with its
// own processors, whichever process asked. That works the same whether
// the request came from the CLI, the admin or the API, and needs no bus
// connection from the CLI.
package deadletter

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/store"
	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"
)

// Collection holds parked messages.
const Collection = "events_dead"

// maxError bounds a stored error message (the column allows 4,000).
const maxError = 3000

// ErrNotFound is returned for an id that is not parked.
var ErrNotFound = errors.New("no dead event with this id")

// Failure is one message a consumer gives up on.
type Failure struct {
	Consumer string // the durable consumer that failed, e.g. "eventstore"
	EventID  string // the message's dedupe id (event id)
	Subject  string
	Type     string // event type, when the message could be decoded
	Data     []byte // the raw message, re-driven on retry
	Err      error
	Attempts int
}

// Entry is a parked message.
type Entry struct {
	ID             string `db:"id" json:"id"`
	Consumer       string `db:"consumer" json:"consumer"`
	EventID        string `db:"event_id" json:"event_id"`
	Subject        string `db:"subject" json:"subject"`
	Type           string `db:"type" json:"type"`
	Data           string `db:"data" json:"-"`
	Error          string `db:"error" json:"error"`
	Attempts       int    `db:"attempts" json:"attempts"`
	FirstFailed    string `db:"first_failed" json:"first_failed"`
	LastFailed     string `db:"last_failed" json:"last_failed"`
	RetryRequested bool   `db:"retry_requested" json:"retry_requested"`
}

// Park stores f, or, when the same consumer already parked the same event,
// adds the attempts and keeps the newest error. Parking a row again clears
// a pending retry request: the retry happened and failed.
func Park(app core.App, f Failure) error {
	if f.Consumer == "" || f.EventID == "" {
		return errors.New("deadletter: consumer and event id are required")
	}
	now := types.NowDateTime().String()
	_, err := app.DB().NewQuery(`INSERT INTO ` + Collection + ` (id, consumer, event_id, subject, type, data, error, attempts,
first_failed, last_failed, retry_requested) VALUES ({:id}, {:c}, {:e}, {:s}, {:t}, {:d}, {:err}, {:n}, {:now}, {:now}, 0)
ON CONFLICT(consumer, event_id) DO UPDATE SET error = excluded.error, attempts = attempts + excluded.attempts,
last_failed = excluded.last_failed, retry_requested = 0, data = excluded.data`).Bind(dbx.Params{
		"id": store.NewRecordID(), "c": f.Consumer, "e": f.EventID, "s": f.Subject, "t": f.Type, "d": string(f.Data),
		"err": errorText(f.Err), "n": max(f.Attempts, 1), "now": now,
	}).Execute()
	if err != nil {
		return fmt.Errorf("park %s: %w", f.EventID, err)
	}
	return nil
}

// MessageID names a bus message in events_dead when it cannot be decoded
// (its id as published: bus.EventIDHeader on EVENTS, Nats-Msg-Id on the
// other streams; or subject#stream-sequence when it has none).
func MessageID(msg jetstream.Msg) string {
	if id := msg.Headers().Get(bus.EventIDHeader); id != "" {
		return id
	}
	if id := msg.Headers().Get(jetstream.MsgIDHeader); id != "" {
		return id
	}
	if meta, _ := msg.Metadata(); meta != nil {
		return fmt.Sprintf("%s#%d", msg.Subject(), meta.Sequence.Stream)
	}
	return msg.Subject()
}

// Count returns how many messages are parked, over all consumers.
func Count(app core.App) (int, error) {
	var n int
	err := app.DB().NewQuery("SELECT COUNT(*) FROM " + Collection).Row(&n)
	return n, err
}

// List returns parked messages, newest failure first; consumer "" means all.
func List(app core.App, consumer string, limit int) ([]Entry, error) {
	if limit <= 0 {
		limit = 100
	}
	q := app.DB().Select("*").From(Collection).OrderBy("last_failed DESC", "id DESC").Limit(int64(limit))
	if consumer != "" {
		q = q.Where(dbx.HashExp{"consumer": consumer})
	}
	var out []Entry
	if err := q.All(&out); err != nil {
		return nil, err
	}
	return out, nil
}

// Get returns one parked message.
func Get(app core.App, id string) (*Entry, error) {
	var e Entry
	err := app.DB().Select("*").From(Collection).Where(dbx.HashExp{"id": id}).One(&e)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	return &e, nil
}

// RequestRetry marks parked messages for their consumer to re-drive: the
// given ids, or every parked message when ids is empty. It returns the ids
// it marked; an id that is not parked is an error naming it.
func RequestRetry(app core.App, ids ...string) ([]string, error) {
	var marked []string
	err := app.RunInTransaction(func(tx core.App) error {
		for _, id := range ids {
			if _, err := Get(tx, id); err != nil {
				return err
			}
		}
		marked = ids
		if len(ids) == 0 {
			if err := tx.DB().Select("id").From(Collection).Column(&marked); err != nil {
				return err
			}
		}
		if len(marked) == 0 {
			return nil
		}
		_, err := tx.DB().Update(Collection, dbx.Params{"retry_requested": true}, dbx.In("id", toAny(marked)...)).Execute()
		return err
	})
	if err != nil {
		return nil, err
	}
	return marked, nil
}

// Requested returns up to limit of consumer's messages marked for a retry.
func Requested(app core.App, consumer string, limit int) ([]Entry, error) {
	var out []Entry
	err := app.DB().Select("*").From(Collection).
		Where(dbx.HashExp{"consumer": consumer, "retry_requested": true}).
		OrderBy("first_failed", "id").Limit(int64(limit)).All(&out)
	return out, err
}

// Resolve removes a parked message its consumer has now processed.
func Resolve(app core.App, id string) error {
	_, err := app.DB().Delete(Collection, dbx.HashExp{"id": id}).Execute()
	return err
}

// RetryFailed records that a requested retry failed again.
func RetryFailed(app core.App, id string, cause error) error {
	_, err := app.DB().NewQuery(`UPDATE ` + Collection + ` SET attempts = attempts + 1, error = {:err}, last_failed = {:now},
retry_requested = 0 WHERE id = {:id}`).Bind(dbx.Params{"id": id, "err": errorText(cause), "now": types.NowDateTime().String()}).Execute()
	return err
}

func errorText(err error) string {
	if err == nil {
		return "unknown error"
	}
	s := err.Error()
	if len(s) > maxError {
		s = s[:maxError]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	return strings.TrimSpace(s)
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
