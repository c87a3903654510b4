// Package ingest serves the Segment-compatible tracking API: track,
// identify, page, screen, group, alias and batch, under /api/v1 and /v1 so
// unmodified Segment client libraries can point at Omni.
package ingest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	validation "github.com/go-ozzo/ozzo-validation/v4"
	"github.com/google/uuid"
	"github.com/pocketbase/pocketbase/apis"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/memtune"
	"github.com/omni/omni/internal/fastjson"
)

// Options are the ingest limits (Segment's own by default).
type Options struct {
	MaxBatchBytes int
	MaxEventBytes int
	DefaultRegion string
	// InFlight counts the tracking calls being answered (nil: not counted).
	InFlight *InFlight
}

// InFlight counts tracking calls being answered, for the events consumer:
// while a burst is acknowledged it may hold its batches back, so the
// acknowledgements get the cores (eventstore.Options.Busy).
type InFlight struct{ n atomic.Int32 }

// Busy reports whether a tracking call is being answered now.
func (f *InFlight) Busy() bool { return f.n.Load() > 0 }

// count is the routes' middleware; a nil f counts nothing.
func (f *InFlight) count(e *core.RequestEvent) error {
	if f == nil {
		return e.Next()
	}
	f.n.Add(1)
	defer f.n.Add(-1)
	memtune.Wake() // a burst runs with the serving GOGC from its first call
	return e.Next()
}

// Handler serves the ingest routes.
type Handler struct {
	app  core.App
	bus  *bus.Bus
	opts Options
	norm events.Normalizer
	log  *slog.Logger
	now  func() time.Time
	keys *keyCache
}

// New builds the handler.
func New(app core.App, b *bus.Bus, opts Options, log *slog.Logger) *Handler {
	return &Handler{app: app, bus: b, opts: opts, norm: events.Normalizer{DefaultRegion: opts.DefaultRegion},
		log: log.With("component", "ingest"), now: time.Now, keys: newKeyCache(app)}
}

// calls maps URL path names (including analytics.js's one-letter forms) to
// Segment call types.
var calls = map[string]string{
	"track": "track", "t": "track",
	"identify": "identify", "i": "identify",
	"page": "page", "p": "page",
	"screen": "screen", "s": "screen",
	"group": "group", "g": "group",
	"alias": "alias", "a": "alias",
}

// Register adds the routes.
func (h *Handler) Register(r *router.Router[*core.RequestEvent]) {
	// Successful tracking calls are not written to PocketBase's request
	// log (one log row per call would cost more than the events); errors
	// still are.
	quiet := apis.SkipSuccessActivityLog()
	counted := h.opts.InFlight.count
	for _, prefix := range []string{"/api/v1", "/v1"} {
		for path, call := range calls {
			r.POST(prefix+"/"+path, h.single(call)).Bind(quiet).BindFunc(counted)
		}
		r.POST(prefix+"/batch", h.batch).Bind(quiet).BindFunc(counted)
		r.POST(prefix+"/import", h.batch).Bind(quiet).BindFunc(counted) // Segment's older name for batch
		r.POST(prefix+"/b", h.batch).Bind(quiet).BindFunc(counted)
	}
	h.registerSourceAPI(r)
}

// fail answers in the API's error shape plus the top-level "field" the
// tracking API has always documented: its clients are Segment libraries
// and scripts, not our UI (docs/api.md#errors).
func fail(e *core.RequestEvent, status int, field, msg string) error {
	return api.WriteCompat(e, api.FieldError(status, field, "", msg), map[string]any{"field": field})
}

// readBody reads at most limit bytes; ok is false when the body is larger.
func readBody(r *http.Request, limit int) ([]byte, bool, error) {
	// Sized from Content-Length when the client sends one: io.ReadAll
	// starts at 512 bytes and copies a 40 KB batch a dozen times as it
	// grows (3 % of the server's CPU while acknowledging). One byte past
	// the limit tells an oversized body; a chunked one grows as it must.
	size := 0
	if n := r.ContentLength; n > 0 {
		size = int(min(n, int64(limit))) + 1
	}
	// MinRead more: ReadFrom grows the buffer when less than that is free,
	// even for the read that only finds the end.
	buf := bytes.NewBuffer(make([]byte, 0, size+bytes.MinRead))
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, int64(limit)+1)); err != nil {
		return nil, false, err
	}
	b := buf.Bytes()
	return b, len(b) <= limit, nil
}

// writeKey extracts the key the Segment way: HTTP Basic with the key as the
// user name and an empty password; analytics.js may put it in the body.
func writeKey(r *http.Request, bodyKey string) string {
	auth := r.Header.Get("Authorization")
	if strings.HasPrefix(strings.ToLower(auth), "basic ") {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(auth[6:]))
		if err == nil {
			user, _, _ := strings.Cut(string(raw), ":")
			return user
		}
	}
	return bodyKey
}

