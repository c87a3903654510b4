package main

// The -compare mode: the same events stored three ways, each in a fresh
// data dir of this process, so the ratios hold on a noisy machine:
//
//	floor      batched SQLite insert (eventstore.WriteBatch, no processors)
//	profiles   JetStream → events store → profiles (identities resolved)
//	live       the same with 10 live segments, 20 published journeys with
//	           event triggers, metrics, messaging and the inbox running;
//	           metrics' rollups follow the stored events (metrics.max_delay),
//	           so the live case is also timed until they have caught up
//
// Each figure is events/s end to end (publish to the last row stored) and
// the process's CPU (user+sys) per stored event; -runs repeats the three
// and prints the medians.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/eventstore"
	"github.com/omni/omni/core/inbox"
	"github.com/omni/omni/core/journeys"
	"github.com/omni/omni/core/logging"
	"github.com/omni/omni/core/memtune"
	"github.com/omni/omni/core/messaging"
	"github.com/omni/omni/core/metrics"
	"github.com/omni/omni/core/profiles"
	"github.com/omni/omni/core/segmentrule"
	"github.com/omni/omni/core/store"
)

type figure struct {
	rate   float64 // events/s
	cpuPer time.Duration
	// heap is the most the Go heap held live (after a GC) above what it
	// held before the load: what the Omni under test kept during it.
	heap uint64
	// wal is what the WAL checkpoints saw during the load: frames
	// committed, and the checkpoints that held the writer.
	wal store.WALStats
	// dbPer is data.db's bytes per stored event once the load's rows
	// are written and the WAL is copied back (storeThrough, profiles
	// case); 0 where not measured.
	dbPer float64
}

// walSince is the WAL's counts since before.
func walSince(before store.WALStats) store.WALStats {
	now := store.ReadWALStats()
	return store.WALStats{Frames: now.Frames - before.Frames, Checkpoints: now.Checkpoints - before.Checkpoints, Held: now.Held - before.Held}
}

// walLine describes what a load cost the WAL, per event of n.
func walLine(f figure, n int) string {
	return fmt.Sprintf("%.2f frames/event, %d checkpoints on the writer holding it %v", float64(f.wal.Frames)/float64(n), f.wal.Checkpoints, f.wal.Held.Round(time.Millisecond))
}

// heapPeak follows the live heap (as of the last GC) during a load.
type heapPeak struct{ base, max uint64 }

func (h *heapPeak) sample() {
	s := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	rtmetrics.Read(s)
	h.max = max(h.max, s[0].Value.Uint64())
}

