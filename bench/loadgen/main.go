// Command loadgen posts Segment /v1/batch requests to any Segment-compatible
// endpoint (Omni, or a peer such as rudder-server) and prints one JSON line:
// acked events/s and p50/p99 request latency. -stub ADDR instead serves a
// trivial 200 endpoint (to check the generator is not the limit).
//
//	go run ./bench/loadgen -url http://127.0.0.1:8090 -key wk_… -events 100000 -c 8
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"

	"github.com/omni/omni/bench/segload"
)

func main() {
	base := flag.String("url", "http://127.0.0.1:8090", "base URL")
	path := flag.String("path", "/v1/batch", "batch path")
	key := flag.String("key", "", "write key")
	total := flag.Int("events", 100000, "total events")
	per := flag.Int("batch", 100, "events per batch")
	conc := flag.Int("c", 8, "concurrent clients")
	label := flag.String("label", "", "label for output")
	stub := flag.String("stub", "", "run a stub server on ADDR instead")
	flag.Parse()

	if *stub != "" {
		fmt.Fprintln(os.Stderr, "stub listening on", *stub)
		if err := http.ListenAndServe(*stub, segload.Stub()); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
		return
	}
	if *total < 1 || *per < 1 || *conc < 1 {
		fmt.Fprintln(os.Stderr, "loadgen: -events, -batch and -c must be positive")
		os.Exit(2)
	}
	r := segload.Run(context.Background(), segload.Options{URL: *base, Path: *path, Key: *key, Events: *total, Batch: *per, Clients: *conc, Label: *label})
	j, _ := json.Marshal(r)
	fmt.Println(string(j))
}
