package shopify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/plugins/internal/vendorhttp"
)

// admin calls the GraphQL Admin API:
// POST https://{shop}/admin/api/{version}/graphql.json with X-Shopify-Access-Token.
type admin struct {
	endpoint string
	token    string
	client   *vendorhttp.Client
	quick    *vendorhttp.Client // for lookups inside a webhook (Shopify waits 5 s at most)
	sleep    func(ctx context.Context, d time.Duration) error
}

func newAdmin(s settings, sleep func(context.Context, time.Duration) error) *admin {
	base := "https://" + s.shop
	if s.baseURL != "" {
		base = s.baseURL
	}
	return &admin{
		endpoint: base + "/admin/api/" + s.version + "/graphql.json",
		token:    s.token,
		client:   &vendorhttp.Client{Sleep: sleep, MaxAttempts: 8},
		quick:    &vendorhttp.Client{Sleep: sleep, MaxAttempts: 1, HTTP: vendorhttp.HTTPClient(3 * time.Second)},
		sleep:    sleep,
	}
}

// gqlError is one entry of a GraphQL "errors" array.
type gqlError struct {
	Message    string `json:"message"`
	Extensions struct {
		Code string `json:"code"`
	} `json:"extensions"`
}

type throttleStatus struct {
	MaximumAvailable   float64 `json:"maximumAvailable"`
	CurrentlyAvailable float64 `json:"currentlyAvailable"`
	RestoreRate        float64 `json:"restoreRate"`
}

type gqlResponse struct {
	Data       json.RawMessage `json:"data"`
	Errors     []gqlError      `json:"errors"`
	Extensions struct {
		Cost struct {
			RequestedQueryCost float64        `json:"requestedQueryCost"`
			ThrottleStatus     throttleStatus `json:"throttleStatus"`
		} `json:"cost"`
	} `json:"extensions"`
}

// AccessDeniedError is a GraphQL ACCESS_DENIED answer: the token lacks a
// scope.
type AccessDeniedError struct{ Message string }

func (e *AccessDeniedError) Error() string { return "access denied: " + e.Message }

// query runs one GraphQL operation, waiting out THROTTLED answers by the
// bucket's restore rate (Shopify's leaky-bucket limit answers 200 with a
// THROTTLED error) and HTTP 429s by Retry-After.
func (a *admin) query(ctx context.Context, q string, vars map[string]any, out any) error {
	return a.do(ctx, a.client, q, vars, out)
}

func (a *admin) do(ctx context.Context, client *vendorhttp.Client, q string, vars map[string]any, out any) error {
	body, err := json.Marshal(map[string]any{"query": q, "variables": vars})
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		resp, err := client.Do(ctx, func(ctx context.Context) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.endpoint, bytes.NewReader(body))
			if err != nil {
				return nil, err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json")
			req.Header.Set("X-Shopify-Access-Token", a.token)
			return req, nil
		})
		if err != nil {
			if vendorhttp.IsStatus(err, 401) {
				return fmt.Errorf("shopify rejected the access token (HTTP 401): %w", err)
			}
			if vendorhttp.IsStatus(err, 403) {
				return &AccessDeniedError{Message: err.Error()}
			}
			return err
		}
		var gr gqlResponse
		if err := json.Unmarshal(resp.Body, &gr); err != nil {
			return fmt.Errorf("shopify answered something that is not GraphQL JSON: %w", err)
		}
		if throttled(gr.Errors) && attempt < 10 {
			if err := a.sleep(ctx, throttleWait(gr)); err != nil {
				return err
			}
			continue
		}
		if len(gr.Errors) > 0 {
			msgs := make([]string, len(gr.Errors))
			denied := false
			for i, e := range gr.Errors {
				msgs[i] = e.Message
				denied = denied || e.Extensions.Code == "ACCESS_DENIED"
			}
			if denied {
				return &AccessDeniedError{Message: strings.Join(msgs, "; ")}
			}
			return errors.New("shopify GraphQL error: " + strings.Join(msgs, "; "))
		}
		// Pace proactively: if the next similar query would not fit in the
		// bucket, wait for it to refill.
		ts := gr.Extensions.Cost.ThrottleStatus
		if ts.RestoreRate > 0 && ts.CurrentlyAvailable < gr.Extensions.Cost.RequestedQueryCost {
			if err := a.sleep(ctx, throttleWait(gr)); err != nil {
				return err
			}
		}
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(gr.Data, out); err != nil {
			return fmt.Errorf("unexpected GraphQL data: %w", err)
		}
		return nil
	}
}

func throttled(errs []gqlError) bool {
	for _, e := range errs {
		if e.Extensions.Code == "THROTTLED" {
			return true
		}
	}
	return false
}

// throttleWait is how long until the bucket holds the requested cost.
func throttleWait(gr gqlResponse) time.Duration {
	ts := gr.Extensions.Cost.ThrottleStatus
	need := gr.Extensions.Cost.RequestedQueryCost - ts.CurrentlyAvailable
	if ts.RestoreRate <= 0 || need <= 0 {
		return time.Second
	}
	secs := math.Ceil(need / ts.RestoreRate)
	return time.Duration(secs) * time.Second
}

// orderIdentities finds the buyer of an order (refund payloads carry only
// the order id).
func (a *admin) orderIdentities(ctx context.Context, orderID string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var out struct {
		Order *struct {
			Email    string       `json:"email"`
			Phone    string       `json:"phone"`
			Customer *gqlCustomer `json:"customer"`
		} `json:"order"`
	}
	q := `query OrderBuyer($id: ID!) { order(id: $id) { email phone customer { ` + customerFields + ` } } }`
	if err := a.do(ctx, a.quick, q, map[string]any{"id": "gid://shopify/Order/" + orderID}, &out); err != nil {
		return nil, err
	}
	if out.Order == nil {
		return nil, nil
	}
	email, phone, cid := out.Order.Email, out.Order.Phone, ""
	if c := out.Order.Customer; c != nil {
		cid = c.LegacyResourceID
		if c.DefaultEmailAddress != nil && c.DefaultEmailAddress.EmailAddress != "" {
			email = c.DefaultEmailAddress.EmailAddress
		}
		if c.DefaultPhoneNumber != nil && c.DefaultPhoneNumber.PhoneNumber != "" {
			phone = c.DefaultPhoneNumber.PhoneNumber
		}
	}
	ids := mapper{}.identities(cid, email, phone)
	delete(ids, events.AnonymousID)
	return ids, nil
}
