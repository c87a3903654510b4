package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Options of one run; zero values take the mode's defaults.
type Options struct {
	Short       bool
	Only        string
	Bin         string
	CompareURL  string
	CompareKey  string
	ComparePIDs string
	Clients     string
	Events      int
	Runs        int
	Settle      time.Duration
	Verbose     bool
}

var benchNames = []string{"ingest", "profiles", "journeys", "metrics", "inbox", "generator"}

// env is what every bench of one run shares: the built binaries, the
// repository root.
type env struct {
	o       Options
	root    string
	bins    string // directory holding omni and the bench binaries
	log     io.Writer
	tab     *Table
	tmpDirs []string
}

// Run builds everything, runs the chosen benches in order and returns the table.
func Run(ctx context.Context, o Options, log io.Writer) (*Table, error) {
	want := benchNames
	if o.Only != "" {
		want = strings.Split(o.Only, ",")
		for _, w := range want {
			if !slices.Contains(benchNames, w) {
				return nil, fmt.Errorf("-only: unknown bench %q (known: %s)", w, strings.Join(benchNames, ","))
			}
		}
	}
	if (o.CompareURL == "") != (o.CompareKey == "") {
		return nil, errors.New("-compare and -compare-key go together")
	}
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "omni-bench-all-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	e := &env{o: o, root: root, bins: tmp, log: log, tab: &Table{}}
	t0 := time.Now()
	if err := e.build(ctx); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "bench/all: built omni and the benches in %v\n", time.Since(t0).Round(time.Second))
	steps := map[string]func(context.Context){
		"ingest": e.ingest, "profiles": e.profiles, "journeys": e.journeys,
		"metrics": e.metrics, "inbox": e.inbox, "generator": e.generator,
	}
	for _, name := range benchNames {
		if slices.Contains(want, name) {
			t0 := time.Now()
			steps[name](ctx)
			fmt.Fprintf(log, "bench/all: %s done in %v\n", name, time.Since(t0).Round(time.Second))
		}
	}
	return e.tab, nil
}

// build compiles omni and the Go bench programs into one directory (one go
// build, so the shared packages compile once).
func (e *env) build(ctx context.Context) error {
	pkgs := []string{"./bench/ingest", "./bench/profiles", "./bench/journeys", "./bench/metrics"}
	if e.o.Bin == "" {
		pkgs = append(pkgs, ".")
	}
	args := []string{"build", "-o", e.bins + "/"}
	if e.o.Short {
		// No debug info: linking five large binaries is most of a short
		// run's time, and nothing in it is profiled or debugged.
		args = append(args, "-ldflags=-s -w")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, pkgs...)...)
	cmd.Dir = e.root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	if e.o.Bin != "" {
		abs, err := filepath.Abs(e.o.Bin)
		if err != nil {
			return err
		}
		return os.Symlink(abs, filepath.Join(e.bins, "omni"))
	}
	return nil
}

func (e *env) omni() string { return filepath.Join(e.bins, "omni") }

// exec runs one bench binary from the repository root and returns its
// standard output (stderr goes to the log with -v, and into the error).
func (e *env) exec(ctx context.Context, timeout time.Duration, extraEnv []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = e.root
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.WaitDelay = 5 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if e.o.Verbose {
		cmd.Stdout = io.MultiWriter(&out, e.log)
		cmd.Stderr = io.MultiWriter(&errb, e.log)
	}
	err := cmd.Run()
	if ctx.Err() != nil {
		return out.String(), fmt.Errorf("%s: no result after %v", filepath.Base(name), timeout)
	}
	if err != nil {
		// The servers' own log lines (slog, level=…) would hide the bench's error.
		var kept []string
		for _, l := range strings.Split(errb.String(), "\n") {
			if !strings.Contains(l, " level=") {
				kept = append(kept, l)
			}
		}
		tail := strings.TrimSpace(strings.Join(kept, "\n"))
		if len(tail) > 300 {
			tail = tail[len(tail)-300:]
		}
		return out.String(), fmt.Errorf("%s: %v: %s", filepath.Base(name), err, tail)
	}
	return out.String(), nil
}

