package render

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/osteele/liquid"
	"github.com/osteele/liquid/render"
)

// currencySymbols are the symbols money prints before an amount; other
// currencies print their code after it.
var currencySymbols = map[string]string{
	"USD": "$", "CAD": "CA$", "AUD": "A$", "NZD": "NZ$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹",
	"CHF": "CHF ", "BRL": "R$", "MXN": "MX$",
}

// filterNames are the filters a template may use: the library's standard
// ones and those registerFilters adds (Check reports any other; the
// library itself only finds out when rendering).
var filterNames = map[string]bool{}

func init() {
	for _, f := range strings.Fields(`default json compact concat join map reverse sort first last uniq date abs
		ceil floor modulo minus plus times divided_by round size append capitalize downcase escape escape_once
		newline_to_br prepend remove remove_first replace replace_first sort_natural slice split strip_html
		strip_newlines strip lstrip rstrip truncate truncatewords upcase url_encode url_decode inspect type
		money money_with_currency pluralize raw`) {
		filterNames[f] = true
	}
}

// registerFilters adds the Shopify filters shop owners use that the
// library lacks, and takes away tags that would read files.
func registerFilters(e *liquid.Engine) {
	// money formats an amount in the currency's main unit (Omni's events
	// carry 30.5, not Shopify's 3050 cents): {{ 30.5 | money: "EUR" }} → €30.50.
	e.RegisterFilter("money", func(v any, currency func(string) string) (string, error) {
		f, err := number(v)
		if err != nil {
			return "", err
		}
		return formatMoney(f, strings.ToUpper(strings.TrimSpace(currency(""))), false), nil
	})
	// money_with_currency always ends with the code: $30.50 USD.
	e.RegisterFilter("money_with_currency", func(v any, currency func(string) string) (string, error) {
		f, err := number(v)
		if err != nil {
			return "", err
		}
		return formatMoney(f, strings.ToUpper(strings.TrimSpace(currency(""))), true), nil
	})
	// pluralize: {{ n | pluralize: "item", "items" }}.
	e.RegisterFilter("pluralize", func(v any, one, many string) string {
		if f, err := number(v); err == nil && f == 1 {
			return one
		}
		return many
	})
	// raw marks trusted HTML in an HTML body (see RenderHTML); elsewhere it
	// does nothing.
	e.RegisterFilter("raw", func(v any) any { return v })
	// No file access from a message template.
	for _, tag := range []string{"include", "render", "layout"} {
		name := tag
		e.RegisterTag(name, func(render.Context) (string, error) {
			return "", errors.New("the " + name + " tag is not available in message templates")
		})
	}
}

func number(v any) (float64, error) {
	switch n := v.(type) {
	case nil:
		return 0, nil
	case int:
		return float64(n), nil
	case int64:
		return float64(n), nil
	case float64:
		return n, nil
	case float32:
		return float64(n), nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(n), 64)
		if err != nil {
			return 0, fmt.Errorf("money: %q is not a number", n)
		}
		return f, nil
	}
	return 0, fmt.Errorf("money: %v is not a number", v)
}

func formatMoney(f float64, currency string, withCode bool) string {
	neg := f < 0
	f = math.Abs(f)
	decimals := 2
	if currency == "JPY" {
		decimals = 0
	}
	s := strconv.FormatFloat(f, 'f', decimals, 64)
	intPart, frac, _ := strings.Cut(s, ".")
	// thousands separators
	var b strings.Builder
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	s = b.String()
	if frac != "" {
		s += "." + frac
	}
	sym, ok := currencySymbols[currency]
	switch {
	case currency == "":
	case ok:
		s = sym + s
		if withCode {
			s += " " + currency
		}
	default:
		s += " " + currency
	}
	if neg {
		s = "-" + s
	}
	return s
}
