package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/omni/omni/core/app/omnitest"
)

// These tests run the real omni binary as a user would.

var omniBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "omni-bin-")
	if err != nil {
		panic(err)
	}
	// TEST_OMNI_BIN (set by .ci/run) is an omni built from this checkout.
	omniBin = os.Getenv("TEST_OMNI_BIN")
	if omniBin == "" {
		omniBin = filepath.Join(dir, "omni")
		if out, err := exec.Command("go", "build", "-o", omniBin, ".").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build omni: %v\n%s", err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// omni runs a CLI command to completion.
func omni(t *testing.T, dataDir string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(omniBin, append(args, "--data-dir", dataDir)...)
	cmd.Dir = dataDir
	cmd.Env = append(cleanEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OMNI_") {
			env = append(env, kv)
		}
	}
	return env
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type server struct {
	cmd  *exec.Cmd
	addr string
	logs *bytes.Buffer
	done chan error
}

func startServer(t *testing.T, dataDir string) *server {
	t.Helper()
	addr := freeAddr(t)
	return startServerWith(t, dataDir, addr, nil, "serve", "--http", addr, "--data-dir", dataDir)
}

// startServerWith runs omni with args and env (added to a clean
// environment) and waits until addr answers /api/v1/health.
func startServerWith(t *testing.T, dataDir, addr string, env []string, args ...string) *server {
	t.Helper()
	cmd := exec.Command(omniBin, args...)
	cmd.Dir = dataDir
	cmd.Env = append(cleanEnv(), env...)
	logs := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, addr: addr, logs: logs, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-s.done
	})
	omnitest.Eventually(t, 20*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/api/v1/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, "the server to be healthy; logs:\n%s", logs)
	return s
}

