// Command walframes counts the WAL frames (pages written) per stored event
// of the events insert alone: bench/profiles' events (bench/internal/custload:
// customers × events each, random times over 300 days, customers in turn),
// stored with eventstore.WriteBatch in batches, as the floor of
// bench/profiles stores them. Each batch's frames are read from the WAL's size, and the WAL is
// truncated after each batch, so a page written by two batches counts twice,
// as SQLite writes it.
//
//	go run ./bench/walframes                       # the floor: events without a profile
//	go run ./bench/walframes -profile              # each event with its customer's profile, as Omni stores them
//	go run ./bench/walframes -profile -batch 4000  # bigger transactions
//	go run ./bench/walframes -drop idx_events_time # without one index: what that index costs
//
// It prints the frames per event over the whole load and over its last
// fifth (where the tables are nearly their final size).
//
// With -of DIR it instead attributes the frames now in DIR's WAL (a
// running server's data dir, or bench/profiles' /tmp/omni-bench-store-*
// while a case runs) to the tables and indexes they belong to: which ones
// the load writes, commit after commit. It reads copies, never DIR itself.
//
//	go run ./bench/walframes -of ./omni_data
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/bench/internal/custload"
	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/eventstore"
	"github.com/omni/omni/core/logging"
)

// The WAL's layout (https://www.sqlite.org/fileformat2.html#walformat): a
// file header, then frames of a header and a page each; walFrameBytes is
// one frame with Omni's 4 KiB pages.
const (
	walHeaderBytes      = 32
	walFrameHeaderBytes = 24
	walFrameBytes       = walFrameHeaderBytes + 4096
)

func main() {
	customers := flag.Int("profiles", 20000, "customers")
	perCustomer := flag.Int("events", 10, "events per customer")
	batchSize := flag.Int("batch", 1000, "events per transaction (the events consumer's default)")
	withProfile := flag.Bool("profile", false, "store each event with its customer's profile id, as Omni does (the floor stores none)")
	drop := flag.String("drop", "", "drop this index of events first")
	of := flag.String("of", "", "instead: attribute the frames now in DIR/data.db-wal to tables and indexes (reads copies)")
	flag.Parse()
	if *of != "" {
		a, err := attributeWAL(*of)
		if err != nil {
			log.Fatalf("walframes: -of: %v", err)
		}
		a.print(os.Stdout, *of)
		return
	}
	if *customers < 1 || *perCustomer < 1 || *batchSize < 1 {
		log.Fatal("walframes: -profiles, -events and -batch must be at least 1")
	}

	dir, err := os.MkdirTemp("", "omni-walframes-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cfg := config.Default()
	cfg.DataDir = dir
	o := app.New(cfg, logging.New(io.Discard, "error", "text"))
	if err := o.Open(); err != nil {
		log.Fatal(err)
	}
	defer o.PB.ResetBootstrapState()
	db := o.PB.NonconcurrentDB()
	if *drop != "" {
		if _, err := db.NewQuery("DROP INDEX " + *drop).Execute(); err != nil {
			log.Fatalf("walframes: -drop %s: %v", *drop, err)
		}
	}

	// bench/profiles' events, in its order: every customer once per round.
	load := custload.New()
	evs := make([]*events.Event, 0, *customers**perCustomer)
	for j := 0; j < *perCustomer; j++ {
		for p := 0; p < *customers; p++ {
			evs = append(evs, load.Event(p, j))
		}
	}
	var procs []eventstore.Processor
	if *withProfile {
		ids := make([]string, *customers)
		for i := range ids {
			ids[i] = core.GenerateDefaultRandomId()
		}
		procs = append(procs, profileSetter(ids))
	}
	wal := filepath.Join(dir, "data.db-wal")
	var frames, tailFrames, tailEvents int
	for i := 0; i < len(evs); i += *batchSize {
		batch := evs[i:min(i+*batchSize, len(evs))]
		if _, err := eventstore.WriteBatch(o.PB, batch, procs...); err != nil {
			log.Fatal(err)
		}
		st, err := os.Stat(wal)
		if err != nil {
			log.Fatal(err)
		}
		n := int((st.Size() - walHeaderBytes) / walFrameBytes)
		if _, err := db.NewQuery("PRAGMA wal_checkpoint(TRUNCATE)").Execute(); err != nil {
			log.Fatal(err)
		}
		frames += n
		if i >= len(evs)-len(evs)/5 {
			tailFrames, tailEvents = tailFrames+n, tailEvents+len(batch)
		}
	}
	fmt.Printf("walframes: %d events, batches of %d, profile=%v, dropped=%q: %.2f frames per event (last fifth: %.2f)\n",
		len(evs), *batchSize, *withProfile, *drop, float64(frames)/float64(len(evs)), float64(tailFrames)/float64(max(tailEvents, 1)))
}

// profileSetter gives each event its customer's profile id before the rows
// are written (eventstore.BeforeInsert), nothing else.
type profileSetter []string

func (ids profileSetter) BeforeInsert(_ core.App, batch []*eventstore.Stored) error {
	for _, s := range batch {
		rest, _ := strings.CutPrefix(s.Event.ID, "b-")
		customer, _, _ := strings.Cut(rest, "-")
		n, err := strconv.Atoi(customer)
		if err != nil || n < 0 || n >= len(ids) {
			return fmt.Errorf("walframes: event %s: no customer", s.Event.ID)
		}
		s.Profile = ids[n]
	}
	return nil
}

func (profileSetter) ProcessBatch(core.App, []*eventstore.Stored) error { return nil }
