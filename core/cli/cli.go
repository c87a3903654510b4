// Package cli is Omni's command line: serve, superuser, config, source and
// (through registered command builders) plugin and connector commands.
package cli

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/pocketbase/pocketbase/cmd"
	"github.com/spf13/cobra"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/datalock"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/logging"
)

// Exit codes.
const (
	ExitOK     = 0
	ExitError  = 1
	ExitConfig = 2
	// ExitUsage is for bad input on the command line (same code as a bad
	// configuration: the caller must change what they asked for).
	ExitUsage = 2
)

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// UsageError marks err as bad input on the command line: Main prints it
// and exits with ExitUsage.
func UsageError(err error) error { return &exitError{code: ExitUsage, err: err} }

// Main runs the command line and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer, exts ...app.Extension) int {
	root := &cobra.Command{
		Use:           "omni",
		Short:         "Omni: one customer across every channel",
		Version:       api.Version,
		SilenceErrors: true,
		SilenceUsage:  true,
		CompletionOptions: cobra.CompletionOptions{
			DisableDefaultCmd: true,
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	config.Flags(root.PersistentFlags())
	env := app.NewEnv(stdout, stderr, root.PersistentFlags())

	root.AddCommand(serveCmd(env, exts), superuserCmd(env), configCmd(env), sourceCmd(env), healthCmd(env), eventsCmd(env))
	for _, ext := range exts {
		if ext.Commands != nil {
			root.AddCommand(ext.Commands(env)...)
		}
	}
	explainUsage(root)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageOf(c, err) })
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return ExitOK
	}
	if strings.HasPrefix(err.Error(), "unknown command ") { // cobra's, for the root
		err = UsageError(fmt.Errorf("%w (see omni --help)", err))
	}
	fmt.Fprintln(stderr, "omni:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	var ce *config.Error
	var held *datalock.HeldError
	var usage *app.UsageError
	if errors.As(err, &ce) || errors.As(err, &held) || errors.As(err, &usage) {
		return ExitConfig
	}
	return ExitError
}

// explainUsage makes every command's argument check say which command it
// was and how it is called, and exit with ExitUsage: cobra alone prints
// "accepts 1 arg(s), received 0" and nothing else.
func explainUsage(c *cobra.Command) {
	if check := c.Args; check != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return usageOf(cmd, err)
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		explainUsage(sub)
	}
}

// usageOf is err on cmd's command line, with cmd's usage line.
func usageOf(cmd *cobra.Command, err error) error {
	path := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
	return UsageError(fmt.Errorf("%s: %w (usage: %s)", path, err, cmd.UseLine()))
}

func serveCmd(env *app.Env, exts []app.Extension) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the Omni server (HTTP API, web admin, event bus, connectors)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, err := env.Config()
			if err != nil {
				return err
			}
			log := logging.New(env.Stderr, cfg.Log.Level, cfg.Log.Format)
			o := app.New(cfg, log)
			for _, ext := range exts {
				if ext.Modules != nil {
					for _, m := range ext.Modules(o) {
						o.Use(m)
					}
				}
			}
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(sig)
			done := make(chan error, 1)
			go func() { done <- o.Serve(nil, nil) }()
			select {
			case err := <-done:
				// Serve returned on its own: start-up failed.
				_ = o.Shutdown()
				return err
			case s := <-sig:
				log.Info("shutting down", "signal", s.String())
				if err := o.Shutdown(); err != nil {
					return err
				}
				return <-done
			}
		},
	}
}

// superuserCmd runs PocketBase's own superuser command against Omni's
// data dir, opening the database only when a subcommand runs (not for
// --help).
func superuserCmd(env *app.Env) *cobra.Command {
	return &cobra.Command{
		Use:                "superuser",
		Short:              "Manage PocketBase superusers (upsert, create, update, delete, otp)",
		DisableFlagParsing: true,
		RunE: func(c *cobra.Command, args []string) error {
			// Flags are not parsed here; pick up --config/--data-dir ourselves.
			rest, err := parseGlobalFlags(c.Root(), args)
			if err != nil {
				return err
			}
			cfg, err := env.Config()
			if err != nil {
				return err
			}
			o := app.New(cfg, logging.New(env.Stderr, cfg.Log.Level, cfg.Log.Format))
			defer o.PB.ResetBootstrapState()
			su := cmd.NewSuperuserCommand(o.PB)
			var openErr error
			su.PersistentPreRunE = func(*cobra.Command, []string) error {
				openErr = o.Open()
				return openErr
			}
			for _, sub := range su.Commands() {
				if sub.Example != "" {
					sub.Example = "omni " + sub.Example // PocketBase's examples start at "superuser"
				}
			}
			// PocketBase's command is a root of its own and would print its
			// usage as "superuser …"; under a parent named omni it reads
			// "omni superuser …", the command the user typed.
			parent := &cobra.Command{Use: "omni", SilenceErrors: true, SilenceUsage: true}
			parent.CompletionOptions.DisableDefaultCmd = true
			parent.AddCommand(su)
			args = append([]string{"superuser"}, rest...)
			// Under a parent, cobra no longer rejects an unknown subcommand
			// of su by itself: it would print the help and exit 0.
			if found, left, err := parent.Find(args); err == nil && found == su && len(left) > 0 && !strings.HasPrefix(left[0], "-") {
				return &exitError{code: ExitUsage, err: fmt.Errorf("unknown command %q for \"omni superuser\" (see omni superuser --help)", left[0])}
			}
			parent.SetArgs(args)
			parent.SetOut(env.Stdout)
			parent.SetErr(env.Stderr)
			if err := parent.Execute(); err != nil {
				if openErr != nil {
					return err // the data dir could not be opened: not the caller's input
				}
				// Once the database is open, PocketBase's superuser commands
				// fail on what they were given (a bad email, a short or missing
				// password, no such superuser): a usage error.
				return UsageError(err)
			}
			return nil
		},
	}
}

