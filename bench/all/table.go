package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Row is one figure of the table. Value and Floor are numbers in Unit
// (Floor 0 = no floor); Ratio is Value/Floor unless set. Err says why a
// figure is missing (a bench that failed, or one skipped in this mode).
type Row struct {
	Bench  string
	Figure string
	Unit   string
	Value  float64
	Floor  float64
	Ratio  float64
	Target string // as the issue or the bench states it
	Met    string // "yes", "no" or "" when the target is not a simple check
	Err    string
}

// Table keeps the rows in the order the benches ran.
type Table struct{ Rows []Row }

func (t *Table) add(r Row) {
	if r.Ratio == 0 && r.Floor > 0 && r.Err == "" {
		r.Ratio = r.Value / r.Floor
	}
	t.Rows = append(t.Rows, r)
}

// fail records every expected figure of a bench as missing, with why.
func (t *Table) fail(bench string, figures []string, err error) {
	for _, f := range figures {
		t.add(Row{Bench: bench, Figure: f, Err: err.Error()})
	}
}

// Print writes the table, one row per figure.
func (t *Table) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "bench\tfigure\tvalue\tfloor\tratio\ttarget\tmet")
	for _, r := range t.Rows {
		if r.Err != "" {
			fmt.Fprintf(tw, "%s\t%s\t%s\t\t\t%s\t\n", r.Bench, r.Figure, "— "+oneLine(r.Err), r.Target)
			continue
		}
		floor, ratio := "", ""
		if r.Floor > 0 {
			floor = num(r.Floor) + " " + r.Unit
		}
		if r.Ratio > 0 {
			ratio = fmt.Sprintf("%.2f×", r.Ratio)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\t%s\t%s\t%s\n", r.Bench, r.Figure, num(r.Value), r.Unit, floor, ratio, r.Target, r.Met)
	}
	tw.Flush()
}

func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 90 {
		s = s[:90] + "…"
	}
	return s
}

func met(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}