func writeHeapProfile(path string) {
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	_ = pprof.WriteHeapProfile(f)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// operatorLimit is whether GOMEMLIMIT was set for the bench's process.
var operatorLimit = os.Getenv("GOMEMLIMIT") != ""

// headroom gives the Omni about to start the Go heap soft limit a serving
// Omni has (memtune.DefaultLimit) on top of what this process already
// holds: the bench's copy of the events, and what earlier runs' servers
// left behind. Without it the Omni under test would run near the limit,
// where the collector takes a growing share of the CPU run after run.
func headroom() {
	if operatorLimit {
		return
	}
	limit := int64(heapLive()) + memtune.DefaultLimit
	debug.SetMemoryLimit(limit)
	_ = os.Setenv("GOMEMLIMIT", strconv.FormatInt(limit, 10)) // memtune.ApplyDefaultLimit leaves it be
}

// heapLive is the Go heap still reachable after a full collection.
func heapLive() uint64 {
	runtime.GC()
	s := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	rtmetrics.Read(s)
	return s[0].Value.Uint64()
}

// watch (-watch) reports each load's progress and Omni's warnings on
// stderr and dumps the goroutines of a stall (see storeThrough).
var watch bool

// perRequest is how many of the bench's events go in one EVENTS message
// (-per-request): a tracking request's batch, as ingest publishes it; 1
// publishes one message per event, as a single webhook's event goes.
var perRequest = 100

// compareLive runs only the everything-live case, runs times: its rate
// and CPU per event, for looking at its scatter or at a rare stall.
func compareLive(evs *msgArena, runs int) {
	var rates []float64
	for run := 1; run <= runs; run++ {
		l, r := storeThrough(evs, true, "")
		rates = append(rates, l.rate)
		fmt.Printf("run %d: everything live %.0f events/s (%v CPU/event), rolled up %.0f/s (%v CPU/event)\n", run, l.rate, l.cpuPer, r.rate, r.cpuPer)
	}
	slices.Sort(rates)
	fmt.Printf("everything live: median %.0f events/s, from %.0f to %.0f over %d runs\n", rates[len(rates)/2], rates[0], rates[len(rates)-1], runs)
}

// compare runs the three cases runs times and prints each run and the
// medians. With bracket, the floor also runs between the two Omni cases
// and after them, and each case is also compared with the mean of the
// floors just before and after it: the machine's speed moves within a
// run, and the live case's ratio to a floor measured a minute earlier
// carries that drift.
func compare(evs *msgArena, runs int, cpuProfile string, bracket bool) {
	own := heapLive()
	fmt.Printf("the bench's events (encoded) take %d MB, mapped outside the Go heap; the bench's own heap: %d MB\n", len(evs.buf)>>20, own>>20)
	var floors, profs, lives, rolled []figure
	var bracketed [2][]float64 // profiles, live: rate ÷ the mean of the floors around it
	for run := 1; run <= runs; run++ {
		f := floorInsert(evs)
		profP, profL := "", ""
		if cpuProfile != "" && run == runs {
			profP, profL = cpuProfile+".profiles", cpuProfile+".live"
		}
		p, _ := storeThrough(evs, false, profP)
		var f2 figure
		if bracket {
			f2 = floorInsert(evs)
		}
		l, r := storeThrough(evs, true, profL)
		if bracket {
			f3 := floorInsert(evs)
			bp, bl := p.rate/((f.rate+f2.rate)/2), l.rate/((f2.rate+f3.rate)/2)
			bracketed[0], bracketed[1] = append(bracketed[0], bp), append(bracketed[1], bl)
			fmt.Printf("run %d, bracketed: floors %.0f / %.0f / %.0f/s | profiles %.2f× | everything live %.2f× the floors around each\n",
				run, f.rate, f2.rate, f3.rate, bp, bl)
		}
		fmt.Printf("run %d: floor %.0f/s (%v CPU/event) | profiles %.0f/s = %.2f× (%v CPU/event) | everything live %.0f/s = %.2f× (%v CPU/event), rolled up %.0f/s = %.2f× (%v CPU/event)\n",
			run, f.rate, f.cpuPer, p.rate, p.rate/f.rate, p.cpuPer, l.rate, l.rate/f.rate, l.cpuPer, r.rate, r.rate/f.rate, r.cpuPer)
		fmt.Printf("       Omni's peak live heap during the load: profiles %d MB, everything live %d MB; heap still live after the run: %d MB (the bench's own: %d MB)\n",
			p.heap>>20, l.heap>>20, heapLive()>>20, own>>20)
		fmt.Printf("       the WAL during each load: floor %s; profiles %s; everything live %s\n",
			walLine(f, evs.len()), walLine(p, evs.len()), walLine(l, evs.len()))
		floors, profs, lives, rolled = append(floors, f), append(profs, p), append(lives, l), append(rolled, r)
	}
	ratio := func(xs []figure) float64 {
		r := make([]float64, len(xs))
		for i, x := range xs {
			r[i] = x.rate / floors[i].rate
		}
		return median(r)
	}
	f, p, l, r := medianFigure(floors), medianFigure(profs), medianFigure(lives), medianFigure(rolled)
	fmt.Printf("medians of %d, %d events each:\n", runs, evs.len())
	fmt.Printf("  floor (batched SQLite insert)     %8.0f events/s  %6v CPU/event\n", f.rate, f.cpuPer)
	fmt.Printf("  stored + profiles resolved        %8.0f events/s  %6v CPU/event  %.2f× the floor (target 0.5)\n", p.rate, p.cpuPer, ratio(profs))
	fmt.Printf("  + 10 segments, 20 journeys, metrics %6.0f events/s  %6v CPU/event  %.2f× the floor (target 0.4)\n", l.rate, l.cpuPer, ratio(lives))
	fmt.Printf("    … until metrics' rollups caught up %5.0f events/s  %6v CPU/event  %.2f× the floor\n", r.rate, r.cpuPer, ratio(rolled))
	dbPer := make([]float64, len(profs))
	for i, x := range profs {
		dbPer[i] = x.dbPer
	}
	fmt.Printf("  data.db per stored event, profiles resolved: %.0f B (target ≤ 1024)\n", median(dbPer))
	if bracket {
		fmt.Printf("  against the floors just before and after each case: profiles %.2f×, everything live %.2f× (medians)\n",
			median(bracketed[0]), median(bracketed[1]))
	}
}

// median is the middle of xs (the upper of the two middle ones when
// their number is even); it sorts xs.
func median[T cmp.Ordered](xs []T) T {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// medianFigure is the median rate and the median CPU per event of xs,
// each taken on its own.
func medianFigure(xs []figure) figure {
	rs := make([]float64, len(xs))
	cs := make([]time.Duration, len(xs))
	for i, x := range xs {
		rs[i], cs[i] = x.rate, x.cpuPer
	}
	return figure{rate: median(rs), cpuPer: median(cs)}
}

// serve starts o on a loopback port and returns its base URL once it
// serves.
func serve(o *app.Omni) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		if err := o.Serve(ln, ready); err != nil {
			log.Print(err)
		}
	}()
	<-ready
	return "http://" + ln.Addr().String()
}

