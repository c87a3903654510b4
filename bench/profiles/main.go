// Command profiles loads synthetic customers through a real Omni (embedded
// JetStream → events store → profiles processor in the same SQLite
// transaction) and reports identity-resolution latency, ingest throughput,
// merge cost, segment re-evaluation time and database size.
//
//	go run ./bench/profiles -profiles 100000 -events 10
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/bench/internal/custload"
	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/logging"
	"github.com/omni/omni/core/profiles"
)

type samples struct {
	mu sync.Mutex
	m  map[string][]time.Duration
}

func (s *samples) observe(step string, d time.Duration) {
	s.mu.Lock()
	s.m[step] = append(s.m[step], d)
	s.mu.Unlock()
}

func (s *samples) reset() {
	s.mu.Lock()
	s.m = map[string][]time.Duration{}
	s.mu.Unlock()
}

func (s *samples) report(step string) string {
	s.mu.Lock()
	d := slices.Clone(s.m[step])
	s.mu.Unlock()
	if len(d) == 0 {
		return step + ": no samples"
	}
	slices.Sort(d)
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	q := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
	return fmt.Sprintf("%-8s n=%-9d mean=%-10v p50=%-10v p99=%-10v max=%v", step, len(d), sum/time.Duration(len(d)), q(0.50), q(0.99), d[len(d)-1])
}

