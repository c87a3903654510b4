package prefs

import (
	"bytes"
	"html/template"
	"net/http"
	"net/url"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/messaging/customers"
)

// pageData is what the page template shows.
type pageData struct {
	Page     string // confirm | unsubscribed | resubscribed | preferences | invalid
	Shop     string
	Channel  string
	Choices  []choice
	Result   result
	Saved    bool
	Action   string // this page's URL, for its forms
	PrefsURL string
}

func (p *Pages) show(e *core.RequestEvent, status int, d pageData) error {
	d.Shop = customers.Shop(e.App, p.omni.Config.PublicBaseURL()).Name
	d.Action = e.Request.URL.Path
	if d.Page == "confirm" || d.Page == "unsubscribed" || d.Page == "resubscribed" {
		if pid, _, err := p.signer.Verify(e.Request.PathValue("token")); err == nil {
			// Relative: the page is on the same server, whatever public_url says.
			if u, err := url.Parse(p.signer.PreferencesURL(pid)); err == nil {
				d.PrefsURL = u.Path
			}
		}
	}
	return write(e, status, d)
}

// notValid is the answer to a forged, damaged or outdated link, and to a
// link of a customer who was erased: it says nothing about anyone.
func (p *Pages) notValid(e *core.RequestEvent) error {
	d := pageData{Page: "invalid", Shop: customers.Shop(e.App, p.omni.Config.PublicBaseURL()).Name}
	return write(e, http.StatusNotFound, d)
}

func write(e *core.RequestEvent, status int, d pageData) error {
	var b bytes.Buffer
	if err := page.Execute(&b, d); err != nil {
		return err
	}
	h := e.Response.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer") // the token is in the URL
	h.Set("X-Robots-Tag", "noindex")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	e.Response.WriteHeader(status)
	_, err := e.Response.Write(b.Bytes())
	return err
}

var page = template.Must(template.New("page").Funcs(template.FuncMap{"channel": channelName}).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{if eq .Page "invalid"}}Link not valid{{else if eq .Page "preferences"}}Message preferences{{else}}Unsubscribe{{end}} · {{.Shop}}</title>
<style>
  :root { color-scheme: light; }
  body { margin: 0; font: 17px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1a1a1a; background: #f4f4f2; }
  main { max-width: 34rem; margin: 0 auto; padding: 1.5rem 1rem 3rem; }
  header { font-weight: 700; font-size: 1.1rem; padding: 1rem; text-align: center; border-bottom: 1px solid #d6d6d2; background: #fff; }
  .card { background: #fff; border: 1px solid #d6d6d2; border-radius: 10px; padding: 1.25rem 1.25rem 1.5rem; margin-top: 1.25rem; }
  h1 { font-size: 1.4rem; margin: 0 0 .5rem; }
  p { margin: .5rem 0; }
  fieldset { border: 0; padding: 0; margin: 1rem 0; }
  legend { font-weight: 600; margin-bottom: .5rem; }
  .choice { display: flex; align-items: center; gap: .75rem; padding: .75rem 0; border-top: 1px solid #e6e6e2; }
  .choice input { width: 1.4rem; height: 1.4rem; accent-color: #0b5cad; }
  .choice label { flex: 1; cursor: pointer; }
  button { font: inherit; font-weight: 600; padding: .7rem 1.2rem; border-radius: 8px; border: 2px solid #0b5cad; background: #0b5cad; color: #fff; cursor: pointer; min-height: 44px; }
  button.secondary { background: #fff; color: #0b5cad; }
  a { color: #0b5cad; }
  :focus-visible { outline: 3px solid #c2410c; outline-offset: 2px; }
  .status { padding: .75rem 1rem; border-radius: 8px; background: #e7f3e8; border: 1px solid #8bc48f; margin-top: 1rem; }
  .status.error { background: #fdecea; border-color: #e0a19a; }
  .muted { color: #4a4a4a; font-size: .95rem; }
</style>
</head>
<body>
<header>{{.Shop}}</header>
<main>
<div class="card">
{{if eq .Page "invalid"}}
  <h1>This link is not valid</h1>
  <p>It may be incomplete or no longer in use. If you copied it from a message, check that the whole link was copied.</p>
{{else if eq .Page "confirm"}}
  <h1>Unsubscribe from {{channel .Channel}}?</h1>
  <p>You'll stop getting marketing by {{channel .Channel}} from {{.Shop}}. Messages about your orders still reach you.</p>
  <form method="post" action="{{.Action}}">
    <input type="hidden" name="action" value="unsubscribe">
    <button type="submit">Unsubscribe</button>
  </form>
  {{if .PrefsURL}}<p><a href="{{.PrefsURL}}">Choose all your message preferences instead</a></p>{{end}}
{{else if eq .Page "unsubscribed"}}
  {{if .Result.Err}}<div class="status error" role="alert">{{.Result.Err}}</div>{{else}}
  <h1>You're unsubscribed</h1>
  <p role="status">You won't get marketing by {{channel .Channel}} from {{.Shop}} any more. Messages about your orders still reach you.</p>
  {{if not .Result.Applied}}<p class="muted">Your choice is saved and will take effect in a moment.</p>{{end}}
  <form method="post" action="{{.Action}}">
    <input type="hidden" name="action" value="resubscribe">
    <p><strong>Changed your mind?</strong></p>
    <button type="submit" class="secondary">Resubscribe to {{channel .Channel}}</button>
  </form>{{end}}
  {{if .PrefsURL}}<p><a href="{{.PrefsURL}}">Choose all your message preferences</a></p>{{end}}
{{else if eq .Page "resubscribed"}}
  {{if .Result.Err}}<div class="status error" role="alert">{{.Result.Err}}</div>{{else}}
  <h1>You're subscribed again</h1>
  <p role="status">Welcome back: you'll get marketing by {{channel .Channel}} from {{.Shop}}.</p>
  <form method="post" action="{{.Action}}">
    <input type="hidden" name="action" value="unsubscribe">
    <button type="submit" class="secondary">Unsubscribe again</button>
  </form>{{end}}
  {{if .PrefsURL}}<p><a href="{{.PrefsURL}}">Choose all your message preferences</a></p>{{end}}
{{else}}
  <h1>Your message preferences</h1>
  <p>Choose how {{.Shop}} may send you news and offers. Messages about your orders are not affected.</p>
  {{if .Result.Err}}<div class="status error" role="alert">{{.Result.Err}}</div>{{else if .Saved}}<div class="status" role="status">Your preferences are saved.{{if not .Result.Applied}} They take effect in a moment.{{end}}</div>{{end}}
  <form method="post" action="{{.Action}}">
    <fieldset>
      <legend>Send me marketing by</legend>
      {{range .Choices}}
      <div class="choice">
        <input type="checkbox" id="ch-{{.Channel}}" name="{{.Channel}}"{{if .On}} checked{{end}}>
        <label for="ch-{{.Channel}}">{{.Label}}</label>
      </div>
      {{end}}
    </fieldset>
    <button type="submit">Save preferences</button>
  </form>
{{end}}
</div>
</main>
</body>
</html>
`))
