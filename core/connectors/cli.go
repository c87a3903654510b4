package connectors

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/plugins/sdk"
)

// Extension wires the connector host into the CLI: the module under
// `serve`, and the `plugin` and `connector` commands.
func Extension(opts Options) app.Extension {
	return app.Extension{
		Commands: func(env *app.Env) []*cobra.Command {
			return []*cobra.Command{pluginCmd(env, opts), connectorCmd(env)}
		},
		Modules: func(o *app.Omni) []app.Module { return []app.Module{New(opts)} },
	}
}

func pluginCmd(env *app.Env, opts Options) *cobra.Command {
	c := &cobra.Command{Use: "plugin", Short: "Connector plugins: run, list, scaffold"}
	c.AddCommand(&cobra.Command{
		Use:    "run NAME",
		Short:  "Serve a built-in connector over the plugin protocol (started by omni serve)",
		Args:   cobra.ExactArgs(1),
		Hidden: false,
		RunE: func(_ *cobra.Command, args []string) error {
			// No config, no database: this is the plugin subprocess.
			newC, ok := Builtin(args[0])
			if !ok {
				return &app.UsageError{Err: fmt.Errorf("no built-in connector named %q (built-ins: %s)", args[0], strings.Join(BuiltinNames(), ", "))}
			}
			sdk.Serve(newC())
			return nil
		},
	})
	c.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List installed connectors (built-in and in plugins_dir)",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			cfg, err := env.Config()
			if err != nil {
				return err
			}
			found, err := Discover(cfg.PluginsDir)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKIND\tVERSION\tPATH\tSHA256")
			for _, f := range found {
				version, sum := "", ""
				if f.Kind == "external" {
					if b, err := os.ReadFile(f.Path); err == nil {
						sum = FileSHA256(b)
						if pin := FileConfig(cfg, f.Name)[KeySHA256]; pin != "" && !strings.EqualFold(pin, sum) {
							sum += " (does not match connectors." + f.Name + ".sha256!)"
						}
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				if d, err := DescribeInstalled(ctx, f, pinOf(FileConfig(cfg, f.Name))); err == nil {
					version = d.Version
				} else {
					version = "error: " + err.Error()
				}
				cancel()
				path := f.Path
				if path == "" {
					path = "(built in)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Name, f.Kind, version, path, sum)
			}
			return tw.Flush()
		},
	})
	c.AddCommand(newCmd(env, opts.SDKSource))
	return c
}

func pinOf(file map[string]string) []byte {
	b, err := hex.DecodeString(file[KeySHA256])
	if err != nil || len(b) != 32 {
		return nil
	}
	return b
}

// cliTarget opens the app and finds the named connector's record.
type cliTarget struct {
	o      *app.Omni
	sealer *Sealer
	inst   Installed
}

func openTarget(env *app.Env, name string) (*cliTarget, error) {
	cfg, err := env.Config()
	if err != nil {
		return nil, err
	}
	found, err := Discover(cfg.PluginsDir)
	if err != nil {
		return nil, err
	}
	var names []string
	t := &cliTarget{}
	for _, f := range found {
		names = append(names, f.Name)
		if f.Name == name {
			t.inst = f
		}
	}
	if t.inst.Name == "" {
		sort.Strings(names)
		return nil, &app.UsageError{Err: fmt.Errorf("no connector named %q is installed (installed: %s)", name, strings.Join(names, ", "))}
	}
	if t.o, err = env.OpenApp(); err != nil {
		return nil, err
	}
	if t.sealer, err = OpenSealer(t.o.PB, cfg, t.o.Log); err != nil {
		t.close()
		return nil, err
	}
	for _, f := range found {
		if _, err := EnsureRecord(t.o.PB, f); err != nil {
			t.close()
			return nil, err
		}
	}
	return t, nil
}

func (t *cliTarget) close() { _ = t.o.PB.ResetBootstrapState() }

