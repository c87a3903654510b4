package square

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/omni/omni/plugins/internal/vendorhttp"
)

// api calls Square's REST API with Bearer auth and a pinned Square-Version.
type api struct {
	base, token, version string
	client               *vendorhttp.Client
	quick                *vendorhttp.Client // inside a webhook: Square wants an answer within seconds
}

func newAPI(s settings, sleep func(context.Context, time.Duration) error) *api {
	return &api{
		base: s.baseURL, token: s.token, version: s.version,
		client: &vendorhttp.Client{Sleep: sleep, MaxAttempts: 8},
		quick:  &vendorhttp.Client{Sleep: sleep, MaxAttempts: 2, MaxBackoff: time.Second, MaxRetryAfter: 2 * time.Second, HTTP: vendorhttp.HTTPClient(4 * time.Second)},
	}
}

// squareError is one entry of Square's {"errors":[…]} body.
type squareError struct {
	Category string `json:"category"`
	Code     string `json:"code"`
	Detail   string `json:"detail"`
	Field    string `json:"field"`
}

// apiError explains a failed call with Square's own words.
func apiError(op string, err error) error {
	var se *vendorhttp.StatusError
	if errors.As(err, &se) {
		var body struct {
			Errors []squareError `json:"errors"`
		}
		if json.Unmarshal(se.Body, &body) == nil && len(body.Errors) > 0 {
			e := body.Errors[0]
			return &APIError{Op: op, Status: se.Status, Code: e.Code, Detail: e.Detail}
		}
		return &APIError{Op: op, Status: se.Status, Detail: se.Error()}
	}
	return fmt.Errorf("square %s: %w", op, err)
}

// APIError is a non-2xx answer from Square.
type APIError struct {
	Op     string
	Status int
	Code   string
	Detail string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("square %s: HTTP %d %s %s", e.Op, e.Status, e.Code, e.Detail)
}

func (a *api) call(ctx context.Context, client *vendorhttp.Client, method, path string, body any, out any) error {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return err
		}
	}
	resp, err := client.Do(ctx, func(ctx context.Context) (*http.Request, error) {
		var rd *bytes.Reader
		if raw != nil {
			rd = bytes.NewReader(raw)
		}
		var req *http.Request
		var err error
		if rd != nil {
			req, err = http.NewRequestWithContext(ctx, method, a.base+path, rd)
		} else {
			req, err = http.NewRequestWithContext(ctx, method, a.base+path, nil)
		}
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+a.token)
		req.Header.Set("Square-Version", a.version)
		req.Header.Set("Accept", "application/json")
		if raw != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		return req, nil
	})
	if err != nil {
		return apiError(method+" "+path, err)
	}
	if out != nil {
		if err := json.Unmarshal(resp.Body, out); err != nil {
			return fmt.Errorf("square %s %s: unexpected answer: %w", method, path, err)
		}
	}
	return nil
}

// retrieveOrder is RetrieveOrder: GET /v2/orders/{order_id}.
func (a *api) retrieveOrder(ctx context.Context, id string) (*order, error) {
	var out struct {
		Order *order `json:"order"`
	}
	if err := a.call(ctx, a.quick, http.MethodGet, "/v2/orders/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	if out.Order == nil {
		return nil, &APIError{Op: "GET /v2/orders/" + id, Status: 404, Code: "NOT_FOUND"}
	}
	return out.Order, nil
}

// retrieveCustomer is RetrieveCustomer: GET /v2/customers/{customer_id}.
func (a *api) retrieveCustomer(ctx context.Context, id string) (*customer, error) {
	var out struct {
		Customer *customer `json:"customer"`
	}
	if err := a.call(ctx, a.quick, http.MethodGet, "/v2/customers/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	if out.Customer == nil {
		return nil, &APIError{Op: "GET /v2/customers/" + id, Status: 404, Code: "NOT_FOUND"}
	}
	return out.Customer, nil
}

// locations is ListLocations: GET /v2/locations.
func (a *api) locations(ctx context.Context) ([]string, error) {
	var out struct {
		Locations []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"locations"`
	}
	if err := a.call(ctx, a.client, http.MethodGet, "/v2/locations", nil, &out); err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(out.Locations))
	for _, l := range out.Locations {
		ids = append(ids, l.ID)
	}
	return ids, nil
}

func isStatus(err error, status int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == status
}
