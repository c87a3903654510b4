package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/omni/omni/plugins/shopify"
)

// shopDomain and the webhook secret the writer's shopify connector is
// configured with; the front ends never see the secret.
const (
	shopDomain = "bench-cluster.myshopify.com"
	hookSecret = "bench-cluster-webhook-secret"
)

// configureShopify sets up and enables the writer's shopify connector
// (before the writer starts; no registration: there is no Shopify here).
func configureShopify(bin, dataDir string) error {
	for _, args := range [][]string{
		{"connector", "configure", "shopify", shopify.KeyShop + "=" + shopDomain, shopify.KeyAccessToken + "=shpat_bench",
			shopify.KeyWebhookSecret + "=" + hookSecret, shopify.KeyRegister + "=false"},
		{"connector", "enable", "shopify"},
	} {
		out, err := exec.Command(bin, append(args, "--data-dir", dataDir)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("omni %v: %v %s", args, err, out)
		}
	}
	return nil
}

// findOrderFixture looks for Shopify's sample order in the shared
// fixtures beside or above the working directory ("" if there is none).
func findOrderFixture() string {
	dir, _ := os.Getwd()
	for range 5 {
		for _, p := range []string{filepath.Join(dir, "shared", "fixtures", "shopify", "order.json"),
			filepath.Join(dir, "..", "shared", "fixtures", "shopify", "order.json")} {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
		dir = filepath.Dir(dir)
	}
	return ""
}

// hooks sends Shopify orders/create webhooks to the front ends the way
// Shopify does: each delivery signed, one order per delivery, sent again
// (here, to the next front end) until it is answered 2xx.
type hooks struct {
	order   map[string]any // Shopify's sample order; each delivery gets its own id
	client  *http.Client
	acked   sync.Map // order id → struct{}: deliveries a front end answered 2xx
	retries atomic.Int64
}

func newHooks(orderJSON []byte) (*hooks, error) {
	var order map[string]any
	if err := json.Unmarshal(orderJSON, &order); err != nil {
		return nil, fmt.Errorf("shopify order fixture: %w", err)
	}
	return &hooks{order: order, client: &http.Client{Timeout: 15 * time.Second}}, nil
}

// run sends n deliveries with order ids from base, two at a time.
func (h *hooks) run(frontends func() []string, n int, base int64) error {
	work := make(chan int64)
	var failed atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for id := range work {
				if !h.deliver(frontends, w, id) {
					failed.Add(1)
				}
			}
		}(w)
	}
	for k := 0; k < n; k++ {
		work <- base + int64(k)
	}
	close(work)
	wg.Wait()
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("%d webhook deliveries never answered 2xx", f)
	}
	return nil
}

func (h *hooks) deliver(frontends func() []string, worker int, id int64) bool {
	order := make(map[string]any, len(h.order))
	for k, v := range h.order {
		order[k] = v
	}
	order["id"] = id
	body, _ := json.Marshal(order)
	deadline := time.Now().Add(giveUp)
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		fes := frontends()
		req, _ := http.NewRequest("POST", "http://"+fes[(worker+attempt)%len(fes)]+"/webhooks/shopify", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Shopify-Topic", "orders/create")
		req.Header.Set("X-Shopify-Hmac-Sha256", shopify.Sign(body, hookSecret))
		req.Header.Set("X-Shopify-Shop-Domain", shopDomain)
		req.Header.Set("X-Shopify-Event-Id", "bench-"+strconv.FormatInt(id, 10))
		req.Header.Set("X-Shopify-Webhook-Id", "bench-"+strconv.FormatInt(id, 10))
		resp, err := h.client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				h.acked.Store(strconv.FormatInt(id, 10), struct{}{})
				return true
			}
		}
		h.retries.Add(1)
		time.Sleep(time.Duration(min(attempt+1, 10)) * 20 * time.Millisecond)
	}
	return false
}
