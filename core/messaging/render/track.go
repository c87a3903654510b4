package render

import (
	"bytes"
	"html"
	"strings"

	xhtml "golang.org/x/net/html"
)

// TrackHTML rewrites an email's rendered HTML for open and click tracking:
// every <a href> to an http(s) address for which link returns a new URL
// points there instead, and a 1×1 image loading pixel is added at the end
// of the body. Everything else is copied byte for byte, so the message
// looks exactly as written. link returns "" to leave an address alone
// (the unsubscribe and preference links, which must work without a
// detour).
func TrackHTML(doc string, link func(target string) string, pixel string) string {
	z := xhtml.NewTokenizer(strings.NewReader(doc))
	var out bytes.Buffer
	out.Grow(len(doc) + 512)
	pixelTag := `<img src="` + html.EscapeString(pixel) + `" width="1" height="1" alt="" style="display:block;border:0;width:1px;height:1px">`
	placed := pixel == ""
	for {
		tt := z.Next()
		if tt == xhtml.ErrorToken {
			break // io.EOF: the tokenizer reads a string, nothing else can fail
		}
		raw := z.Raw()
		switch tt {
		case xhtml.StartTagToken, xhtml.SelfClosingTagToken:
			tok := z.Token()
			if tok.Data == "a" {
				if tag, ok := rewriteHref(tok, link); ok {
					out.WriteString(tag)
					continue
				}
			}
		case xhtml.EndTagToken:
			if !placed {
				if name, _ := z.TagName(); string(name) == "body" || string(name) == "html" {
					out.WriteString(pixelTag)
					placed = true
				}
			}
		}
		out.Write(raw)
	}
	if !placed {
		out.WriteString(pixelTag)
	}
	return out.String()
}

// rewriteHref returns the <a> start tag with its href replaced, or false
// when it has no trackable address.
func rewriteHref(tok xhtml.Token, link func(string) string) (string, bool) {
	for i, a := range tok.Attr {
		if a.Namespace != "" || !strings.EqualFold(a.Key, "href") {
			continue
		}
		target := strings.TrimSpace(a.Val)
		lower := strings.ToLower(target)
		if !strings.HasPrefix(lower, "https://") && !strings.HasPrefix(lower, "http://") {
			return "", false // mailto:, tel:, anchors, Liquid left empty
		}
		u := link(target)
		if u == "" {
			return "", false
		}
		tok.Attr[i].Val = u
		return tok.String(), true
	}
	return "", false
}
