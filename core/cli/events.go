package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/datalock"
	"github.com/omni/omni/core/deadletter"
)

// eventsCmd: `omni events dead` and `omni events retry-dead [ID…]`.
func eventsCmd(env *app.Env) *cobra.Command {
	c := &cobra.Command{Use: "events", Short: "Inspect events that could not be stored (dead events) and retry them"}
	var asJSON bool
	var limit int
	dead := &cobra.Command{
		Use:   "dead",
		Short: "List parked (dead) events, newest failure first",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			o, err := env.OpenApp()
			if err != nil {
				return err
			}
			defer o.PB.ResetBootstrapState()
			rows, err := deadletter.List(o.PB, "", limit)
			if err != nil {
				return err
			}
			if asJSON {
				out := make([]map[string]any, len(rows))
				for i, r := range rows {
					var ev any = r.Data
					if json.Valid([]byte(r.Data)) {
						ev = json.RawMessage(r.Data)
					}
					out[i] = map[string]any{"id": r.ID, "consumer": r.Consumer, "event_id": r.EventID, "type": r.Type,
						"attempts": r.Attempts, "first_failed": r.FirstFailed, "last_failed": r.LastFailed,
						"retry_requested": r.RetryRequested, "error": r.Error, "event": ev}
				}
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			if len(rows) == 0 {
				fmt.Fprintln(env.Stdout, "no dead events")
				return nil
			}
			w := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tCONSUMER\tEVENT\tTYPE\tATTEMPTS\tLAST FAILED\tERROR")
			for _, r := range rows {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.ID, r.Consumer, shorten(r.EventID, 40), r.Type, r.Attempts,
					shorten(r.LastFailed, 19), shorten(oneLine(r.Error), 100))
			}
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "\nRetry with: omni events retry-dead [ID…]  (no ID: all). Full records: omni events dead --json\n")
			return nil
		},
	}
	dead.Flags().BoolVar(&asJSON, "json", false, "print full records, with the event, as JSON")
	dead.Flags().IntVar(&limit, "limit", 100, "at most this many")

	var wait time.Duration
	retry := &cobra.Command{
		Use:   "retry-dead [ID…]",
		Short: "Re-drive dead events (all when no ID is given) through the consumer that parked them",
		RunE: func(_ *cobra.Command, ids []string) error {
			o, err := env.OpenApp()
			if err != nil {
				return err
			}
			defer o.PB.ResetBootstrapState()
			marked, err := deadletter.RequestRetry(o.PB, ids...)
			if errors.Is(err, deadletter.ErrNotFound) {
				return &exitError{code: ExitUsage, err: err}
			}
			if err != nil {
				return err
			}
			if len(marked) == 0 {
				fmt.Fprintln(env.Stdout, "no dead events")
				return nil
			}
			// The running server re-drives them; without one, they wait for
			// the next start.
			if l, err := datalock.Acquire(o.Config.DataDir); err == nil {
				l.Release()
				fmt.Fprintf(env.Stdout, "%d dead events marked for a retry; omni serve is not running: they are retried when it starts\n", len(marked))
				return nil
			}
			// Each marked row ends stored (gone) or failed again (still
			// there, no longer marked); wait for that, up to --wait.
			pending := map[string]bool{}
			for _, id := range marked {
				pending[id] = true
			}
			var failed []*deadletter.Entry
			deadline := time.Now().Add(wait)
			for len(pending) > 0 && time.Now().Before(deadline) {
				time.Sleep(200 * time.Millisecond)
				for id := range pending {
					e, err := deadletter.Get(o.PB, id)
					switch {
					case errors.Is(err, deadletter.ErrNotFound):
						delete(pending, id)
					case err == nil && !e.RetryRequested:
						delete(pending, id)
						failed = append(failed, e)
					}
				}
			}
			for _, e := range failed {
				fmt.Fprintf(env.Stdout, "failed again: %s (%s): %s\n", e.ID, e.EventID, shorten(oneLine(e.Error), 200))
			}
			fmt.Fprintf(env.Stdout, "%d retried: %d stored, %d failed again", len(marked), len(marked)-len(failed)-len(pending), len(failed))
			if len(pending) > 0 {
				fmt.Fprintf(env.Stdout, ", %d not picked up yet (the server retries them shortly)", len(pending))
			}
			fmt.Fprintln(env.Stdout)
			if len(failed) > 0 {
				return &exitError{code: ExitError, err: fmt.Errorf("%d dead events failed again; see omni events dead", len(failed))}
			}
			return nil
		},
	}
	retry.Flags().DurationVar(&wait, "wait", 15*time.Second, "how long to wait for the running server to retry them")
	c.AddCommand(dead, retry)
	return c
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