func (e *env) pick(short, full time.Duration) time.Duration {
	if e.o.Short {
		return short
	}
	return full
}

// --- ingest: acknowledged and stored against the JetStream and SQLite floors

var (
	reAcked   = regexp.MustCompile(`acknowledged:\s+([\d.]+) events/s`)
	reStored  = regexp.MustCompile(`stored in SQLite:\s+([\d.]+) events/s`)
	reBus     = regexp.MustCompile(`JetStream publish:\s+([\d.]+) events/s`)
	reSQLite  = regexp.MustCompile(`SQLite batched insert:\s+([\d.]+) events/s`)
	reCeiling = regexp.MustCompile(`server CPU per stored event: ([\d.]+) µs .*ceiling on (\d+) cores: ([\d.]+) events/s`)
	reOffered = regexp.MustCompile(`at an offered (\d+) events/s: ack latency p50 (\S+)\s+p99 (\S+)`)
)

func (e *env) ingest(ctx context.Context) {
	figs := []string{"acknowledged", "stored end to end", "ack p99 at an offered rate"}
	args := []string{"-bin", e.omni(), "-events", "100000", "-rate", "5000"}
	if e.o.Short {
		args = []string{"-bin", e.omni(), "-events", "1000", "-clients", "4"}
	}
	out, err := e.exec(ctx, e.pick(3*time.Minute, 15*time.Minute), nil, filepath.Join(e.bins, "ingest"), args...)
	if err != nil {
		e.tab.fail("ingest", figs, err)
		return
	}
	acked, err1 := float(reAcked, out, 1)
	stored, err2 := float(reStored, out, 1)
	bus, err3 := float(reBus, out, 1)
	sqlite, err4 := float(reSQLite, out, 1)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		e.tab.fail("ingest", figs, err)
		return
	}
	e.tab.add(Row{Bench: "ingest", Figure: figs[0], Unit: "events/s", Value: acked, Floor: bus, Target: "≥ 0.5× JetStream publish", Met: met(acked >= 0.5*bus)})
	e.tab.add(Row{Bench: "ingest", Figure: figs[1], Unit: "events/s", Value: stored, Floor: sqlite, Target: "≥ 0.5× SQLite batched insert", Met: met(stored >= 0.5*sqlite)})
	if m := reCeiling.FindStringSubmatch(out); m != nil {
		// What the server spent per event, acknowledging and storing: the
		// stored row cannot pass cores ÷ that on this machine, whatever
		// the scheduling. Said beside the row so a "no" there is read
		// against it.
		ceiling, _ := strconv.ParseFloat(m[3], 64)
		e.tab.add(Row{Bench: "ingest", Figure: "end-to-end ceiling on " + m[2] + " cores (" + m[1] + " µs of server CPU per stored event)", Unit: "events/s",
			Value: ceiling, Floor: sqlite, Target: "for reading the row above: stored end to end cannot pass it"})
	}
	if m := reOffered.FindStringSubmatch(out); m != nil {
		p99, _ := time.ParseDuration(m[3])
		ms := float64(p99) / float64(time.Millisecond)
		e.tab.add(Row{Bench: "ingest", Figure: figs[2] + " (" + m[1] + "/s)", Unit: "ms", Value: ms, Target: "≤ 20 ms at half of saturation", Met: met(ms <= 20)})
	} else if e.o.Short {
		e.tab.add(Row{Bench: "ingest", Figure: figs[2], Err: "not measured in -short (10 s paced)", Target: "≤ 20 ms at half of saturation"})
	} else {
		e.tab.add(Row{Bench: "ingest", Figure: figs[2], Err: "not in the output", Target: "≤ 20 ms at half of saturation"})
	}
}

// --- profiles and live: target 1's in-process figures, each against the
// batched insert of the same events in the same run (bench/profiles
// -compare), and data.db's bytes per event

var (
	reCompareFloor    = regexp.MustCompile(`floor \(batched SQLite insert\)\s+([\d.]+) events/s`)
	reThroughProfiles = regexp.MustCompile(`stored \+ profiles resolved\s+([\d.]+) events/s`)
	reEverythingLive  = regexp.MustCompile(`\+ 10 segments, 20 journeys, metrics\s+([\d.]+) events/s`)
	reDBPerEvent      = regexp.MustCompile(`data\.db per stored event, profiles resolved: ([\d.]+) B`)
)