func main() {
	nProfiles := flag.Int("profiles", 20000, "synthetic customers (3 identities each)")
	perProfile := flag.Int("events", 10, "events per customer")
	nMerges := flag.Int("merges", 1000, "pairs of separate profiles joined afterwards")
	dir := flag.String("dir", "", "data directory (default: a temp dir, removed afterwards)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the load phase")
	unmergeEvents := flag.Int("unmerge-events", 0, "also time un-merging a profile with this many events (half from each side), 3 runs; 0 = skip")
	cacheMB := flag.Int("cache-mb", 0, "raise SQLite's page cache of the writer connection to this many MB (0 = PocketBase's default)")
	onlySearch := flag.Bool("only-search", false, "stop after the search phase (load, then search latency)")
	searches := flag.Int("searches", 300, "queries of each kind in the search phase")
	reuse := flag.Bool("reuse", false, "with -dir holding an earlier run's load: skip loading and only run the search phase")
	bracket := flag.Bool("bracket", false, "with -compare: also run the floor between the two Omni cases and after them, and print each case's ratio against the mean of the floors just before and after it (the machine's speed moves during a run)")
	compareMode := flag.Bool("compare", false, "only compare, on the same events: batched SQLite insert (floor), stored with profiles, and everything live (10 segments, 20 journeys, metrics); -cpuprofile F profiles the last run's two loads into F.profiles and F.live, and metrics' catch-up after the live load into F.live.catchup; half-way through each load it writes the heap (F.*.heap) and a 3 s execution trace (F.*.trace)")
	runs := flag.Int("runs", 3, "with -compare: runs of the three cases (medians printed)")
	flag.BoolVar(&watch, "watch", false, "with -compare: print each load's stored count every second and Omni's warnings on stderr, and dump every goroutine's stack to a file whenever a second stores fewer than 500 events (a stall)")
	flag.IntVar(&perRequest, "per-request", perRequest, "with -compare: events per EVENTS message, as ingest publishes a tracking request's (1: a message per event)")
	liveOnly := flag.Bool("live-only", false, "with -compare: run only the everything-live case, -runs times (its rate and CPU per event; no floor, so no ratio)")
	abOther := flag.String("ab", "", "compare builds (implies -compare): alternate -runs runs of this build with as many of BIN, another build of this bench (ABBA order), and print each build's medians of Omni's own rates and CPU per event, and their quotients")
	flag.Parse()
	if *abOther != "" {
		abCompare(*abOther, max(1, *runs), []string{"-profiles", strconv.Itoa(*nProfiles), "-events", strconv.Itoa(*perProfile)})
		return
	}

	dataDir := *dir
	if dataDir == "" {
		d, err := os.MkdirTemp("", "omni-bench-profiles-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		dataDir = d
	}
	load := custload.New()
	base, rng, mkEvent := load.Base, load.Rand, load.Event

	if *compareMode {
		// Held encoded, as the bus holds them, in one arena outside the
		// Go heap: 200k decoded events are ~150 MB of maps the collector
		// would mark in every cycle of the server under test, and even
		// encoded they would count towards its heap's soft limit, which
		// a serving Omni's input does not.
		msgs := &msgArena{}
		for j := 0; j < *perProfile; j++ {
			for p := 0; p < *nProfiles; p++ {
				ev := mkEvent(p, j)
				data, err := ev.Marshal()
				if err != nil {
					log.Fatal(err)
				}
				msgs.add(bus.Msg{Subject: ev.Subject(), Data: data, ID: ev.ID})
			}
		}
		msgs.seal()
		if *liveOnly {
			compareLive(msgs, max(1, *runs))
			return
		}
		compare(msgs, max(1, *runs), *cpuProfile, *bracket)
		return
	}
	// The plain load's server; -compare starts its own, one per case.
	cfg := config.Default()
	cfg.DataDir = dataDir
	cfg.Bus.MaxStoreMB = 8192
	st := &samples{m: map[string][]time.Duration{}}
	mod := profiles.New(profiles.Options{Interval: -1, Observe: st.observe})
	o := app.New(cfg, logging.New(io.Discard, "error", "text"))
	o.Use(mod)
	serve(o)
	defer o.Shutdown()

	ctx := context.Background()
	if *cacheMB > 0 {
		// The writer pool has one connection, so the pragma sticks.
		if _, err := o.PB.NonconcurrentDB().NewQuery(fmt.Sprintf("PRAGMA cache_size = -%d", *cacheMB*1024)).Execute(); err != nil {
			log.Fatal(err)
		}
	}
	countEvents := func() int {
		var n int
		_ = o.PB.DB().NewQuery("SELECT COUNT(*) FROM events").Row(&n)
		return n
	}
	publish := func(evs []*events.Event) {
		for i, err := range ingest.Publish(ctx, o.Bus, evs) {
			if err != nil {
				log.Fatalf("publish %s: %v", evs[i].ID, err)
			}
		}
	}
	waitFor := func(n int) {
		for countEvents() < n {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if *reuse {
		var loaded int
		_ = o.PB.DB().NewQuery("SELECT COUNT(*) FROM profiles WHERE merged_into=''").Row(&loaded)
		if loaded < *nProfiles {
			log.Fatalf("-reuse: %s holds %d profiles, fewer than -profiles %d", dataDir, loaded, *nProfiles)
		}
		searchBench(o, mod, rng, *nProfiles, *perProfile, *searches)
		return
	}
	stopProfile := func() {}
	if *cpuProfile != "" {
		stopProfile = startCPUProfile(*cpuProfile)
	}
	// Phase 1: load. Events are published in waves so customers interleave.
	total := *nProfiles * *perProfile
	fmt.Printf("loading %d profiles × %d events = %d events\n", *nProfiles, *perProfile, total)
	start := time.Now()
	var pubWG sync.WaitGroup
	pubWG.Add(1)
	go func() {
		defer pubWG.Done()
		const chunk = 1000
		buf := make([]*events.Event, 0, chunk)
		for j := 0; j < *perProfile; j++ {
			for p := 0; p < *nProfiles; p++ {
				buf = append(buf, mkEvent(p, j))
				if len(buf) == chunk {
					publish(buf)
					buf = buf[:0]
				}
			}
		}
		if len(buf) > 0 {
			publish(buf)
		}
	}()
	last, lastT := 0, time.Now()
	for {
		n := countEvents()
		if time.Since(lastT) > 10*time.Second {
			fmt.Printf("  %d/%d stored (%.0f events/s)\n", n, total, float64(n-last)/time.Since(lastT).Seconds())
			last, lastT = n, time.Now()
		}
		if n >= total {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	pubWG.Wait()
	el := time.Since(start)
	fmt.Printf("ingest through profiles: %d events in %v = %.0f events/s (publish + store + resolve, end to end)\n", total, el.Round(time.Millisecond), float64(total)/el.Seconds())
	fmt.Println(st.report("resolve"))
	fmt.Println(st.report("batch"))
	stopProfile()
	var live, idents int
	_ = o.PB.DB().NewQuery("SELECT COUNT(*) FROM profiles WHERE merged_into=''").Row(&live)
	_ = o.PB.DB().NewQuery("SELECT COUNT(*) FROM identities").Row(&idents)
	fmt.Printf("profiles=%d identities=%d\n", live, idents)

	// Phase 1b: search, as the customers list asks (count + first page).
	searchBench(o, mod, rng, *nProfiles, *perProfile, *searches)
	if *onlySearch {
		return
	}
	stored := countEvents()
	if *unmergeEvents > 0 {
		stored = benchUnmerge(o, mod, *unmergeEvents, stored, publish, waitFor, base)
	}

	// Phase 2: merges. Two separate profiles per person, then one joining event.
	st.reset()
	var evs []*events.Event
	for i := 0; i < *nMerges; i++ {
		for k := 0; k < 5; k++ {
			evs = append(evs, &events.Event{ID: fmt.Sprintf("m-a-%d-%d", i, k), Type: events.PageViewed, Source: "bench", OccurredAt: base, ReceivedAt: time.Now(),
				Identities: events.Identities{events.Email: fmt.Sprintf("m%d@omni-shop.dev", i)}, Context: events.Context{Channel: "web"}})
			evs = append(evs, &events.Event{ID: fmt.Sprintf("m-b-%d-%d", i, k), Type: events.OrderPlaced, Source: "bench", OccurredAt: base, ReceivedAt: time.Now(),
				Identities: events.Identities{events.Phone: fmt.Sprintf("+1650%07d", i)}, Properties: map[string]any{"total": 10.0}, Context: events.Context{Channel: "pos"}})
		}
	}
	for i := 0; i < len(evs); i += 1000 {
		publish(evs[i:min(i+1000, len(evs))])
	}
	stored += len(evs)
	waitFor(stored)
	st.reset()
	evs = evs[:0]
	for i := 0; i < *nMerges; i++ {
		evs = append(evs, &events.Event{ID: fmt.Sprintf("m-join-%d", i), Type: events.MessageReceived, Source: "bench", OccurredAt: time.Now(), ReceivedAt: time.Now(),
			Identities: events.Identities{events.Email: fmt.Sprintf("m%d@omni-shop.dev", i), events.Phone: fmt.Sprintf("+1650%07d", i)}, Context: events.Context{Channel: "whatsapp"}})
	}
	t0 := time.Now()
	for i := 0; i < len(evs); i += 1000 {
		publish(evs[i:min(i+1000, len(evs))])
	}
	stored += len(evs)
	waitFor(stored)
	fmt.Printf("merges: %d joins (each moves 5 events + 1 identity) in %v\n", *nMerges, time.Since(t0).Round(time.Millisecond))
	fmt.Println(st.report("merge"))
	fmt.Println(st.report("resolve"))

	// Phase 3: segments.
	col, err := o.PB.FindCollectionByNameOrId("segments")
	if err != nil {
		log.Fatal(err)
	}
	rules := map[string]string{
		"big spenders (trait)":         `{"trait":"lifetime_value.USD","op":"gte","value":300}`,
		"no order in 90 days (window)": `{"and":[{"trait":"orders_count","op":"gte","value":1},{"event":"order.placed","op":"eq","count":0,"within_days":90}]}`,
		"active on whatsapp (window)":  `{"event":"message.received","op":"gte","count":1,"within_days":30}`,
		"loyal (lifecycle)":            `{"trait":"lifecycle_stage","op":"eq","value":"loyal"}`,
	}
	for name, rule := range rules {
		r := core.NewRecord(col)
		r.Set("name", name)
		r.Set("rule", rule)
		t0 := time.Now()
		if err := o.PB.Save(r); err != nil {
			log.Fatalf("segment %s: %v", name, err)
		}
		var n int
		_ = o.PB.DB().NewQuery("SELECT COUNT(*) FROM segment_members WHERE segment={:s}").Bind(map[string]any{"s": r.Id}).Row(&n)
		fmt.Printf("segment %-30s initial evaluation %-10v members=%d\n", name, time.Since(t0).Round(time.Millisecond), n)
	}
	t0 = time.Now()
	if err := mod.Reevaluate(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("scheduled re-evaluation (2 time-based segments + due traits + daily counts): %v\n", time.Since(t0).Round(time.Millisecond))

	// Phase 4: ingest with 4 live segments evaluated per batch.
	st.reset()
	evs = evs[:0]
	n4 := min(50000, total)
	for i := 0; i < n4; i++ {
		ev := mkEvent(rng.IntN(*nProfiles), 1)
		ev.ID = fmt.Sprintf("s-%d", i)
		evs = append(evs, ev)
	}
	t0 = time.Now()
	for i := 0; i < len(evs); i += 1000 {
		publish(evs[i:min(i+1000, len(evs))])
	}
	stored += len(evs)
	waitFor(stored)
	el = time.Since(t0)
	fmt.Printf("ingest with 4 segments live: %d events in %v = %.0f events/s\n", n4, el.Round(time.Millisecond), float64(n4)/el.Seconds())
	fmt.Println(st.report("resolve"))
	fmt.Println(st.report("batch"))

	size := dbFileBytes(dataDir)
	fmt.Printf("data.db (+wal): %.1f MB for %d events, %d profiles\n", float64(size)/(1<<20), stored, live)
}

// benchUnmerge times Module.Unmerge (one transaction: identities, event
// split, person-owned rows, traits rebuilt from events on both sides,
// segments) on a profile of n events, half of them the loser's, 3 times,
// and reports each run and the median. Returns the events stored so far.
func benchUnmerge(o *app.Omni, mod *profiles.Module, n, stored int, publish func([]*events.Event), waitFor func(int), base time.Time) int {
	var took []time.Duration
	for run := 0; run < 3; run++ {
		email, phone := fmt.Sprintf("um%d@omni-shop.dev", run), fmt.Sprintf("+1707%07d", run)
		var evs []*events.Event
		for i := 0; i < n; i++ {
			ids := events.Identities{events.Email: email}
			if i%2 == 1 {
				ids = events.Identities{events.Phone: phone}
			}
			typ, props := events.PageViewed, map[string]any(nil)
			if i%10 == 0 {
				typ, props = events.OrderPlaced, map[string]any{"total": 12.5, "currency": "USD"}
			}
			evs = append(evs, &events.Event{ID: fmt.Sprintf("um-%d-%d", run, i), Type: typ, Source: "bench", ReceivedAt: time.Now(),
				OccurredAt: base.Add(time.Duration(i) * time.Minute), Identities: ids, Properties: props, Context: events.Context{Channel: "web"}})
		}
		evs = append(evs, &events.Event{ID: fmt.Sprintf("um-join-%d", run), Type: events.Identify, Source: "bench", ReceivedAt: time.Now(),
			OccurredAt: base.Add(time.Duration(n) * time.Minute), Identities: events.Identities{events.Email: email, events.Phone: phone}})
		for i := 0; i < len(evs); i += 1000 {
			publish(evs[i:min(i+1000, len(evs))])
		}
		stored += len(evs) + 1 // and the join's profile.merged, stored through the relay
		waitFor(stored)
		var m struct {
			ID       string `db:"id"`
			Survivor string `db:"survivor"`
		}
		if err := o.PB.DB().NewQuery(`SELECT m.id, m.survivor FROM profile_merges m JOIN identities i ON i.profile = m.survivor
WHERE i.kind = 'email' AND i.value = {:e} AND COALESCE(m.undone_at, '') = ''`).Bind(map[string]any{"e": email}).One(&m); err != nil {
			log.Fatalf("un-merge bench: the merge of run %d: %v", run, err)
		}
		t0 := time.Now()
		out, err := mod.Unmerge(o.PB, m.Survivor, m.ID, profiles.UnmergeBy{StaffName: "bench"})
		if err != nil {
			log.Fatalf("un-merge bench: %v", err)
		}
		d := time.Since(t0)
		took = append(took, d)
		stored++ // profile.unmerged, stored through the relay
		waitFor(stored)
		fmt.Printf("un-merge run %d: %d events (%d kept, %d moved back) in %v\n", run+1, n+1, out.Survivor.Events, out.Restored.Events, d.Round(time.Millisecond))
	}
	slices.Sort(took)
	fmt.Printf("un-merge of a profile with %d events: median of 3 = %v\n", n, took[1].Round(time.Millisecond))
	return stored
}

// searchBench times Module.Search (the count and the first page of 25
// that GET /api/v1/profiles answers) for the queries staff type: a last
// name, a prefix of one, an order number as #1086 and as the vendor's long
// id, and an email.
func searchBench(o *app.Omni, mod *profiles.Module, rng *rand.Rand, nProfiles, perProfile, n int) {
	var orders []string
	_ = o.PB.DB().NewQuery("SELECT json_extract(properties, '$.order_number') FROM events WHERE type = 'order.placed' AND source = 'bench' LIMIT 100000").Column(&orders)
	if len(orders) == 0 {
		log.Fatal("search bench: no orders loaded")
	}
	kinds := []struct {
		name string
		q    func() string
	}{
		{"last name", func() string { return custload.LastName(rng.IntN(nProfiles)) }},
		{"first+last", func() string { p := rng.IntN(nProfiles); return custload.FirstName(p) + " " + custload.LastName(p) }},
		{"partial name", func() string { return strings.ToLower(custload.LastName(rng.IntN(nProfiles))[:4]) }},
		{"order #", func() string { return "#" + orders[rng.IntN(len(orders))] }},
		{"order long id", func() string {
			n, _ := strconv.Atoi(orders[rng.IntN(len(orders))])
			return strconv.Itoa(5600000000000 + n)
		}},
		{"email", func() string { return fmt.Sprintf("c%d@omni-shop.dev", rng.IntN(nProfiles)) }},
	}
	fmt.Printf("search at %d profiles (count + first page of 25, %d queries each):\n", nProfiles, n)
	for _, k := range kinds {
		var d []time.Duration
		hits := 0
		for i := 0; i < n; i++ {
			q := k.q()
			t0 := time.Now()
			total, _, err := mod.Search(o.PB, url.Values{"q": {q}}, 1, 25)
			d = append(d, time.Since(t0))
			if err != nil {
				log.Fatalf("search %q: %v", q, err)
			}
			if total > 0 {
				hits++
			}
		}
		slices.Sort(d)
		fmt.Printf("  %-14s p50=%-10v p99=%-10v max=%-10v found something for %d/%d\n", k.name, d[len(d)/2].Round(10*time.Microsecond),
			d[min(len(d)-1, len(d)*99/100)].Round(10*time.Microsecond), d[len(d)-1].Round(10*time.Microsecond), hits, n)
	}
}