// floorInsert stores evs in batches of 1,000 with no processor. Only the
// inserts are timed: each batch is decoded before its clock starts.
func floorInsert(evs *msgArena) figure {
	dir, err := os.MkdirTemp("", "omni-bench-floor-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cfg := config.Default()
	cfg.DataDir = dir
	headroom() // the soft limit the Omni cases run under
	o := app.New(cfg, logging.New(io.Discard, "error", "text"))
	if err := o.Open(); err != nil {
		log.Fatal(err)
	}
	defer o.PB.ResetBootstrapState()
	// The same WAL checkpoints beside the writer as a serving Omni.
	defer store.StartCheckpoints(o.PB.ConcurrentDB(), o.PB.NonconcurrentDB(), store.CheckpointInterval)()
	runtime.GC()
	var el, cpu time.Duration
	wal0 := store.ReadWALStats()
	batch := make([]*events.Event, 0, 1000)
	for i := 0; i < evs.len(); i += 1000 {
		batch = batch[:0]
		for _, m := range evs.msgs(i, min(i+1000, evs.len())) {
			ev, err := events.Unmarshal(m.Data)
			if err != nil {
				log.Fatal(err)
			}
			batch = append(batch, ev)
		}
		c0, t0 := cpuTime(), time.Now()
		if _, err := eventstore.WriteBatch(o.PB, batch); err != nil {
			log.Fatal(err)
		}
		el, cpu = el+time.Since(t0), cpu+cpuTime()-c0
	}
	return figure{rate: float64(evs.len()) / el.Seconds(), cpuPer: cpu / time.Duration(evs.len()), wal: walSince(wal0)}
}

// storeThrough publishes evs to a fresh Omni and waits until all are
// stored; in the live case it then waits for metrics' follower to empty
// its queue and returns that as the second figure (the first otherwise).
func storeThrough(evs *msgArena, live bool, cpuProfile string) (stored, rolledUp figure) {
	dir, err := os.MkdirTemp("", "omni-bench-store-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Bus.MaxStoreMB = 8192
	headroom()
	logs, level := io.Writer(io.Discard), "error"
	if watch {
		logs, level = os.Stderr, "warn"
	}
	o := app.New(cfg, logging.New(logs, level, "text"))
	pm := profiles.New(profiles.Options{Interval: -1})
	o.Use(pm)
	counter := &storedCounter{}
	o.Use(counter)
	if live {
		o.Use(messaging.New(messaging.Options{}))
		o.Use(journeys.New(journeys.Options{}))
		o.Use(inbox.New(inbox.Options{}))
		o.Use(metrics.New(metrics.Options{}))
	}
	base := serve(o)
	defer o.Shutdown()
	if live {
		liveSetup(o, base)
	}
	// The CPU profile covers the load; in the live case, metrics' catch-up
	// after it goes to a second file (cpuProfile + ".catchup").
	stopProfile := func() {}
	if cpuProfile != "" {
		stopProfile = startCPUProfile(cpuProfile)
	}
	defer func() { stopProfile() }()
	held0, written0 := pm.RowWrites()
	peak := heapPeak{base: heapLive()} // after a full GC
	wal0 := store.ReadWALStats()
	c0, t0 := cpuTime(), time.Now()
	ctx := context.Background()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < evs.len(); i += 1000 {
			chunk := evs.requests(o.Bus, i, min(i+1000, evs.len()), perRequest)
			for k, err := range o.Bus.PublishAll(ctx, chunk) {
				if err != nil {
					log.Fatalf("publish %s: %v", chunk[k].Subject, err)
				}
			}
		}
	}()
	// Everything the bench published is stored (the live case also stores
	// what segments and journeys publish; those are not counted). The
	// count comes from the commit callback: polling COUNT(*) over the
	// growing table cost a sixth of the run's CPU.
	heapAt := evs.len() / 2 // the heap profile is taken half-way
	w := watcher{live: live, t0: t0, last: t0}
	for n := counter.n.Load(); n < int64(evs.len()); n = counter.n.Load() {
		peak.sample()
		if cpuProfile != "" && heapAt > 0 && n >= int64(heapAt) {
			heapAt = 0
			writeHeapProfile(cpuProfile + ".heap")
			go writeTrace(cpuProfile+".trace", 3*time.Second)
		}
		time.Sleep(20 * time.Millisecond)
		if watch {
			w.check(n)
		}
	}
	el, cpu := time.Since(t0), cpuTime()-c0
	<-done
	held, written := pm.RowWrites()
	what := "profiles"
	if live {
		what = "everything live"
	}
	// What profiles.write_delay saved: changes left waiting against the
	// rows the load wrote.
	fmt.Printf("       %s: %d profile changes held back, %d profile rows written\n", what, held-held0, written-written0)
	stored = figure{rate: float64(evs.len()) / el.Seconds(), cpuPer: cpu / time.Duration(evs.len()), heap: peak.max - min(peak.max, peak.base),
		wal: walSince(wal0)}
	stopProfile()
	if !live {
		stored.dbPer = float64(dataBytes(o, dir)) / float64(evs.len())
		return stored, stored
	}
	if cpuProfile != "" {
		stopProfile = startCPUProfile(cpuProfile + ".catchup")
	}
	for queued := 1; queued > 0; time.Sleep(20 * time.Millisecond) {
		if err := o.PB.DB().NewQuery("SELECT COUNT(*) FROM metrics_queue").Row(&queued); err != nil {
			log.Fatal(err)
		}
	}
	el, cpu = time.Since(t0), cpuTime()-c0
	derivedCounts(o)
	return stored, figure{rate: float64(evs.len()) / el.Seconds(), cpuPer: cpu / time.Duration(evs.len()), heap: stored.heap}
}

// dataBytes is the size of dir's data.db (and whatever is left of its WAL)
// once the rows the profiles module holds back are written and the WAL is
// copied back and truncated: what the load stored, not how far the WAL
// happened to have grown when the load ended (up to 80 MB before it is
// cut back; store.StartCheckpoints).
func dataBytes(o *app.Omni, dir string) int64 {
	if err := store.SyncProfiles(o.PB); err != nil {
		log.Fatal(err)
	}
	var busy, frames, copied int
	if err := o.PB.NonconcurrentDB().NewQuery("PRAGMA wal_checkpoint(TRUNCATE)").Row(&busy, &frames, &copied); err != nil {
		log.Fatal(err)
	}
	return dbFileBytes(dir)
}

// dbFileBytes is the size of dir's data.db and its WAL as they are.
func dbFileBytes(dir string) int64 {
	var size int64
	for _, f := range []string{"data.db", "data.db-wal"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err == nil {
			size += fi.Size()
		}
	}
	return size
}

// derivedCounts prints what the live load derived: the events Omni's
// modules stored beside the bench's (segment entries and exits, journey
// steps, conversations) and the segments' members. A change that makes
// the live load faster by deriving less shows here.
func derivedCounts(o *app.Omni) {
	var rows []struct {
		Type string `db:"type"`
		N    int    `db:"n"`
	}
	if err := o.PB.DB().NewQuery("SELECT type, COUNT(*) AS n FROM events WHERE source = 'omni' GROUP BY type ORDER BY type").All(&rows); err != nil {
		log.Fatal(err)
	}
	var members int
	if err := o.PB.DB().NewQuery("SELECT COUNT(*) FROM segment_members").Row(&members); err != nil {
		log.Fatal(err)
	}
	parts := make([]string, 0, len(rows)+1)
	for _, r := range rows {
		parts = append(parts, fmt.Sprintf("%s %d", r.Type, r.N))
	}
	parts = append(parts, fmt.Sprintf("segment members %d", members))
	fmt.Printf("       the live load derived: %s\n", strings.Join(parts, ", "))
	// The rules below read the rows: first what the writer holds back.
	if err := store.SyncProfiles(o.PB); err != nil {
		log.Fatal(err)
	}
	// Members against what each rule selects now. The events path leaves
	// what time alone changes to the scheduled pass (off here), so a
	// customer at a time-based rule's edge may differ by the seconds the
	// load took; anything more is a fault.
	var segs []struct {
		ID   string `db:"id"`
		Name string `db:"name"`
		Rule string `db:"rule"`
	}
	if err := o.PB.DB().NewQuery("SELECT id, name, rule FROM segments").All(&segs); err != nil {
		log.Fatal(err)
	}
	var off []string
	for _, sg := range segs {
		r, err := segmentrule.ParseRule([]byte(sg.Rule))
		if err != nil {
			log.Fatal(err)
		}
		c := segmentrule.NewCompiler(time.Now(), nil)
		where, err := c.Compile(r, "")
		if err != nil {
			log.Fatal(err)
		}
		c.Params["seg"] = sg.ID
		var missing, extra int
		if err := o.PB.DB().NewQuery("SELECT COUNT(*) FROM profiles p WHERE p.merged_into = '' AND COALESCE(" + where + ", 0) AND p.id NOT IN (SELECT profile FROM segment_members WHERE segment = {:seg})").
			Bind(c.Params).Row(&missing); err != nil {
			log.Fatal(err)
		}
		if err := o.PB.DB().NewQuery("SELECT COUNT(*) FROM segment_members sm JOIN profiles p ON p.id = sm.profile WHERE sm.segment = {:seg} AND NOT COALESCE(" + where + ", 0)").
			Bind(c.Params).Row(&extra); err != nil {
			log.Fatal(err)
		}
		if missing+extra > 0 {
			off = append(off, fmt.Sprintf("%s: %d not members the rule selects, %d members it does not", sg.Name, missing, extra))
		}
	}
	if len(off) == 0 {
		off = []string{"every segment's members are what its rule selects"}
	}
	fmt.Printf("       %s\n", strings.Join(off, "; "))
}

// startCPUProfile writes a CPU profile to path until the returned stop
// is called (once; later calls do nothing).
func startCPUProfile(path string) (stop func()) {
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		log.Fatal(err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			f.Close()
		})
	}
}

