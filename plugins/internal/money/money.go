// Package money converts vendor amounts into the unified model's
// major-unit numbers without going through binary floating point on the
// way in: Shopify sends decimal strings, Square integer minor units.
package money

import (
	"math/big"
	"strings"
)

// zeroDecimal and threeDecimal list ISO 4217 currencies whose minor unit
// is not 1/100. Everything else has two decimals.
var (
	zeroDecimal = map[string]bool{
		"BIF": true, "CLP": true, "DJF": true, "GNF": true, "ISK": true, "JPY": true, "KMF": true,
		"KRW": true, "PYG": true, "RWF": true, "UGX": true, "UYI": true, "VND": true, "VUV": true,
		"XAF": true, "XOF": true, "XPF": true,
	}
	threeDecimal = map[string]bool{
		"BHD": true, "IQD": true, "JOD": true, "KWD": true, "LYD": true, "OMR": true, "TND": true,
	}
)

// Exponent is the number of decimals of a currency's minor unit.
func Exponent(currency string) int {
	c := strings.ToUpper(strings.TrimSpace(currency))
	switch {
	case zeroDecimal[c]:
		return 0
	case threeDecimal[c]:
		return 3
	}
	return 2
}

// FromMinor turns integer minor units (Square) into a major-unit number.
func FromMinor(amount int64, currency string) float64 {
	r := new(big.Rat).SetFrac(big.NewInt(amount), pow10(Exponent(currency)))
	f, _ := r.Float64()
	return f
}

// ParseDecimal turns a decimal string ("598.94") into a major-unit number
// rounded to the currency's minor unit. ok is false for anything that is not
// a plain decimal number.
func ParseDecimal(s, currency string) (float64, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok || strings.ContainsAny(s, "/eE") {
		return 0, false
	}
	scale := pow10(Exponent(currency))
	minor := new(big.Rat).Mul(r, new(big.Rat).SetInt(scale))
	// round half away from zero to whole minor units
	num, den := minor.Num(), minor.Denom()
	q, m := new(big.Int).QuoRem(num, den, new(big.Int))
	if new(big.Int).Mul(new(big.Int).Abs(m), big.NewInt(2)).Cmp(den) >= 0 {
		if num.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	f, _ := new(big.Rat).SetFrac(q, scale).Float64()
	return f, true
}

func pow10(n int) *big.Int {
	return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
}
