package connectors

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/omni/omni/plugins/sdk"
)

// Connector states as shown in health, the API and the connectors record.
const (
	StateDisabled   = "disabled"
	StateStopped    = "stopped" // Omni is shutting down
	StateStarting   = "starting"
	StateRunning    = "running"
	StateRestarting = "restarting"
	StateFailed     = "failed" // shown as "failed: reason"
)

// ErrDown means the connector is installed but not running right now.
var ErrDown = errors.New("connector is not running")

// permanentError is a start failure that retrying cannot fix (protocol
// mismatch, checksum mismatch, bad config): the supervisor waits for a
// config change instead of restarting.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// instance supervises one connector's plugin process.
type instance struct {
	name string
	kind string // builtin | external
	path string // executable for external connectors
	m    *Module
	log  *slog.Logger
	red  *redactor

	mu        sync.Mutex
	state     string
	lastErr   string
	lineMu    sync.Mutex // own lock: it is taken from go-plugin's logger
	lastLine  string     // last line the plugin wrote, for start failures
	client    *plugin.Client
	conn      *sdk.Client
	desc      *sdk.Description
	cfg       sdk.Config
	startedAt time.Time
	restarts  int

	reload chan struct{}
	stop   chan struct{}
	done   chan struct{}
}

func newInstance(m *Module, name, kind, path string) *instance {
	i := &instance{name: name, kind: kind, path: path, m: m, red: &redactor{}, state: StateDisabled,
		reload: make(chan struct{}, 1)}
	i.log = m.log.With("connector", name)
	return i
}

// Status is a connector's state for the API and health.
type Status struct {
	State     string `json:"state"`
	LastError string `json:"last_error,omitempty"`
	Restarts  int    `json:"restarts"`
	Since     string `json:"since,omitempty"`
}

func (i *instance) status() Status {
	i.mu.Lock()
	defer i.mu.Unlock()
	st := Status{State: i.state, LastError: i.lastErr, Restarts: i.restarts}
	if i.state == StateRunning && !i.startedAt.IsZero() {
		st.Since = i.startedAt.UTC().Format(time.RFC3339)
	}
	return st
}

// stateText is "failed: reason" for failures, the bare state otherwise.
func (s Status) stateText() string {
	if s.State == StateFailed && s.LastError != "" {
		return "failed: " + s.LastError
	}
	return s.State
}

func (i *instance) setState(state, errText string) {
	errText = i.red.redact(errText)
	i.mu.Lock()
	changed := i.state != state || (errText != "" && i.lastErr != errText)
	i.state = state
	if errText != "" || state == StateRunning && i.lastErr == "" {
		i.lastErr = errText
	}
	i.mu.Unlock()
	if changed {
		i.m.persistState(i.name, i.status())
	}
}

// noteError records an operational error (a timed-out Send, a failed
// health check) without changing the state.
func (i *instance) noteError(text string) {
	text = i.red.redact(text)
	i.mu.Lock()
	same := i.lastErr == text
	i.lastErr = text
	i.mu.Unlock()
	if !same {
		i.m.persistState(i.name, i.status())
	}
}

// ready returns the running connector, or ErrDown.
// go-plugin's Client methods are never called with i.mu held: the
// client logs while holding its own lock.
func (i *instance) ready() (*sdk.Client, error) {
	i.mu.Lock()
	state, conn, client := i.state, i.conn, i.client
	i.mu.Unlock()
	if state != StateRunning || conn == nil || client == nil || client.Exited() {
		return nil, fmt.Errorf("%w: %s is %s", ErrDown, i.name, state)
	}
	return conn, nil
}

// start launches the supervisor loop.
func (i *instance) start() {
	i.mu.Lock()
	if i.stop != nil {
		i.mu.Unlock()
		return
	}
	i.stop, i.done = make(chan struct{}), make(chan struct{})
	i.mu.Unlock()
	go i.supervise()
}

// shutdown stops the loop and the process.
func (i *instance) shutdown() {
	i.mu.Lock()
	stop, done := i.stop, i.done
	i.stop = nil
	i.mu.Unlock()
	if stop == nil {
		return
	}
	close(stop)
	<-done
}

// poke asks a running supervisor to re-read the config.
func (i *instance) poke() {
	select {
	case i.reload <- struct{}{}:
	default:
	}
}