// liveSetup makes 10 segments of the kinds shops use and publishes 20
// journeys with event triggers (two of them start runs on large orders).
func liveSetup(o *app.Omni, base string) {
	col, err := o.PB.FindCollectionByNameOrId("segments")
	if err != nil {
		log.Fatal(err)
	}
	for i, rule := range []string{
		`{"trait":"lifetime_value.USD","op":"gte","value":300}`,
		`{"and":[{"trait":"orders_count","op":"gte","value":1},{"event":"order.placed","op":"eq","count":0,"within_days":90}]}`,
		`{"event":"message.received","op":"gte","count":1,"within_days":30}`,
		`{"trait":"lifecycle_stage","op":"eq","value":"loyal"}`,
		`{"trait":"orders_count","op":"gte","value":3}`,
		`{"and":[{"event":"checkout.started","op":"gte","count":1,"within_days":7},{"event":"order.placed","op":"eq","count":0,"within_days":7}]}`,
		`{"trait":"engagement_level","op":"in","value":["engaged","active"]}`,
		`{"consent":"email","status":"subscribed"}`,
		`{"trait":"last_seen","op":"within_days","value":30}`,
		`{"or":[{"trait":"tags","op":"contains","value":"vip"},{"trait":"lifetime_value.USD","op":"gte","value":1000}]}`,
	} {
		r := core.NewRecord(col)
		r.Set("name", fmt.Sprintf("segment %d", i))
		r.Set("rule", rule)
		if err := o.PB.Save(r); err != nil {
			log.Fatalf("segment %d: %v", i, err)
		}
	}
	staff, err := o.PB.FindCollectionByNameOrId("staff")
	if err != nil {
		log.Fatal(err)
	}
	owner := core.NewRecord(staff)
	owner.SetEmail("owner@omni-shop.dev")
	owner.SetPassword("password-123456")
	owner.Set("role", "owner")
	owner.Set("name", "Bench Owner")
	if err := o.PB.Save(owner); err != nil {
		log.Fatal(err)
	}
	token, err := owner.NewAuthToken()
	if err != nil {
		log.Fatal(err)
	}
	call := func(path string, body, out any) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", base+path, bytes.NewReader(b))
		req.Header.Set("Authorization", token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			log.Fatalf("POST %s: %d %s", path, resp.StatusCode, strings.TrimSpace(string(raw)))
		}
		if out != nil {
			_ = json.Unmarshal(raw, out)
		}
	}
	types := []string{events.CheckoutStarted, events.OrderPlaced, events.PageViewed, events.EmailOpened, events.MessageReceived}
	for i := range 20 {
		threshold := 1e9 // checked on every event of its type, never met
		if i%10 == 0 {
			threshold = 190 // about 5% of orders start a run
		}
		graph := map[string]any{
			"trigger": map[string]any{"event": types[i%len(types)], "where": map[string]any{"property": "total", "op": "gt", "value": threshold}},
			"goal":    map[string]any{"event": "order.placed", "within": "7d", "exit": true},
			"start":   "w",
			"nodes": map[string]any{
				"w":   map[string]any{"type": "wait_for_event", "event": "order.placed", "timeout": "1h", "next": map[string]any{"happened": "end", "timed_out": "end"}},
				"end": map[string]any{"type": "exit"},
			},
		}
		if i%10 == 0 {
			graph["trigger"].(map[string]any)["event"] = events.OrderPlaced
		}
		var j struct {
			ID string `json:"id"`
		}
		call("/api/v1/journeys", map[string]any{"name": fmt.Sprintf("Journey %d", i), "graph": graph, "settings": map[string]any{"reentry": "every_time"}}, &j)
		call("/api/v1/journeys/"+j.ID+"/publish", map[string]any{}, nil)
	}
}

