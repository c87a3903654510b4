package email

import (
	"strings"

	"golang.org/x/net/html"
)

// HTMLToText turns an HTML email into readable plain text: the text part
// of a multipart/alternative send when only HTML was given, and the text
// of inbound mail that has no text part. Links keep their target in
// parentheses; scripts, styles and the head are dropped.
func HTMLToText(src string) string {
	z := html.NewTokenizer(strings.NewReader(src))
	var b strings.Builder
	skip := 0 // inside script/style/head/title
	var href string
	var linkText strings.Builder
	inLink := false
	newline := func(n int) {
		s := b.String()
		have := len(s) - len(strings.TrimRight(s, "\n"))
		if b.Len() == 0 {
			return
		}
		for ; have < n; have++ {
			b.WriteByte('\n')
		}
	}
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return tidy(b.String())
		case html.TextToken:
			if skip > 0 {
				continue
			}
			t := collapseSpace(string(z.Text()))
			if t == "" {
				continue
			}
			b.WriteString(t)
			if inLink {
				linkText.WriteString(t)
			}
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			name, hasAttr := z.TagName()
			tag := string(name)
			end := tt == html.EndTagToken
			switch tag {
			case "script", "style", "head", "title":
				if tt == html.StartTagToken {
					skip++
				} else if end && skip > 0 {
					skip--
				}
			case "br":
				b.WriteByte('\n')
			case "p", "div", "table", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "section", "article", "header", "footer":
				newline(2)
			case "tr", "ul", "ol":
				newline(1)
			case "li":
				if !end {
					newline(1)
					b.WriteString("- ")
				}
			case "td", "th":
				if end {
					b.WriteByte(' ')
				}
			case "hr":
				newline(1)
				b.WriteString("----")
				newline(1)
			case "a":
				if !end {
					href, inLink = "", true
					linkText.Reset()
					for hasAttr {
						var k, v []byte
						k, v, hasAttr = z.TagAttr()
						if string(k) == "href" {
							href = strings.TrimSpace(string(v))
						}
					}
				} else if inLink {
					inLink = false
					txt := strings.TrimSpace(linkText.String())
					if href != "" && !strings.HasPrefix(href, "#") && !strings.HasPrefix(href, "mailto:") && txt != href {
						b.WriteString(" (" + href + ")")
					}
				}
			}
		}
	}
}

// collapseSpace folds runs of whitespace into one space, as browsers do.
func collapseSpace(s string) string {
	if strings.TrimSpace(s) == "" {
		if s == "" {
			return ""
		}
		return " "
	}
	lead := s[0] == ' ' || s[0] == '\n' || s[0] == '\t' || s[0] == '\r'
	last := s[len(s)-1]
	trail := last == ' ' || last == '\n' || last == '\t' || last == '\r'
	out := strings.Join(strings.Fields(s), " ")
	if lead {
		out = " " + out
	}
	if trail {
		out += " "
	}
	return out
}

// tidy trims each line and keeps at most one blank line in a row.
func tidy(s string) string {
	lines := strings.Split(s, "\n")
	out := make([]string, 0, len(lines))
	blank := 0
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" {
			blank++
			if blank > 1 {
				continue
			}
		} else {
			blank = 0
		}
		out = append(out, l)
	}
	return strings.TrimSpace(strings.Join(out, "\n"))
}
