package main

import (
	"bytes"
	"fmt"
	"log"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"time"
)

// abRun is what one `-compare -runs 1` printed: each case's rate and CPU
// per event.
type abRun struct {
	floor, profiles, live figure
}

// abCases are the three cases of a run, in the order compare prints them.
var abCases = []struct {
	name string
	pick func(abRun) figure
}{
	{"floor (batched SQLite insert)", func(r abRun) figure { return r.floor }},
	{"stored + profiles resolved", func(r abRun) figure { return r.profiles }},
	{"everything live", func(r abRun) figure { return r.live }},
}

// runLine matches the line compare prints for each run, up to the live
// case (the rolled-up figure after it is metrics' catch-up, not a target).
var runLine = regexp.MustCompile(`run \d+: floor ([\d.]+)/s \((\S+) CPU/event\) \| profiles ([\d.]+)/s = \S+ \((\S+) CPU/event\) \| everything live ([\d.]+)/s = \S+ \((\S+) CPU/event\)`)

// parseRun reads the figures of the first run line in out.
func parseRun(out []byte) (abRun, error) {
	m := runLine.FindSubmatch(out)
	if m == nil {
		return abRun{}, fmt.Errorf("no run line in the output:\n%s", out)
	}
	var figs [3]figure
	for i := range figs {
		rate, err := strconv.ParseFloat(string(m[1+2*i]), 64)
		if err != nil {
			return abRun{}, fmt.Errorf("rate %q: %w", m[1+2*i], err)
		}
		cpu, err := time.ParseDuration(string(m[2+2*i]))
		if err != nil {
			return abRun{}, fmt.Errorf("CPU per event %q: %w", m[2+2*i], err)
		}
		figs[i] = figure{rate: rate, cpuPer: cpu}
	}
	return abRun{floor: figs[0], profiles: figs[1], live: figs[2]}, nil
}

// abCompare alternates `-compare -runs 1` of another build of this bench
// (other) and of this one, pairs times each, in ABBA order so that a
// machine slowing down during the runs favours neither, and prints each
// build's medians of Omni's own rates and CPU per event. A change is
// judged by those: one build's ratio moves with its floor, which can be
// off by a quarter for reasons outside the code it measures, and the
// machine's speed drifts within minutes (docs/benchmarks.md, twentieth
// round).
func abCompare(other string, pairs int, args []string) {
	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	builds := [2]string{other, self}
	names := [2]string{"other", "this"}
	var got [2][]abRun
	for i := range 2 * pairs {
		b := i % 2
		if (i/2)%2 == 1 { // ABBA: the second pair runs this build first
			b = 1 - b
		}
		cmd := exec.Command(builds[b], append([]string{"-compare", "-runs", "1"}, args...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, os.Stderr
		if err := cmd.Run(); err != nil {
			log.Fatalf("%s: %v\n%s", builds[b], err, out.Bytes())
		}
		r, err := parseRun(out.Bytes())
		if err != nil {
			log.Fatalf("%s: %v", builds[b], err)
		}
		got[b] = append(got[b], r)
		fmt.Printf("%-5s floor %6.0f/s | profiles %6.0f/s (%v CPU/event) = %.2f× | everything live %6.0f/s (%v CPU/event) = %.2f×\n",
			names[b], r.floor.rate, r.profiles.rate, r.profiles.cpuPer.Round(100*time.Nanosecond), r.profiles.rate/r.floor.rate,
			r.live.rate, r.live.cpuPer.Round(100*time.Nanosecond), r.live.rate/r.floor.rate)
	}
	med := func(runs []abRun, pick func(abRun) figure) figure {
		fs := make([]figure, len(runs))
		for i, r := range runs {
			fs[i] = pick(r)
		}
		return medianFigure(fs)
	}
	fmt.Printf("medians of %d runs of each build (this: %s; other: %s):\n", pairs, self, other)
	fmt.Printf("  %-28s %18s %18s %22s\n", "", "this build", "other build", "this ÷ other")
	for _, c := range abCases {
		t, o := med(got[1], c.pick), med(got[0], c.pick)
		fmt.Printf("  %-28s %8.0f/s %7v %8.0f/s %7v   rate %.3f×, CPU %.3f×\n", c.name,
			t.rate, t.cpuPer.Round(100*time.Nanosecond), o.rate, o.cpuPer.Round(100*time.Nanosecond),
			t.rate/o.rate, float64(t.cpuPer)/float64(o.cpuPer))
	}
	// The floor runs none of Omni's modules and no bus: when it moves
	// between the builds as much as Omni's cases do, the builds differ in
	// where their code and data landed, not in what a change does.
	ratio := func(runs []abRun, pick func(abRun) figure) float64 {
		rs := make([]float64, len(runs))
		for i, r := range runs {
			rs[i] = pick(r).rate / r.floor.rate
		}
		return median(rs)
	}
	prof, live := abCases[1].pick, abCases[2].pick
	fmt.Printf("  each run against its own floor (medians): this build profiles %.2f×, live %.2f×; other build %.2f×, %.2f×\n",
		ratio(got[1], prof), ratio(got[1], live), ratio(got[0], prof), ratio(got[0], live))
}
