// Command all runs Omni's benchmarks in one go — ingest, profiles, segments,
// journeys, inbox, metrics, and the Segment load generator against a fresh
// `omni serve` with its memory sampled from /proc — and prints one table:
// each figure beside its floor (measured in the same run) and its target.
//
//	go run ./bench/all                      # the standard sizes (about 15 minutes on 2 cores)
//	go run ./bench/all -short               # seconds per bench: proves every bench still runs
//	go run ./bench/all -compare http://127.0.0.1:8080 -compare-key KEY   # and a peer, side by side
//
// Every bench program keeps its own flags and output; this command builds
// them with the omni binary, runs each as a subprocess and reads its
// figures from what it prints (-v shows the raw output).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

func main() {
	var o Options
	flag.BoolVar(&o.Short, "short", false, "a seconds-long run of every bench (what CI runs)")
	flag.StringVar(&o.Only, "only", "", "comma-separated benches to run (default all): "+strings.Join(benchNames, ","))
	flag.StringVar(&o.Bin, "bin", "", "omni binary to test (default: built from this checkout)")
	flag.StringVar(&o.CompareURL, "compare", "", "base URL of another Segment-compatible endpoint to load with the same generator")
	flag.StringVar(&o.CompareKey, "compare-key", "", "its write key")
	flag.StringVar(&o.ComparePIDs, "compare-pids", "", "comma-separated pids whose CPU counts as the peer's (e.g. the server and its database)")
	flag.StringVar(&o.Clients, "clients", "", "generator clients, comma-separated (default 8,32; short: 8)")
	flag.IntVar(&o.Events, "events", 0, "generator events per run (default 100000; short: 1000)")
	flag.IntVar(&o.Runs, "runs", 0, "generator runs per server and client count; medians are reported (default 3; short: 1)")
	flag.DurationVar(&o.Settle, "settle", 0, "how long after the load the memory is read again (default 1m; short: 1s)")
	flag.BoolVar(&o.Verbose, "v", false, "print each bench's raw output to stderr")
	flag.Parse()

	ctx := context.Background()
	t0 := time.Now()
	tab, err := Run(ctx, o, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/all:", err)
		os.Exit(2)
	}
	tab.Print(os.Stdout)
	fmt.Printf("\n%d rows in %v; ratios compare figures of this run only.\n", len(tab.Rows), time.Since(t0).Round(time.Second))
}