func (i *instance) supervise() {
	i.mu.Lock()
	stop, done := i.stop, i.done
	i.mu.Unlock()
	defer close(done)
	defer i.kill()
	backoff := i.m.opts.MinBackoff
	failures := 0
	for {
		select {
		case <-stop:
			i.setState(StateStopped, "")
			return
		default:
		}
		err := i.launch()
		if err != nil {
			i.kill()
			var perm *permanentError
			if errors.As(err, &perm) {
				i.log.Error("connector cannot start", "error", i.red.redact(err.Error()))
				i.setState(StateFailed, err.Error())
				// Retrying cannot help until the settings or the executable
				// change: wait for a config change, and look again now and
				// then in case the plugin file was replaced.
				t := time.NewTimer(2 * i.m.opts.MaxBackoff)
				select {
				case <-stop:
					t.Stop()
					i.setState(StateStopped, "")
					return
				case <-i.reload:
					backoff, failures = i.m.opts.MinBackoff, 0
				case <-t.C:
				}
				t.Stop()
				continue
			}
			failures++
			state := StateRestarting
			if failures >= 3 {
				state = StateFailed
			}
			i.log.Warn("connector failed to start", "error", i.red.redact(err.Error()), "retry_in", backoff)
			i.setState(state, err.Error())
			if !i.sleep(stop, backoff) {
				i.setState(StateStopped, "")
				return
			}
			backoff = min(backoff*2, i.m.opts.MaxBackoff)
			continue
		}
		failures = 0
		i.mu.Lock()
		i.startedAt = time.Now()
		i.mu.Unlock()
		i.setState(StateRunning, "")
		i.log.Info("connector running", "version", i.desc.Version)
		i.m.onRunning(i)

		reason := i.watch(stop)
		if reason == "" { // stopped
			i.setState(StateStopped, "")
			return
		}
		i.kill()
		i.mu.Lock()
		ranFor := time.Since(i.startedAt)
		i.restarts++
		i.mu.Unlock()
		if ranFor > 30*time.Second {
			backoff = i.m.opts.MinBackoff
		}
		i.log.Warn("connector stopped unexpectedly; restarting", "reason", reason, "retry_in", backoff)
		i.setState(StateRestarting, reason)
		if !i.sleep(stop, backoff) {
			i.setState(StateStopped, "")
			return
		}
		backoff = min(backoff*2, i.m.opts.MaxBackoff)
	}
}

func (i *instance) sleep(stop chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-stop:
		return false
	case <-t.C:
		return true
	}
}

// watch returns why the running plugin must be restarted, or "" on stop.
func (i *instance) watch(stop chan struct{}) string {
	tick := time.NewTicker(i.m.opts.ExitPoll)
	defer tick.Stop()
	lastHealth := time.Now()
	healthFailures := 0
	for {
		select {
		case <-stop:
			return ""
		case <-i.reload:
			if err := i.reconfigure(); err != nil {
				var perm *permanentError
				if errors.As(err, &perm) {
					// The plugin keeps its previous settings; say why.
					i.noteError(err.Error())
					continue
				}
				return "reconfigure failed: " + err.Error()
			}
		case <-tick.C:
			i.mu.Lock()
			c := i.client
			i.mu.Unlock()
			if c.Exited() {
				return "plugin process exited unexpectedly"
			}
			if time.Since(lastHealth) < i.m.opts.HealthInterval {
				continue
			}
			lastHealth = time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := i.conn.Health(ctx)
			cancel()
			if err == nil {
				healthFailures = 0
				continue
			}
			healthFailures++
			i.noteError("health check: " + err.Error())
			if healthFailures >= 3 {
				return "3 health checks failed: " + err.Error()
			}
		}
	}
}

func (i *instance) lastLineText() string {
	i.lineMu.Lock()
	defer i.lineMu.Unlock()
	return i.lastLine
}

var pluginVersionRe = regexp.MustCompile(`Plugin version: (\d+)`)