// parseGlobalFlags applies --config/--data-dir/--http found in args and
// returns the remaining arguments.
func parseGlobalFlags(root *cobra.Command, args []string) ([]string, error) {
	var rest []string
	fs := root.PersistentFlags()
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := "", "", false
		for _, f := range []string{"config", "data-dir", "http"} {
			if a == "--"+f {
				name = f
			} else if len(a) > len(f)+3 && a[:len(f)+3] == "--"+f+"=" {
				name, val, hasVal = f, a[len(f)+3:], true
			}
		}
		if name == "" {
			rest = append(rest, a)
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				return nil, fmt.Errorf("flag --%s needs a value", name)
			}
			i++
			val = args[i]
		}
		if err := fs.Set(name, val); err != nil {
			return nil, err
		}
	}
	return rest, nil
}

func configCmd(env *app.Env) *cobra.Command {
	c := &cobra.Command{Use: "config", Short: "Inspect configuration"}
	c.AddCommand(&cobra.Command{
		Use:   "print",
		Short: "Print the effective configuration (secrets masked)",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			cfg, err := env.Config()
			if err != nil {
				return err
			}
			out, err := cfg.YAML()
			if err != nil {
				return err
			}
			if cfg.File != "" {
				fmt.Fprintf(env.Stdout, "# from %s, OMNI_* environment and flags\n", cfg.File)
			} else {
				fmt.Fprintln(env.Stdout, "# no config file; defaults, OMNI_* environment and flags")
			}
			_, err = fmt.Fprint(env.Stdout, out)
			return err
		},
	})
	return c
}

func sourceCmd(env *app.Env) *cobra.Command {
	c := &cobra.Command{Use: "source", Short: "Manage sources (write keys for the tracking API)"}
	var kind string
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a source and print its write key (browser) or secret key (server, shown once)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			o, err := env.OpenApp()
			if err != nil {
				return err
			}
			defer o.PB.ResetBootstrapState()
			ns, err := ingest.CreateSource(o.PB, args[0], kind)
			var ie *ingest.InputError
			if errors.As(err, &ie) {
				return &exitError{code: ExitUsage, err: ie}
			}
			if err != nil {
				return err
			}
			name := ns.Record.GetString("name")
			if ns.SecretKey != "" {
				fmt.Fprintf(env.Stdout, "server source %q created\nsecret key: %s\n", name, ns.SecretKey)
				fmt.Fprintln(env.Stdout, "This key is shown once and only its hash is kept: store it now, on servers only.")
				return nil
			}
			fmt.Fprintf(env.Stdout, "source %q created\nwrite key: %s\n", name, ns.WriteKey)
			return nil
		},
	}
	create.Flags().StringVar(&kind, "kind", ingest.KindBrowser, "browser (public write key: may record opt-outs, not grant consent) or server (secret key, trusted like a connector)")
	c.AddCommand(create)
	c.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List sources",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			o, err := env.OpenApp()
			if err != nil {
				return err
			}
			defer o.PB.ResetBootstrapState()
			recs, err := o.PB.FindAllRecords("sources")
			if err != nil {
				return err
			}
			for _, r := range recs {
				state := "enabled"
				if r.GetBool("disabled") {
					state = "disabled"
				}
				kind, key := r.GetString("kind"), r.GetString("write_key")
				if kind == ingest.KindServer {
					key = "(secret key, not shown)"
				}
				fmt.Fprintf(env.Stdout, "%s\t%s\t%s\t%s\n", r.GetString("name"), kind, key, state)
			}
			return nil
		},
	})
	return c
}

// healthCmd probes a running server, for container health checks (the
// image has no curl).
func healthCmd(env *app.Env) *cobra.Command {
	var url string
	c := &cobra.Command{
		Use:   "health",
		Short: "Check a running server's /api/v1/health (exit 0 when healthy)",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if url == "" {
				cfg, err := env.Config()
				if err != nil {
					return err
				}
				url = "http://" + probeAddr(cfg.HTTP) + "/api/v1/health"
			}
			client := &http.Client{Timeout: 5 * time.Second}
			resp, err := client.Get(url)
			if err != nil {
				return fmt.Errorf("health check: %w", err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
			fmt.Fprintln(env.Stdout, strings.TrimSpace(string(body)))
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("health check: %s answered %d", url, resp.StatusCode)
			}
			return nil
		},
	}
	c.Flags().StringVar(&url, "url", "", "health URL (default: from the http setting, e.g. OMNI_HTTP)")
	return c
}

// probeAddr turns the HTTP listen address into one to connect to: a
// server listening on every interface (0.0.0.0:8090, [::]:8090, :8090, as
// in the container image) is probed on loopback.
func probeAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen // config validation rejects this before we get here
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