func (t *cliTarget) schema(ctx context.Context) ([]sdk.ConfigField, error) {
	rec, err := t.o.PB.FindFirstRecordByData(Collection, "name", t.inst.Name)
	if err != nil {
		return nil, err
	}
	if s := schemaOf(rec); len(s) > 0 {
		return s, nil
	}
	d, err := DescribeInstalled(ctx, t.inst, pinOf(FileConfig(t.o.Config, t.inst.Name)))
	if err != nil {
		return nil, fmt.Errorf("describe %s: %w", t.inst.Name, err)
	}
	caps := d.Capabilities
	if caps == nil {
		caps = []string{}
	}
	_ = updateFields(t.o.PB, t.inst.Name, map[string]any{"schema": d.Config, "capabilities": caps, "version": d.Version})
	return d.Config, nil
}

func connectorCmd(env *app.Env) *cobra.Command {
	c := &cobra.Command{Use: "connector", Short: "Enable, disable, configure and backfill connectors"}
	setEnabled := func(on bool) func(*cobra.Command, []string) error {
		return func(_ *cobra.Command, args []string) error {
			t, err := openTarget(env, args[0])
			if err != nil {
				return err
			}
			defer t.close()
			return t.update(env, nil, &on)
		}
	}
	c.AddCommand(&cobra.Command{Use: "enable NAME", Short: "Enable a connector (a running server starts it within seconds)", Args: cobra.ExactArgs(1), RunE: setEnabled(true)})
	c.AddCommand(&cobra.Command{Use: "disable NAME", Short: "Disable a connector", Args: cobra.ExactArgs(1), RunE: setEnabled(false)})
	c.AddCommand(&cobra.Command{
		Use:   "configure NAME [key=value ...]",
		Short: "Show or change a connector's settings (secrets are encrypted at rest; key= clears)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			changes := map[string]string{}
			for _, kv := range args[1:] {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return &app.UsageError{Err: fmt.Errorf("argument %q is not key=value", kv)}
				}
				changes[k] = v
			}
			t, err := openTarget(env, args[0])
			if err != nil {
				return err
			}
			defer t.close()
			return t.update(env, changes, nil)
		},
	})
	c.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List connectors with their state",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			o, err := env.OpenApp()
			if err != nil {
				return err
			}
			defer o.PB.ResetBootstrapState()
			recs, err := o.PB.FindRecordsByFilter(Collection, "", "name", 0, 0)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tENABLED\tSTATE\tBACKFILL")
			for _, r := range recs {
				b := backfillView(o.PB, r)
				skipped := ""
				if b.Skipped > 0 {
					skipped = fmt.Sprintf(" (%d skipped)", b.Skipped)
				}
				fmt.Fprintf(tw, "%s\t%t\t%s\t%s %d/%d%s\n", r.GetString("name"), r.GetBool("enabled"), r.GetString("state"), b.State, b.Done, b.Total, skipped)
			}
			return tw.Flush()
		},
	})
	c.AddCommand(backfillCmd(env), forgetSecretsCmd(env))
	return c
}

func (t *cliTarget) update(env *app.Env, changes map[string]string, enabled *bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := t.inst.Name
	schema, err := t.schema(ctx)
	if err != nil {
		return err
	}
	rec, err := t.o.PB.FindFirstRecordByData(Collection, "name", name)
	if err != nil {
		return err
	}
	if len(changes) > 0 {
		if err := ApplyConfig(rec, t.sealer, schema, changes); err != nil {
			var ce *sdk.ConfigError
			if errors.As(err, &ce) {
				return &app.UsageError{Err: fmt.Errorf("%s: %s %s", name, ce.Field, ce.Problem)}
			}
			return err
		}
	}
	if enabled != nil {
		rec.Set("enabled", *enabled)
	}
	if rec.GetBool("enabled") {
		if ce := MissingRequired(rec, schema, FileConfig(t.o.Config, name)); ce != nil {
			return &app.UsageError{Err: fmt.Errorf("cannot enable %s: required setting %s is missing (set it with: omni connector configure %s %s=...)", name, ce.Field, name, ce.Field)}
		}
	}
	if err := SaveSettings(t.o.PB, rec); err != nil {
		return err
	}
	printSettings(env.Stdout, rec, schema)
	return nil
}

