package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// load posts Segment batches to the front ends. A batch that is not
// acknowledged (an error, a 503 while the cluster elects a leader, a dead
// front end) is retried on the next front end with the same messageIds,
// as a Segment library would: the bus dedupes what was stored already.
type load struct {
	key     string
	client  *http.Client
	acked   sync.Map // messageId → struct{}: what a 200 acknowledged
	retries atomic.Int64
	next    atomic.Int64
}

func newLoad(key string, clients int) *load {
	return &load{key: key, client: &http.Client{Timeout: 15 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}}
}

// batches makes n events in batches of per, with messageIds unique to tag.
func batches(tag string, n, per int) (bodies [][]byte, ids [][]string) {
	for i := 0; i < n; i += per {
		var b bytes.Buffer
		var bid []string
		b.WriteString(`{"batch":[`)
		for j := i; j < min(i+per, n); j++ {
			if j > i {
				b.WriteByte(',')
			}
			id := fmt.Sprintf("%s-%d", tag, j)
			bid = append(bid, id)
			fmt.Fprintf(&b, `{"type":"track","messageId":%q,"userId":"user-%d","event":"Product Viewed","properties":{"sku":"SKU-%d","price":19.99}}`, id, j%5000, j%300)
		}
		b.WriteString(`]}`)
		bodies, ids = append(bodies, b.Bytes()), append(ids, bid)
	}
	return bodies, ids
}

// run sends every batch through clients workers spread over the front
// ends; during calls hook(k) after the k-th batch is handed out. It
// returns when every batch is acknowledged or gave up after giveUp.
func (l *load) run(frontends func() []string, bodies [][]byte, ids [][]string, clients int, hook func(k int)) (time.Duration, error) {
	work := make(chan int)
	var failed atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for k := range work {
				if !l.send(frontends, c, bodies[k]) {
					failed.Add(1)
					continue
				}
				for _, id := range ids[k] {
					l.acked.Store(id, struct{}{})
				}
			}
		}(c)
	}
	for k := range bodies {
		if hook != nil {
			hook(k)
		}
		work <- k
	}
	close(work)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		return time.Since(t0), fmt.Errorf("%d batches never acknowledged", n)
	}
	return time.Since(t0), nil
}

const giveUp = 60 * time.Second

// send posts one batch until a front end acknowledges it.
func (l *load) send(frontends func() []string, client int, body []byte) bool {
	deadline := time.Now().Add(giveUp)
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		fes := frontends()
		addr := fes[(client+attempt)%len(fes)]
		req, _ := http.NewRequest("POST", "http://"+addr+"/v1/batch", bytes.NewReader(body))
		req.SetBasicAuth(l.key, "")
		resp, err := l.client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return true
			}
		}
		l.retries.Add(1)
		time.Sleep(time.Duration(min(attempt+1, 10)) * 20 * time.Millisecond)
	}
	return false
}

func (l *load) ackedCount() int {
	n := 0
	l.acked.Range(func(_, _ any) bool { n++; return true })
	return n
}