// launch starts the process, checks the protocol, describes and configures.
func (i *instance) launch() error {
	i.setState(StateStarting, "")
	cmd, sum, err := i.m.command(i)
	if err != nil {
		return &permanentError{err}
	}
	// Linux: the plugin dies with us even if we are SIGKILLed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	w := &hclogWriter{log: i.log, red: i.red}
	last := func(line string) {
		i.lineMu.Lock()
		i.lastLine = line
		i.lineMu.Unlock()
	}
	// Before the handshake the plugin's stderr arrives on Stderr; after it,
	// go-plugin streams stdout/stderr over gRPC to SyncStdout/SyncStderr.
	stderr := &stderrWriter{stream: "stderr", log: i.log, red: i.red, last: last}
	cc := &plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          sdk.PluginSet(nil),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true,
		StartTimeout:     i.m.opts.StartTimeout,
		Stderr:           stderr,
		SyncStderr:       &stderrWriter{stream: "stderr", log: i.log, red: i.red, last: last},
		SyncStdout:       &stderrWriter{stream: "stdout", log: i.log, red: i.red, last: last},
		Logger: hclog.New(&hclog.LoggerOptions{Name: "plugin", Output: w, JSONFormat: true,
			Level: hclog.Debug}),
	}
	if sum != nil {
		cc.SecureConfig = &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
	}
	i.lineMu.Lock()
	i.lastLine = ""
	i.lineMu.Unlock()
	client := plugin.NewClient(cc)
	i.mu.Lock()
	i.client = client
	i.mu.Unlock()

	rpc, err := client.Client()
	if err != nil {
		msg := err.Error()
		if m := pluginVersionRe.FindStringSubmatch(msg); m != nil {
			return &permanentError{fmt.Errorf("protocol version mismatch: the plugin speaks connector protocol version %s, this Omni speaks version %d; rebuild the plugin against a matching plugins/sdk", m[1], sdk.ProtocolVersion)}
		}
		if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
			return &permanentError{fmt.Errorf("checksum mismatch: %s does not match connectors.%s.sha256", cmd.Path, i.name)}
		}
		exited := client.Exited() || strings.Contains(msg, "exited before we could connect") || strings.Contains(msg, "Failed to read any lines")
		// Kill waits for the stderr reader, so the plugin's last words are in.
		client.Kill()
		if exited {
			if line := i.lastLineText(); line != "" {
				return fmt.Errorf("plugin exited at start: %s", line)
			}
			return errors.New("plugin exited at start before the handshake (nothing on stderr)")
		}
		first, _, _ := strings.Cut(strings.TrimSpace(msg), "\n")
		return fmt.Errorf("start plugin: %s", first)
	}
	raw, err := rpc.Dispense(sdk.PluginName)
	if err != nil {
		return fmt.Errorf("dispense: %w", err)
	}
	conn := raw.(*sdk.Client)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	desc, err := conn.Describe(ctx)
	if err != nil {
		return fmt.Errorf("describe: %w", err)
	}
	i.mu.Lock()
	i.conn, i.desc = conn, desc
	i.mu.Unlock()
	i.m.saveDescription(i.name, desc)
	return i.configure(ctx, conn)
}

// configure loads the settings and hands them to the plugin.
func (i *instance) configure(ctx context.Context, conn *sdk.Client) error {
	cfg, secrets, err := i.m.loadConfig(i.name)
	if err != nil {
		return &permanentError{err}
	}
	i.red.set(secrets)
	if err := conn.Configure(ctx, cfg, &host{i: i}); err != nil {
		var ce *sdk.ConfigError
		if errors.As(err, &ce) {
			return &permanentError{fmt.Errorf("config: %s", ce.Error())}
		}
		return fmt.Errorf("configure: %w", err)
	}
	i.mu.Lock()
	i.cfg = cfg
	i.mu.Unlock()
	return nil
}

func (i *instance) reconfigure() error {
	i.mu.Lock()
	conn := i.conn
	i.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := i.configure(ctx, conn); err != nil {
		return err
	}
	i.noteError("")
	return nil
}

func (i *instance) kill() {
	i.mu.Lock()
	c := i.client
	i.client, i.conn = nil, nil
	i.mu.Unlock()
	if c != nil {
		c.Kill()
	}
}

// pid returns the plugin's process id (0 when not running); for tests.
func (i *instance) pid() int {
	i.mu.Lock()
	c := i.client
	i.mu.Unlock()
	if c == nil {
		return 0
	}
	rc := c.ReattachConfig()
	if rc == nil {
		return 0
	}
	return rc.Pid
}

// fileSHA256 hashes a file (for pin checks in `omni plugin list`).
func fileSHA256(sum []byte) string { return hex.EncodeToString(sum) }

var _ = exec.Command