func (e *env) profiles(ctx context.Context) {
	figs := []string{"stored with profiles resolved", "stored with 10 segments, 20 journeys and metrics live", "data.db bytes per stored event"}
	args := []string{"-compare", "-runs", "1"} // 20,000 customers × 10 events
	if e.o.Short {
		args = append(args, "-profiles", "100", "-events", "3")
	}
	out, err := e.exec(ctx, e.pick(3*time.Minute, 20*time.Minute), nil, filepath.Join(e.bins, "profiles"), args...)
	if err != nil {
		e.tab.fail("profiles", figs[:1], err)
		e.tab.fail("live", figs[1:2], err)
		e.tab.fail("profiles", figs[2:], err)
		return
	}
	floor, err := float(reCompareFloor, out, 1)
	if err != nil {
		e.tab.fail("profiles", figs[:1], err)
		e.tab.fail("live", figs[1:2], err)
	} else {
		if v, err := float(reThroughProfiles, out, 1); err != nil {
			e.tab.fail("profiles", figs[:1], err)
		} else {
			e.tab.add(Row{Bench: "profiles", Figure: figs[0], Unit: "events/s", Value: v, Floor: floor,
				Target: "≥ 0.5× SQLite batched insert (same events)", Met: met(v >= 0.5*floor)})
		}
		if v, err := float(reEverythingLive, out, 1); err != nil {
			e.tab.fail("live", figs[1:2], err)
		} else {
			e.tab.add(Row{Bench: "live", Figure: figs[1], Unit: "events/s", Value: v, Floor: floor,
				Target: "≥ 0.4× SQLite batched insert (same events)", Met: met(v >= 0.4*floor)})
		}
	}
	if b, err := float(reDBPerEvent, out, 1); err != nil {
		e.tab.fail("profiles", figs[2:], err)
	} else {
		e.tab.add(Row{Bench: "profiles", Figure: figs[2], Unit: "B", Value: b, Target: "≤ 1024 B", Met: met(b <= 1024)})
	}
}

// --- journeys: the ingest cost of 20 live journeys, and the step engine

var (
	reJourneyIngest = regexp.MustCompile(`ingest: ([\d.]+) events/s with no journey, ([\d.]+) events/s with 20 live journeys`)
	reJourneySteps  = regexp.MustCompile(`steps: \d+ executed in \S+ after enrolment \((\S+) steps/s;.*floor: (\S+) prepared inserts/s`)
	reTimerLate     = regexp.MustCompile(`timer lateness over \d+ timers: p50 (\S+)\s+p99 (\S+)`)
)

func (e *env) journeys(ctx context.Context) {
	figs := []string{"stored with 20 live journeys", "steps executed"}
	args := []string{"-customers", "20000", "-events", "20000"}
	if e.o.Short {
		args = []string{"-customers", "100", "-events", "300", "-wait", "2s"}
	}
	out, err := e.exec(ctx, e.pick(3*time.Minute, 20*time.Minute), nil, filepath.Join(e.bins, "journeys"), args...)
	if err != nil {
		e.tab.fail("journeys", figs, err)
		return
	}
	if m := reJourneyIngest.FindStringSubmatch(out); m == nil {
		e.tab.fail("journeys", figs[:1], errors.New("not in the output"))
	} else {
		base, _ := strconv.ParseFloat(m[1], 64)
		with, _ := strconv.ParseFloat(m[2], 64)
		e.tab.add(Row{Bench: "journeys", Figure: figs[0], Unit: "events/s", Value: with, Floor: base, Target: "no journey = floor; ≥ 0.4× SQLite floor all live"})
	}
	if m := reJourneySteps.FindStringSubmatch(out); m == nil {
		e.tab.fail("journeys", figs[1:], errors.New("not in the output"))
	} else {
		steps, _ := strconv.ParseFloat(m[1], 64)
		floor, _ := strconv.ParseFloat(m[2], 64)
		e.tab.add(Row{Bench: "journeys", Figure: figs[1], Unit: "steps/s", Value: steps, Floor: floor, Target: "floor: prepared inserts"})
	}
	if m := reTimerLate.FindStringSubmatch(out); m != nil {
		p99, _ := time.ParseDuration(m[2])
		e.tab.add(Row{Bench: "journeys", Figure: "timer lateness p99", Unit: "ms", Value: float64(p99) / float64(time.Millisecond)})
	}
}

