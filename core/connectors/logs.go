package connectors

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
)

// redactor replaces a connector's secret values wherever they appear in
// text, so neither plugin logs nor error messages leak them.
type redactor struct {
	mu      sync.RWMutex
	secrets []string
}

func (r *redactor) set(secrets []string) {
	var keep []string
	for _, s := range secrets {
		if len(s) >= 4 { // shorter values would mask ordinary words
			keep = append(keep, s)
		}
	}
	// Longest first so a secret containing another is masked whole.
	sort.Slice(keep, func(i, j int) bool { return len(keep[i]) > len(keep[j]) })
	r.mu.Lock()
	r.secrets = keep
	r.mu.Unlock()
}

func (r *redactor) redact(s string) string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, sec := range r.secrets {
		if strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, Masked)
		}
	}
	return s
}

// hclogWriter receives go-plugin's hclog output (JSON lines, including the
// plugin's own stderr logs re-emitted with their levels) and writes each
// line to slog under the connector's name, secrets masked.
type hclogWriter struct {
	log *slog.Logger
	red *redactor
	mu  sync.Mutex
	buf []byte
}

func (w *hclogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *hclogWriter) line(b []byte) {
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		w.emit(slog.LevelInfo, string(b), nil)
		return
	}
	level := slog.LevelInfo
	switch m["@level"] {
	case "trace", "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	msg := fmt.Sprint(m["@message"])
	var attrs []any
	keys := make([]string, 0, len(m))
	for k := range m {
		if !strings.HasPrefix(k, "@") && k != "timestamp" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		attrs = append(attrs, k, fmt.Sprint(m[k]))
	}
	w.emit(level, msg, attrs)
}

func (w *hclogWriter) emit(level slog.Level, msg string, attrs []any) {
	msg = w.red.redact(msg)
	for i := 1; i < len(attrs); i += 2 {
		attrs[i] = w.red.redact(fmt.Sprint(attrs[i]))
	}
	w.log.Log(context.Background(), level, msg, attrs...)
}

// slogLevel maps a Host.Log level name.
func slogLevel(level string) slog.Level {
	switch strings.ToLower(level) {
	case "debug", "trace":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// stderrWriter sees the plugin's raw stderr. Plain-text lines (panics,
// fmt.Println) are logged at info — go-plugin would log them at debug — and
// the last line is kept to explain a plugin that exits at start.
type stderrWriter struct {
	stream string
	log    *slog.Logger
	red    *redactor
	last   func(line string)
	mu     sync.Mutex
	buf    []byte
}

func (w *stderrWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimSpace(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
		if line == "" {
			continue
		}
		var m map[string]any
		if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &m) == nil {
			// Structured: logged with its level by the hclog path.
			w.last(w.red.redact(fmt.Sprint(m["@message"])))
			continue
		}
		line = w.red.redact(line)
		w.last(line)
		w.log.Info(line, "stream", w.stream)
	}
	return len(p), nil
}