func (s *server) post(t *testing.T, key, path, body string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+s.addr+path, strings.NewReader(body))
	req.SetBasicAuth(key, "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func createSource(t *testing.T, dir string) string {
	t.Helper()
	out, errOut, code := omni(t, dir, nil, "source", "create", "web")
	if code != 0 {
		t.Fatalf("source create: %d %s", code, errOut)
	}
	m := regexp.MustCompile(`write key: (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no write key in %q", out)
	}
	return m[1]
}

// countEvents counts the stored events that came in through ingest or a
// connector (not those Omni derives).
func countEvents(t *testing.T, addr, dir string) int {
	t.Helper()
	return countEventsOf(t, addr, dir, "")
}

// countEventsOf counts the stored events of one type ("" for all).
func countEventsOf(t *testing.T, addr, dir, typ string) int {
	t.Helper()
	// Read through the superuser REST API: the same path the admin uses.
	resp, err := http.Post("http://"+addr+"/api/collections/_superusers/auth-with-password", "application/json",
		strings.NewReader(`{"identity":"root@example.com","password":"s3cret-pass-123"}`))
	if err != nil {
		t.Fatal(err)
	}
	var auth struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&auth)
	resp.Body.Close()
	// Events that came in, not those Omni derives from them (source "omni":
	// segment entries, conversation.opened, …).
	q := "perPage=1&filter=" + url.QueryEscape("source != 'omni'")
	if typ != "" {
		q = "perPage=1&filter=" + url.QueryEscape("type='"+typ+"'")
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/api/collections/events/records?"+q, nil)
	req.Header.Set("Authorization", auth.Token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct{ TotalItems int }
	json.NewDecoder(resp.Body).Decode(&list)
	return list.TotalItems
}

func TestCLIWalkthrough(t *testing.T) {
	dir := t.TempDir()
	out, errOut, code := omni(t, dir, nil, "superuser", "upsert", "root@example.com", "s3cret-pass-123")
	if code != 0 || !strings.Contains(out+errOut, "root@example.com") {
		t.Fatalf("superuser upsert: %d %s %s", code, out, errOut)
	}
	key := createSource(t, dir)
	_, errOut, code = omni(t, dir, nil, "source", "create", "web")
	if code == 0 || !strings.Contains(errOut, `"web" already exists`) {
		t.Fatalf("duplicate source: %d %s", code, errOut)
	}
	// Source kinds: a bad kind or reserved name is one line and exit 2; a
	// server source's secret key is printed once and never listed.
	for _, c := range []struct {
		args  []string
		field string
	}{{[]string{"source", "create", "api", "--kind", "admin"}, "kind: "}, {[]string{"source", "create", "omni"}, "name: "}} {
		_, errOut, code = omni(t, dir, nil, c.args...)
		if code != 2 || strings.Contains(strings.TrimSpace(errOut), "\n") || !strings.Contains(errOut, c.field) {
			t.Fatalf("%v: exit %d %q", c.args, code, errOut)
		}
	}
	out, errOut, code = omni(t, dir, nil, "source", "create", "backend", "--kind", "server")
	secret := regexp.MustCompile(`secret key: (sk_\S+)`).FindStringSubmatch(out)
	if code != 0 || secret == nil {
		t.Fatalf("server source: %d %s %s", code, out, errOut)
	}
	out, _, _ = omni(t, dir, nil, "source", "list")
	if !strings.Contains(out, key) || strings.Contains(out, secret[1]) || !strings.Contains(out, "backend\tserver") {
		t.Fatalf("source list: %s", out)
	}

	s := startServer(t, dir)
	if code := s.post(t, key, "/v1/track", `{"userId":"u1","event":"Signed Up","messageId":"cli-1"}`); code != 200 {
		t.Fatalf("track: %d", code)
	}
	omnitest.Eventually(t, 20*time.Second, func() bool { return countEvents(t, s.addr, dir) == 1 }, "the event visible through the REST API")

	// SIGTERM: stop taking requests, drain, exit 0.
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, s.logs)
		}
		s.done <- nil // for the cleanup
	case <-time.After(15 * time.Second):
		t.Fatalf("no exit within 15s after SIGTERM:\n%s", s.logs)
	}
	if !strings.Contains(s.logs.String(), "omni stopped") {
		t.Fatalf("no clean stop in logs:\n%s", s.logs)
	}
}

// kill -9 while acknowledged events wait to be stored: after a restart
// every one of them is stored, once. The test holds SQLite's write lock
// (as a backup tool or a long write elsewhere could) while it posts, so at
// the moment of the kill the consumer is in the middle of storing, with
// events acknowledged by JetStream and not in SQLite.
func TestKillNineLosesNoAcknowledgedEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for redelivery after a crash")
	}
	dir := t.TempDir()
	omni(t, dir, nil, "superuser", "upsert", "root@example.com", "s3cret-pass-123")
	key := createSource(t, dir)
	s := startServer(t, dir)
	post := func(batch int) {
		var sb strings.Builder
		sb.WriteString(`{"batch":[`)
		for i := 0; i < 100; i++ {
			if i > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, `{"type":"track","messageId":"k-%d-%d","anonymousId":"a%d","event":"Tick"}`, batch, i, i)
		}
		sb.WriteString(`]}`)
		if code := s.post(t, key, "/v1/batch", sb.String()); code != 200 {
			t.Fatalf("batch %d: %d", batch, code)
		}
	}
	// Some events stored before the lock, so the kill also lands after
	// batches the consumer committed and acknowledged.
	post(0)
	omnitest.Eventually(t, 30*time.Second, func() bool { return countEvents(t, s.addr, dir) == 100 }, "the first batch stored")

	db := openDB(t, dir)
	lock, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if _, err := lock.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	const batches = 30
	for b := 1; b < batches; b++ {
		post(b)
	}
	acked := batches * 100
	// Nothing can commit while the test holds the lock: this count is the
	// one at the moment of the kill.
	var stored int
	if err := lock.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM events").Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if acked == 0 || stored >= acked {
		t.Fatalf("the kill would interrupt nothing: %d acknowledged, %d stored", acked, stored)
	}
	t.Logf("kill -9 with %d of %d acknowledged events stored", stored, acked)
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
	s.done <- nil
	if _, err := lock.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	lock.Close()

	s2 := startServer(t, dir)
	omnitest.Eventually(t, 90*time.Second, func() bool { return countEvents(t, s2.addr, dir) >= acked },
		"all %d acknowledged events stored after kill -9 and restart", acked)
	var n, distinct int
	if err := db.QueryRow("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM events").Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != acked || distinct != acked {
		t.Fatalf("stored %d rows (%d distinct), acknowledged %d", n, distinct, acked)
	}
}

func TestBadConfigExitsTwoNamingTheKey(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"serve", "--http", "not-an-address"}, "http:"},
		{[]string{"OMNI_LOG_LEVEL=chatty"}, []string{"serve"}, "log.level"},
		{[]string{"OMNI_BUS_MAXSTORE=1"}, []string{"config", "print"}, "OMNI_BUS_MAXSTORE"},
	}
	for _, c := range cases {
		_, errOut, code := omni(t, dir, c.env, c.args...)
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		if code != 2 || len(lines) != 1 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v %v: exit %d, stderr %q", c.env, c.args, code, errOut)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "omni.yaml"), []byte("bus:\n  listn: 127.0.0.1:4222\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := omni(t, dir, nil, "serve")
	if code != 2 || !strings.Contains(errOut, "bus.listn: unknown key") {
		t.Errorf("unknown key in omni.yaml: exit %d %q", code, errOut)
	}
}

// A mistake on the command line is one line that names the command and
// how it is called, and exit code 2, whatever cobra found wrong.
func TestCommandLineMistakesExitTwoWithTheUsage(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"source", "create"}, []string{"source create: accepts 1 arg(s), received 0", "usage: omni source create NAME"}},
		{[]string{"serve", "--nope"}, []string{"serve: unknown flag: --nope", "usage: omni serve"}},
		{[]string{"connector", "enable"}, []string{"connector enable: accepts 1 arg(s)", "usage: omni connector enable NAME"}},
		{[]string{"frobnicate"}, []string{`unknown command "frobnicate" for "omni"`, "see omni --help"}},
	}
	for _, c := range cases {
		_, errOut, code := omni(t, dir, nil, c.args...)
		line := strings.TrimSpace(errOut)
		ok := code == 2 && !strings.Contains(line, "\n")
		for _, w := range c.want {
			ok = ok && strings.Contains(line, w)
		}
		if !ok {
			t.Errorf("omni %v: exit %d, stderr %q; want exit 2 and one line with %q", c.args, code, errOut, c.want)
		}
	}
}

func TestConfigPrintMasksSecrets(t *testing.T) {
	dir := t.TempDir()
	out, errOut, code := omni(t, dir, []string{"OMNI_SECRET_KEY=super-secret-value", "OMNI_HTTP=127.0.0.1:9999"}, "config", "print")
	if code != 0 {
		t.Fatalf("%d %s", code, errOut)
	}
	if strings.Contains(out, "super-secret-value") || !strings.Contains(out, "secret_key: '********'") || !strings.Contains(out, "127.0.0.1:9999") {
		t.Fatalf("config print:\n%s", out)
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data_dir:") && !strings.Contains(sc.Text(), dir) {
			t.Fatalf("flag not shown: %s", sc.Text())
		}
	}
}

// Two servers on one data dir would run two JetStreams on one store: the
// second exits 2 and names the first's PID.
func TestSecondServeOnOneDataDirExitsTwo(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	_, stderr, code := omni(t, dir, nil, "serve", "--http", freeAddr(t))
	pid := strconv.Itoa(s.cmd.Process.Pid)
	if code != 2 || !strings.Contains(stderr, "in use by another omni serve (pid "+pid+")") {
		t.Fatalf("second serve: exit %d, stderr %q (first pid %s)", code, stderr, pid)
	}
	// The first one is unaffected.
	resp, err := http.Get("http://" + s.addr + "/api/v1/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("first server after the refused start: %v %v", resp, err)
	}
	resp.Body.Close()
}

// An event that cannot be stored is parked, listed by `omni events dead`,
// and stored by `omni events retry-dead` once its cause is fixed; the
// events around it are never held back. The cause here: a profile row
// whose stored traits are not JSON (written behind Omni's back).
func TestDeadEventsListedAndRetriedFromTheCLI(t *testing.T) {
	dir := t.TempDir()
	omni(t, dir, nil, "superuser", "upsert", "root@example.com", "s3cret-pass-123")
	key := createSource(t, dir)
	s := startServer(t, dir)
	if code := s.post(t, key, "/v1/identify", `{"userId":"u1","traits":{"email":"dead@omni-shop.dev","plan":"pro"}}`); code != 200 {
		t.Fatalf("identify: %d", code)
	}
	omnitest.Eventually(t, 60*time.Second, func() bool { return countEvents(t, s.addr, dir) == 1 }, "first event stored")
	s.cmd.Process.Signal(syscall.SIGTERM)
	<-s.done
	s.done <- nil

	db := openDB(t, dir)
	const broken = `{"plan":"pro","vip":tru`
	if _, err := db.Exec(`UPDATE profiles SET traits = ? WHERE email = 'dead@omni-shop.dev'`, broken); err != nil {
		t.Fatal(err)
	}

	s = startServer(t, dir)
	if code := s.post(t, key, "/v1/track", `{"userId":"u1","event":"Poisoned","messageId":"m-poisoned"}`); code != 200 {
		t.Fatalf("track: %d", code)
	}
	if code := s.post(t, key, "/v1/track", `{"userId":"u2","event":"Fine","messageId":"m-fine"}`); code != 200 {
		t.Fatalf("track: %d", code)
	}
	omnitest.Eventually(t, 60*time.Second, func() bool { return countEvents(t, s.addr, dir) == 2 }, "the other event stored")
	var out string
	omnitest.Eventually(t, 60*time.Second, func() bool {
		out, _, _ = omni(t, dir, nil, "events", "dead")
		return strings.Contains(out, "m-poisoned")
	}, "the poisoned event listed")
	if !strings.Contains(out, "traits are not valid JSON") || !strings.Contains(out, "eventstore") {
		t.Fatalf("events dead:\n%s", out)
	}
	var stored string
	if err := db.QueryRow(`SELECT traits FROM profiles WHERE email = 'dead@omni-shop.dev'`).Scan(&stored); err != nil || stored != broken {
		t.Fatalf("stored traits rewritten to %q (%v)", stored, err)
	}
	resp, err := http.Get("http://" + s.addr + "/api/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"status":"degraded"`) {
		t.Fatalf("health: %d %s", resp.StatusCode, body)
	}

	// Fixed by hand; the retry stores it and clears the list.
	if _, err := db.Exec(`UPDATE profiles SET traits = '{"plan":"pro"}' WHERE email = 'dead@omni-shop.dev'`); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := omni(t, dir, nil, "events", "retry-dead")
	if code != 0 || !strings.Contains(out, "1 retried: 1 stored") {
		t.Fatalf("retry-dead: exit %d\n%s%s", code, out, errOut)
	}
	if n := countEvents(t, s.addr, dir); n != 3 {
		t.Fatalf("events after the retry = %d, want 3", n)
	}
	if out, _, _ := omni(t, dir, nil, "events", "dead"); !strings.Contains(out, "no dead events") {
		t.Fatalf("still dead:\n%s", out)
	}
	if _, errOut, code := omni(t, dir, nil, "events", "retry-dead", "nosuchid"); code != 2 || !strings.Contains(errOut, `"nosuchid"`) {
		t.Fatalf("unknown id: exit %d %s", code, errOut)
	}
}

func openDB(t *testing.T, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, "data.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