func printSettings(w io.Writer, rec *core.Record, schema []sdk.ConfigField) {
	cfg := MaskedConfig(rec, schema)
	state := "disabled"
	if rec.GetBool("enabled") {
		state = "enabled"
	}
	fmt.Fprintf(w, "%s: %s\n", rec.GetString("name"), state)
	for _, f := range schema {
		v, ok := cfg[f.Name]
		if !ok {
			v = "(not set)"
			if f.Default != "" {
				v = "(default " + f.Default + ")"
			}
		}
		req := ""
		if f.Required {
			req = " (required)"
		}
		fmt.Fprintf(w, "  %s = %s%s\n", f.Name, v, req)
	}
}

func backfillCmd(env *app.Env) *cobra.Command {
	var since string
	var noWait bool
	c := &cobra.Command{
		Use:   "backfill NAME --since 2025-01-01",
		Short: "Import a connector's history (run by the server; progress is shown here)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			at, err := ParseSince(since)
			if err != nil {
				return &app.UsageError{Err: err}
			}
			t, err := openTarget(env, args[0])
			if err != nil {
				return err
			}
			defer t.close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, err = t.schema(ctx)
			cancel()
			if err != nil {
				return err
			}
			rec, err := t.o.PB.FindFirstRecordByData(Collection, "name", t.inst.Name)
			if err != nil {
				return err
			}
			if !hasCap(capabilitiesOf(rec), sdk.CapBackfill) {
				return &app.UsageError{Err: fmt.Errorf("connector %s does not support backfill", t.inst.Name)}
			}
			if !rec.GetBool("enabled") {
				return &app.UsageError{Err: fmt.Errorf("connector %s is disabled; enable it first: omni connector enable %s", t.inst.Name, t.inst.Name)}
			}
			if err := RequestBackfillRecord(t.o.PB, rec, at); err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "backfill of %s since %s requested\n", t.inst.Name, at.Format("2006-01-02"))
			if noWait {
				return nil
			}
			return watchBackfill(env.Stdout, t, 60*time.Second)
		},
	}
	c.Flags().StringVar(&since, "since", "", "import history from this date (2025-01-01) or time (RFC 3339)")
	c.Flags().BoolVar(&noWait, "no-wait", false, "return after requesting instead of showing progress")
	return c
}

// watchBackfill draws a progress bar from the record until the backfill
// ends; pickup bounds how long a request may wait for a server.
func watchBackfill(w io.Writer, t *cliTarget, pickup time.Duration) error {
	start := time.Now()
	bar := &progressBar{w: w, width: 30}
	for {
		rec, err := t.o.PB.FindFirstRecordByData(Collection, "name", t.inst.Name)
		if err != nil {
			return err
		}
		v := backfillView(t.o.PB, rec)
		switch v.State {
		case BackfillRequested:
			if time.Since(start) > pickup {
				return fmt.Errorf("no server picked the backfill up within %s; is `omni serve` running with %s enabled? (the request stays queued)", pickup, t.inst.Name)
			}
		case BackfillRunning:
			bar.draw(v.Done, v.Total)
		case BackfillDone:
			bar.draw(v.Done, v.Total)
			fmt.Fprintf(w, "\nbackfill of %s done: %d events\n", t.inst.Name, v.Done)
			if v.Skipped > 0 {
				fmt.Fprintf(w, "%d invalid events skipped (last: %s); see omni events dead\n", v.Skipped, v.LastSkipped)
			}
			return nil
		case BackfillFailed:
			bar.draw(v.Done, v.Total)
			return fmt.Errorf("\nbackfill of %s failed: %s (run the command again to resume)", t.inst.Name, v.Error)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// progressBar renders "[#####     ] 50/100  50%" on one terminal line.
type progressBar struct {
	w     io.Writer
	width int
}

func (p *progressBar) draw(done, total int64) {
	if total <= 0 {
		fmt.Fprintf(p.w, "\r%-*s", p.width+20, fmt.Sprintf("%d events", done))
		return
	}
	frac := float64(done) / float64(total)
	if frac > 1 {
		frac = 1
	}
	n := int(frac * float64(p.width))
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d %3.0f%%", strings.Repeat("#", n), strings.Repeat(" ", p.width-n), done, total, frac*100)
}
