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

// Vendor reachability, as the connector's Health last reported it. It is
// shown next to the state and never causes a restart.
const (
	VendorUnknown     = ""            // not checked since the plugin (re)started
	VendorReachable   = "reachable"   // the last Health call succeeded
	VendorUnreachable = "unreachable" // the last Health call failed; see VendorError
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
	// unresponsive is set when the process missed a liveness ping: calls
	// are refused at once (503) instead of each waiting for a deadline.
	unresponsive bool
	// vendor, vendorErr and vendorChecks come from Health calls.
	vendor       string
	vendorErr    string
	vendorAt     time.Time
	vendorChecks int

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
	// Vendor is VendorReachable, VendorUnreachable or empty (not checked
	// yet), for a running connector; VendorError is the failed check's
	// error and VendorCheckedAt when the last check answered.
	Vendor          string `json:"vendor,omitempty"`
	VendorError     string `json:"vendor_error,omitempty"`
	VendorCheckedAt string `json:"vendor_checked_at,omitempty"`
}

func (i *instance) status() Status {
	i.mu.Lock()
	defer i.mu.Unlock()
	st := Status{State: i.state, LastError: i.lastErr, Restarts: i.restarts}
	if i.state == StateRunning && !i.startedAt.IsZero() {
		st.Since = i.startedAt.UTC().Format(time.RFC3339)
	}
	if i.state == StateRunning {
		st.Vendor, st.VendorError = i.vendor, i.vendorErr
		if !i.vendorAt.IsZero() {
			st.VendorCheckedAt = i.vendorAt.UTC().Format(time.RFC3339)
		}
	}
	return st
}

// setVendor records the outcome of a Health call made on conn; an answer
// from a process that has been replaced meanwhile is dropped.
func (i *instance) setVendor(conn *sdk.Client, err error) {
	state, text := VendorReachable, ""
	if err != nil {
		state, text = VendorUnreachable, i.red.redact(err.Error())
	}
	i.mu.Lock()
	if i.conn != conn {
		i.mu.Unlock()
		return
	}
	changed := i.vendor != state || i.vendorErr != text
	i.vendor, i.vendorErr, i.vendorAt = state, text, time.Now()
	i.vendorChecks++
	i.mu.Unlock()
	if changed {
		if err != nil {
			i.log.Warn("vendor unreachable; the connector keeps running", "error", text)
		} else {
			i.log.Info("vendor reachable")
		}
	}
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
	i.mu.Lock()
	unresponsive := i.unresponsive
	i.mu.Unlock()
	if unresponsive {
		return nil, fmt.Errorf("%w: %s does not answer liveness pings", ErrDown, i.name)
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

		reason, hung := i.watch(stop)
		if reason == "" { // stopped
			i.setState(StateStopped, "")
			return
		}
		if hung {
			i.killHung()
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

// watch returns why the running plugin must be restarted, or "" on stop;
// hung says the process stopped answering (it is killed hard).
//
// Only the process's own liveness decides a restart: a gRPC health ping,
// answered by go-plugin without connector code, every LivenessInterval.
// The connector's Health (which asks the vendor) runs beside it every
// HealthInterval and only sets the vendor state: restarting cannot fix
// a vendor outage, and each restart would drop sends in flight and a
// running backfill.
func (i *instance) watch(stop chan struct{}) (reason string, hung bool) {
	tick := time.NewTicker(i.m.opts.ExitPoll)
	defer tick.Stop()
	i.mu.Lock()
	i.unresponsive = false
	i.vendor, i.vendorErr, i.vendorAt = VendorUnknown, "", time.Time{}
	c, conn := i.client, i.conn
	i.mu.Unlock()
	defer func() {
		i.mu.Lock()
		i.unresponsive = false
		i.mu.Unlock()
	}()
	lastPing := time.Now()
	misses := 0
	vendorDone := make(chan struct{}, 1)
	var lastVendor time.Time // zero: the first vendor check runs at once
	// A check still running when watch returns ends on its own (with
	// its deadline or the kill); vendorDone has room for its token.
	vendorBusy := false
	for {
		select {
		case <-stop:
			return "", false
		case <-i.reload:
			if err := i.reconfigure(); err != nil {
				var perm *permanentError
				if errors.As(err, &perm) {
					// The plugin keeps its previous settings; say why.
					i.noteError(err.Error())
					continue
				}
				return "reconfigure failed: " + err.Error(), false
			}
			lastVendor = time.Time{} // new settings: look at the vendor again soon
		case <-vendorDone:
			vendorBusy = false
		case <-tick.C:
			if c.Exited() {
				return "plugin process exited unexpectedly", false
			}
			if !vendorBusy && time.Since(lastVendor) >= i.m.opts.HealthInterval {
				vendorBusy, lastVendor = true, time.Now()
				go func() {
					defer func() { vendorDone <- struct{}{} }()
					i.checkVendor(conn)
				}()
			}
			if time.Since(lastPing) < i.m.opts.LivenessInterval {
				continue
			}
			lastPing = time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), i.m.opts.LivenessTimeout)
			err := conn.Ping(ctx)
			cancel()
			if err == nil {
				if misses > 0 {
					i.log.Info("plugin answers liveness pings again")
				}
				misses = 0
				i.mu.Lock()
				i.unresponsive = false
				i.mu.Unlock()
				continue
			}
			if c.Exited() {
				return "plugin process exited unexpectedly", false
			}
			misses++
			i.mu.Lock()
			i.unresponsive = true
			i.mu.Unlock()
			i.log.Warn("plugin missed a liveness ping", "misses", misses, "error", err)
			if misses >= i.m.opts.LivenessMisses {
				return fmt.Sprintf("plugin process stopped answering (%d liveness pings missed: %v)", misses, err), true
			}
		}
	}
}

// checkVendor calls the connector's Health and records the vendor state.
// A transport failure says nothing about the vendor (the process did not
// answer): liveness pings deal with that.
func (i *instance) checkVendor(conn *sdk.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), i.m.opts.HealthTimeout)
	defer cancel()
	err := conn.Health(ctx)
	var te *sdk.TransportError
	if errors.As(err, &te) {
		return
	}
	i.setVendor(conn, err)
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

// killHung SIGKILLs a process that stopped answering (SIGSTOPped,
// wedged): go-plugin's Kill first asks the plugin to shut down and would
// wait on it forever.
func (i *instance) killHung() {
	if pid := i.pid(); pid > 0 {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			i.log.Warn("could not kill the unresponsive plugin", "pid", pid, "error", err)
		}
	}
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