// --- metrics: reports' p99 against the health check, and ingest on/off

func (e *env) metrics(ctx context.Context) {
	figs := []string{"worst report p99", "stored, metrics on"}
	res := filepath.Join(e.bins, "metrics.json")
	args := []string{"-bin", e.omni(), "-quick", "-out", res}
	if e.o.Short {
		args = []string{"-bin", e.omni(), "-events", "1000", "-customers", "100", "-conversations", "10", "-requests", "1", "-ingest", "500", "-rounds", "1", "-out", res}
	}
	if _, err := e.exec(ctx, e.pick(4*time.Minute, 20*time.Minute), nil, filepath.Join(e.bins, "metrics"), args...); err != nil {
		e.tab.fail("metrics", figs, err)
		return
	}
	var r struct {
		Floor struct {
			P99 float64 `json:"p99_ms"`
		} `json:"floor"`
		WorstP99 float64 `json:"worst_p99_ms"`
		Ingest   struct {
			On    float64 `json:"on_median"`
			Off   float64 `json:"off_median"`
			Ratio float64 `json:"ratio"`
		} `json:"ingest"`
	}
	b, err := os.ReadFile(res)
	if err == nil {
		err = json.Unmarshal(b, &r)
	}
	if err != nil {
		e.tab.fail("metrics", figs, err)
		return
	}
	e.tab.add(Row{Bench: "metrics", Figure: figs[0], Unit: "ms", Value: r.WorstP99, Floor: r.Floor.P99, Target: "≤ 300 ms", Met: met(r.WorstP99 <= 300)})
	e.tab.add(Row{Bench: "metrics", Figure: figs[1], Unit: "events/s", Value: r.Ingest.On, Floor: r.Ingest.Off, Target: "≥ 0.90× metrics off", Met: met(r.Ingest.Ratio >= 0.9)})
}

// --- inbox: a WhatsApp webhook to the text in an agent's browser

func (e *env) inbox(ctx context.Context) {
	figs := []string{"webhook → agent's DOM p99"}
	if _, err := os.Stat(filepath.Join(e.root, "ui", "node_modules", "playwright-core")); err != nil {
		e.tab.fail("inbox", figs, errors.New("needs node and ui/node_modules (cd ui && npm ci)"))
		return
	}
	args := []string{filepath.Join("bench", "inbox", "run.mjs")}
	if e.o.Short {
		args = append(args, "-n", "10", "-rate", "20", "-customers", "3")
	}
	out, err := e.exec(ctx, e.pick(3*time.Minute, 10*time.Minute), []string{"BENCH_OMNI_BIN=" + e.omni()}, "node", args...)
	if err != nil {
		e.tab.fail("inbox", figs, err)
		return
	}
	var r struct {
		DOM struct {
			P99 float64 `json:"p99"`
		} `json:"webhook_to_dom_ms"`
		Floor struct {
			P99 float64 `json:"p99"`
		} `json:"floor_webhook_answer_ms"`
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		e.tab.fail("inbox", figs, fmt.Errorf("last line is not the JSON result: %v", err))
		return
	}
	e.tab.add(Row{Bench: "inbox", Figure: figs[0], Unit: "ms", Value: r.DOM.P99, Floor: r.Floor.P99, Target: "≤ 100 ms", Met: met(r.DOM.P99 <= 100)})
}

func float(re *regexp.Regexp, s string, group int) (float64, error) {
	m := re.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("no line matching %q in the output", re.String())
	}
	return strconv.ParseFloat(m[group], 64)
}

// repoRoot is the directory of the go.mod above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/omni/omni\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the omni checkout (no go.mod of github.com/omni/omni above here)")
		}
		dir = parent
	}
}