// watcher prints a load's stored count every second (-watch) and dumps
// every goroutine's stack when a second stored fewer than stallEvents.
type watcher struct {
	live       bool
	t0, last   time.Time
	lastStored int64
}

const stallEvents = 500

func (w *watcher) check(stored int64) {
	if time.Since(w.last) < time.Second {
		return
	}
	fmt.Fprintf(os.Stderr, "  live=%v %5.1fs: %d stored (+%d)\n", w.live, time.Since(w.t0).Seconds(), stored, stored-w.lastStored)
	if stored > 0 && stored-w.lastStored < stallEvents {
		if f, err := os.CreateTemp("", "omni-bench-stall-*.txt"); err == nil {
			_ = pprof.Lookup("goroutine").WriteTo(f, 2)
			f.Close()
			fmt.Fprintf(os.Stderr, "  stall: goroutines in %s\n", f.Name())
		}
	}
	w.last, w.lastStored = time.Now(), stored
}

// storedCounter counts the bench's events as their batches commit.
type storedCounter struct{ n atomic.Int64 }

func (c *storedCounter) Name() string { return "bench-counter" }

func (c *storedCounter) Init(s *app.Setup) error {
	s.OnCommit(func(batch []*eventstore.Stored) {
		var n int64
		for _, st := range batch {
			if st.Event.Source == "bench" {
				n++
			}
		}
		c.n.Add(n)
	})
	return nil
}

func (c *storedCounter) Start(context.Context, *core.ServeEvent) error { return nil }
func (c *storedCounter) Stop(context.Context)                          {}

// writeTrace writes an execution trace of the next d to path: where the
// writer goroutine waits (go tool trace -pprof=sched, or its goroutine
// analysis), which a CPU profile does not show.
func writeTrace(path string, d time.Duration) {
	f, err := os.Create(path)
	if err != nil {
		log.Print(err)
		return
	}
	defer f.Close()
	if err := trace.Start(f); err != nil {
		log.Print(err)
		return
	}
	time.Sleep(d)
	trace.Stop()
}