func (h *Handler) authenticate(e *core.RequestEvent, bodyKey string) (*source, error) {
	key := writeKey(e.Request, bodyKey)
	if key == "" {
		return nil, fail(e, http.StatusUnauthorized, "writeKey", "missing write key: send it as the HTTP Basic user name with an empty password")
	}
	src, err := h.keys.lookup(e.App, key)
	if err != nil {
		return nil, fail(e, http.StatusUnauthorized, "writeKey", "invalid write key: "+err.Error())
	}
	return src, nil
}

func (h *Handler) single(call string) func(*core.RequestEvent) error {
	return func(e *core.RequestEvent) error {
		body, ok, err := readBody(e.Request, h.opts.MaxEventBytes)
		if err != nil {
			return fail(e, http.StatusBadRequest, "body", "could not read body: "+err.Error())
		}
		if !ok {
			return fail(e, http.StatusRequestEntityTooLarge, "body", fmt.Sprintf("event is larger than %d KB", h.opts.MaxEventBytes/1024))
		}
		var peek struct {
			WriteKey string `json:"writeKey"`
		}
		jsonErr := fastjson.Unmarshal(body, &peek)
		src, authErr := h.authenticate(e, peek.WriteKey)
		if src == nil {
			return authErr
		}
		if jsonErr != nil {
			return fail(e, http.StatusBadRequest, "body", "not valid JSON: "+jsonErr.Error())
		}
		ev, ferr := h.toEvent(body, call, src, nil)
		if ferr != nil {
			return fail(e, http.StatusBadRequest, ferr.Field, ferr.Message)
		}
		if errs := Publish(e.Request.Context(), h.bus, []*events.Event{ev}); errs[0] != nil {
			return h.unavailable(e, errs[0])
		}
		return e.JSON(http.StatusOK, map[string]any{"success": true, "accepted": 1})
	}
}

// Rejected describes one batch item that was not accepted.
type Rejected struct {
	Index     int    `json:"index"`
	MessageID string `json:"messageId,omitempty"`
	Field     string `json:"field"`
	Message   string `json:"message"`
}

func (h *Handler) batch(e *core.RequestEvent) error {
	body, ok, err := readBody(e.Request, h.opts.MaxBatchBytes)
	if err != nil {
		return fail(e, http.StatusBadRequest, "body", "could not read body: "+err.Error())
	}
	if !ok {
		return fail(e, http.StatusRequestEntityTooLarge, "batch", fmt.Sprintf("batch is larger than %d KB; send smaller batches", h.opts.MaxBatchBytes/1024))
	}
	in, jsonErr := h.parseBatch(body)
	src, authErr := h.authenticate(e, in.writeKey)
	if src == nil {
		return authErr
	}
	if jsonErr != nil {
		return fail(e, http.StatusBadRequest, "body", "not valid JSON: "+jsonErr.Error())
	}
	if in.len() == 0 {
		return fail(e, http.StatusBadRequest, "batch", "batch is missing or empty")
	}
	evs, rejected := h.batchEvents(in, src)
	return h.accept(e, evs, rejected)
}

// parsedBatch is a decoded batch body. Its items are either decoded in
// one pass (msgs) or kept raw, to be decoded one by one (raw).
type parsedBatch struct {
	msgs     []events.SegmentMessage
	raw      []json.RawMessage
	shared   batchShared
	writeKey string
}

func (p *parsedBatch) len() int { return len(p.msgs) + len(p.raw) }

// parseBatch decodes a batch body. A batch no larger than one event is
// decoded in one pass: no item can be over the event limit, and a body
// that decodes cleanly needs no per-item errors. Anything else takes the
// item-by-item path, so one bad item rejects only itself.
func (h *Handler) parseBatch(body []byte) (*parsedBatch, error) {
	if len(body) <= h.opts.MaxEventBytes {
		var in struct {
			Batch    []events.SegmentMessage `json:"batch"`
			Context  map[string]any          `json:"context"`
			SentAt   *time.Time              `json:"sentAt"`
			WriteKey string                  `json:"writeKey"`
		}
		if fastjson.Unmarshal(body, &in) == nil && len(in.Batch) > 0 {
			return &parsedBatch{msgs: in.Batch, shared: batchShared{context: in.Context, sentAt: in.SentAt}, writeKey: in.WriteKey}, nil
		}
	}
	var in struct {
		Batch    []json.RawMessage `json:"batch"`
		Context  map[string]any    `json:"context"`
		SentAt   *time.Time        `json:"sentAt"`
		WriteKey string            `json:"writeKey"`
	}
	err := fastjson.Unmarshal(body, &in)
	return &parsedBatch{raw: in.Batch, shared: batchShared{context: in.Context, sentAt: in.SentAt}, writeKey: in.WriteKey}, err
}

