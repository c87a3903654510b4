package main

import (
	"testing"
	"time"
)

// A line as compare prints it (taken from a run), and one whose CPU per
// event went past a millisecond.
func TestParseRunReadsEachCase(t *testing.T) {
	out := []byte(`the bench's events (encoded) take 55 MB, mapped outside the Go heap; the bench's own heap: 8 MB
run 1: floor 39474/s (26.292µs CPU/event) | profiles 17924/s = 0.45× (81.699µs CPU/event) | everything live 13659/s = 0.35× (1.106434ms CPU/event), rolled up 5715/s = 0.14× (225.569µs CPU/event)
       the WAL during each load: floor 1.87 frames/event
`)
	r, err := parseRun(out)
	if err != nil {
		t.Fatal(err)
	}
	want := abRun{
		floor:    figure{rate: 39474, cpuPer: 26292 * time.Nanosecond},
		profiles: figure{rate: 17924, cpuPer: 81699 * time.Nanosecond},
		live:     figure{rate: 13659, cpuPer: 1106434 * time.Nanosecond},
	}
	if r != want {
		t.Fatalf("parsed %+v, want %+v", r, want)
	}
}

func TestParseRunNamesAMissingLine(t *testing.T) {
	if _, err := parseRun([]byte("medians of 1, 200000 events each:\n")); err == nil {
		t.Fatal("no error for output without a run line")
	}
}
