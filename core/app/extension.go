package app

import (
	"io"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/logging"
)

// Extension is how a package adds commands and modules to the omni binary
// (main lists them, in order): the command line and the packages it runs
// never import each other.
type Extension struct {
	// Commands returns extra top-level commands.
	Commands func(env *Env) []*cobra.Command
	// Modules returns the modules to run under `serve`, in order.
	Modules func(o *Omni) []Module
}

// Env gives commands lazy access to the configuration and the database.
type Env struct {
	Stdout, Stderr io.Writer
	flags          *pflag.FlagSet
}

// NewEnv returns the environment of commands that read the global flags.
func NewEnv(stdout, stderr io.Writer, flags *pflag.FlagSet) *Env {
	return &Env{Stdout: stdout, Stderr: stderr, flags: flags}
}

// Config loads the configuration (file, OMNI_* env, flags). Its errors are
// *UsageError: the command line exits 2, as for any input to change.
func (env *Env) Config() (*config.Config, error) {
	cfg, err := config.Load(env.flags)
	if err != nil {
		return nil, &UsageError{Err: err}
	}
	return cfg, nil
}

// UsageError is an error in what the user asked for (configuration, flags,
// arguments): the command line prints it on one line and exits 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// OpenApp loads the configuration and opens the database with migrations
// applied (for commands that run beside or without a server).
func (env *Env) OpenApp() (*Omni, error) {
	cfg, err := env.Config()
	if err != nil {
		return nil, err
	}
	o := New(cfg, logging.New(env.Stderr, cfg.Log.Level, cfg.Log.Format))
	if err := o.Open(); err != nil {
		return nil, err
	}
	return o, nil
}