// batchEvents turns a parsed batch's items into validated events, naming
// the rejected ones.
func (h *Handler) batchEvents(in *parsedBatch, src *source) ([]*events.Event, []Rejected) {
	shared := &in.shared
	evs := make([]*events.Event, 0, in.len())
	var rejected []Rejected
	for i := range in.msgs {
		msg := &in.msgs[i]
		ev, ferr := h.fromMessage(msg, src, shared)
		if ferr != nil {
			rejected = append(rejected, Rejected{Index: i, MessageID: msg.MessageID, Field: fmt.Sprintf("batch[%d].%s", i, ferr.Field), Message: ferr.Message})
			continue
		}
		evs = append(evs, ev)
	}
	for i, raw := range in.raw {
		if len(raw) > h.opts.MaxEventBytes {
			rejected = append(rejected, Rejected{Index: i, Field: fmt.Sprintf("batch[%d]", i), Message: fmt.Sprintf("event is larger than %d KB", h.opts.MaxEventBytes/1024)})
			continue
		}
		ev, ferr := h.toEvent(raw, "", src, shared)
		if ferr != nil {
			var peek struct {
				MessageID string `json:"messageId"`
			}
			_ = json.Unmarshal(raw, &peek)
			rejected = append(rejected, Rejected{Index: i, MessageID: peek.MessageID, Field: fmt.Sprintf("batch[%d].%s", i, ferr.Field), Message: ferr.Message})
			continue
		}
		evs = append(evs, ev)
	}
	return evs, rejected
}

// accept publishes a batch's valid events and answers, naming the
// rejected ones.
func (h *Handler) accept(e *core.RequestEvent, evs []*events.Event, rejected []Rejected) error {
	if len(evs) == 0 {
		byField := validation.Errors{}
		for _, r := range rejected {
			byField[r.Field] = validation.NewError(api.CodeInvalid, r.Message)
		}
		return api.WriteCompat(e, router.NewBadRequestError("No event in the batch was valid.", byField),
			map[string]any{"field": rejected[0].Field, "rejected": rejected})
	}
	for _, err := range Publish(e.Request.Context(), h.bus, evs) {
		if err != nil {
			// Some may be stored: the client retries the batch and the
			// messageIds dedupe what already landed.
			return h.unavailable(e, err)
		}
	}
	resp := map[string]any{"success": true, "accepted": len(evs)}
	if len(rejected) > 0 {
		resp["rejected"] = rejected
	}
	return e.JSON(http.StatusOK, resp)
}

type batchShared struct {
	context map[string]any
	sentAt  *time.Time
}

func (h *Handler) toEvent(raw []byte, call string, src *source, shared *batchShared) (*events.Event, *events.FieldError) {
	msg, err := events.DecodeSegment(raw, call)
	if err != nil {
		return nil, asFieldError(err)
	}
	return h.fromMessage(msg, src, shared)
}

// fromMessage turns one decoded Segment message into a validated event.
func (h *Handler) fromMessage(msg *events.SegmentMessage, src *source, shared *batchShared) (*events.Event, *events.FieldError) {
	if shared != nil {
		if msg.SentAt == nil {
			msg.SentAt = shared.sentAt
		}
		if len(shared.context) > 0 {
			merged := map[string]any{}
			for k, v := range shared.context {
				merged[k] = v
			}
			for k, v := range msg.Context {
				merged[k] = v
			}
			msg.Context = merged
		}
	}
	now := h.now()
	ev, err := events.FromSegment(msg, src.name, now, uuid.NewString)
	if err != nil {
		return nil, asFieldError(err)
	}
	h.norm.Normalize(ev)
	if err := ev.Validate(now); err != nil {
		return nil, asFieldError(err)
	}
	if ferr := applyKind(src, ev); ferr != nil {
		return nil, ferr
	}
	ev.ID = events.TrackingID(src.id, ev.ID)
	return ev, nil
}

// asFieldError names the field a decoding or validation error is about
// ("body" when it is not about one field).
func asFieldError(err error) *events.FieldError {
	var fe *events.FieldError
	if errors.As(err, &fe) {
		return fe
	}
	return &events.FieldError{Field: "body", Message: err.Error()}
}

// Publish stores already validated events on the EVENTS stream and waits
// until each is stored; shared by the ingest API and connector webhooks.
// Several events go as batch messages (bus.JoinEvents): one message per
// request for JetStream to store, deliver and delete.
func Publish(ctx context.Context, b *bus.Bus, evs []*events.Event) []error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	errs := make([]error, len(evs))
	single := make([]bus.Msg, 0, len(evs))
	index := make([]int, 0, len(evs)) // single[k] is evs[index[k]]
	for i, ev := range evs {
		data, err := ev.Marshal()
		if err != nil { // a validated event always encodes; never publish half of one
			errs[i] = err
			continue
		}
		single = append(single, bus.Msg{Subject: ev.Subject(), Data: data, ID: ev.ID})
		index = append(index, i)
	}
	msgs, covers := b.JoinEvents(single)
	from := 0
	for k, err := range b.PublishAll(ctx, msgs) {
		for _, i := range index[from:covers[k]] {
			errs[i] = err
		}
		from = covers[k]
	}
	return errs
}

func (h *Handler) unavailable(e *core.RequestEvent, err error) error {
	h.log.Error("could not store events on the bus", "error", err)
	e.Response.Header().Set("Retry-After", "1")
	return fail(e, http.StatusServiceUnavailable, "", "events could not be stored right now; retry with the same messageIds")
}
