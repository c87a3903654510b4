// Package lift compares two groups of customers (the treated and a
// holdout, or one A/B arm and the others) honestly at small-shop volumes:
// it says how likely one converts better and by how much, with 95%
// intervals, and refuses to name a winner before there is enough data.
//
// Conversion is Bayesian: each group's conversion rate has a Beta-Binomial
// posterior from a uniform Beta(1,1) prior; the probability that the
// treated group beats the control, and the 95% credible intervals of the
// absolute and relative lift, come from Monte Carlo draws of both
// posteriors with a fixed seed (the same data always gives the same
// answer). Revenue per customer uses a normal approximation of the
// difference of means (Welch's standard error), which needs only each
// group's count, sum and sum of squares, so SQL can aggregate it.
//
// It is pure: no I/O, no clock.
package lift

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// The minimum data before a verdict: each group needs at least
// MinCustomers customers and MinConversions conversions. Below it the
// verdict is NotEnoughData, whatever the numbers look like.
const (
	MinCustomers   = 100
	MinConversions = 10
)

// Confidence is how sure the verdict must be to name the better group.
const Confidence = 0.95

// NotEnoughData is the verdict below the minimum.
const NotEnoughData = "not enough data yet"

// draws is the number of Monte Carlo draws per posterior.
const draws = 20000

// seed fixes the draws: a comparison is a function of its inputs.
const seed = 20261130

// Group is one side of a comparison. RevenueSq is the sum of each
// customer's revenue squared (for the variance).
type Group struct {
	Customers   int     `json:"customers"`
	Conversions int     `json:"conversions"`
	Revenue     float64 `json:"revenue"`
	RevenueSq   float64 `json:"-"`
}

// Interval is an estimate with its 95% interval.
type Interval struct {
	Estimate float64 `json:"estimate"`
	Low      float64 `json:"low"`
	High     float64 `json:"high"`
}

// Lift is the difference treated − control, with the probability that
// the treated group is better.
type Lift struct {
	Estimate          float64 `json:"estimate"`
	Low               float64 `json:"low"`
	High              float64 `json:"high"`
	ProbabilityBetter float64 `json:"probability_better"`
	// Relative is the lift as a share of the control's rate (0.2 = 20%
	// more); nil for revenue or when the control rate has no mass.
	Relative *Interval `json:"relative,omitempty"`
}

// Comparison is the full answer.
type Comparison struct {
	Conversion         Lift   `json:"conversion"`
	RevenuePerCustomer Lift   `json:"revenue_per_customer"`
	Enough             bool   `json:"enough_data"`
	Verdict            string `json:"verdict"`
}

// Rate is a group's conversion rate: the posterior mean with its 95%
// credible interval (equal-tailed Beta quantiles).
func Rate(g Group) Interval {
	a, b := posterior(g)
	return Interval{Estimate: a / (a + b), Low: BetaQuantile(0.025, a, b), High: BetaQuantile(0.975, a, b)}
}

// Enough says whether both groups pass the minimum.
func Enough(treated, control Group) bool {
	return treated.Customers >= MinCustomers && control.Customers >= MinCustomers &&
		treated.Conversions >= MinConversions && control.Conversions >= MinConversions
}

// Compare compares the treated group with the control. The names are
// used in the verdict ("treated customers", "held-out customers").
// Comparison needs at least one customer on each side; with none it
// returns nil.
func Compare(treated, control Group, treatedName, controlName string) *Comparison {
	if treated.Customers <= 0 || control.Customers <= 0 {
		return nil
	}
	c := &Comparison{Conversion: conversionLift(treated, control), RevenuePerCustomer: revenueLift(treated, control)}
	c.Enough = Enough(treated, control)
	c.Verdict = verdict(c, treatedName, controlName)
	return c
}

func posterior(g Group) (a, b float64) {
	conv := min(max(g.Conversions, 0), max(g.Customers, 0))
	return float64(conv) + 1, float64(max(g.Customers, 0)-conv) + 1
}

// conversionLift draws both posteriors and reads the lift off the draws.
func conversionLift(t, c Group) Lift {
	at, bt := posterior(t)
	ac, bc := posterior(c)
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	diff := make([]float64, draws)
	rel := make([]float64, draws)
	better := 0
	for i := range diff {
		pt, pc := betaDraw(rng, at, bt), betaDraw(rng, ac, bc)
		diff[i] = pt - pc
		rel[i] = pt/pc - 1 // pc > 0: a Beta draw with a, b ≥ 1 is in (0, 1)
		if pt > pc {
			better++
		}
	}
	sort.Float64s(diff)
	sort.Float64s(rel)
	return Lift{
		Estimate:          at/(at+bt) - ac/(ac+bc),
		Low:               quantile(diff, 0.025),
		High:              quantile(diff, 0.975),
		ProbabilityBetter: float64(better) / draws,
		Relative:          &Interval{Estimate: quantile(rel, 0.5), Low: quantile(rel, 0.025), High: quantile(rel, 0.975)},
	}
}

// revenueLift is the normal approximation of the difference of the mean
// revenue per customer; ProbabilityBetter is P(difference > 0) under it
// (a flat prior on the difference).
func revenueLift(t, c Group) Lift {
	mt, vt := meanVar(t)
	mc, vc := meanVar(c)
	d := mt - mc
	se := math.Sqrt(vt/float64(t.Customers) + vc/float64(c.Customers))
	if se == 0 {
		p := 0.5
		if d > 0 {
			p = 1
		} else if d < 0 {
			p = 0
		}
		return Lift{Estimate: d, Low: d, High: d, ProbabilityBetter: p}
	}
	return Lift{Estimate: d, Low: d - z975*se, High: d + z975*se, ProbabilityBetter: NormalCDF(d / se)}
}

// z975 is the standard normal's 97.5% quantile.
const z975 = 1.959963984540054

func meanVar(g Group) (mean, variance float64) {
	n := float64(g.Customers)
	mean = g.Revenue / n
	if g.Customers > 1 {
		variance = math.Max(0, (g.RevenueSq-n*mean*mean)/(n-1))
	}
	return mean, variance
}

// verdict says it in words, naming a better group only past Confidence
// and the minimum. Probabilities are rounded down so 94.6% never reads
// as 95%.
func verdict(c *Comparison, treated, control string) string {
	if !c.Enough {
		return NotEnoughData
	}
	p := c.Conversion.ProbabilityBetter
	var s string
	switch {
	case p >= Confidence:
		s = fmt.Sprintf("%s convert better (%s likely)", treated, pct(p))
	case 1-p >= Confidence:
		s = fmt.Sprintf("%s convert better (%s likely)", control, pct(1-p))
	default:
		return fmt.Sprintf("no clear difference in conversion yet (%s likely that %s convert better)", pct(p), treated)
	}
	r := c.RevenuePerCustomer.ProbabilityBetter
	switch {
	case r >= Confidence:
		s += fmt.Sprintf("; %s bring more revenue per customer (%s likely)", treated, pct(r))
	case 1-r >= Confidence:
		s += fmt.Sprintf("; %s bring more revenue per customer (%s likely)", control, pct(1-r))
	}
	return s
}

// pct says a probability in whole percent, never "100%": draws that all
// agree still leave doubt.
func pct(p float64) string {
	n := int(math.Floor(p * 100))
	if n >= 100 {
		return "over 99%"
	}
	return fmt.Sprintf("%d%%", n)
}

// quantile of sorted samples (nearest rank on the linear interpolation
// grid).
func quantile(sorted []float64, q float64) float64 {
	pos := q * float64(len(sorted)-1)
	i := int(pos)
	if i >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	f := pos - float64(i)
	return sorted[i]*(1-f) + sorted[i+1]*f
}

// betaDraw draws from Beta(a, b) as X/(X+Y) with X ~ Gamma(a), Y ~ Gamma(b).
func betaDraw(rng *rand.Rand, a, b float64) float64 {
	x := gammaDraw(rng, a)
	return x / (x + gammaDraw(rng, b))
}

// gammaDraw draws from Gamma(shape, 1) for shape ≥ 1 (Marsaglia and
// Tsang, 2000); the posteriors here always have shape ≥ 1.
func gammaDraw(rng *rand.Rand, shape float64) float64 {
	d := shape - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := rng.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := rng.Float64()
		if u < 1-0.0331*x*x*x*x || math.Log(u) < 0.5*x*x+d*(1-v+math.Log(v)) {
			return d * v
		}
	}
}

// NormalCDF is the standard normal distribution function.
func NormalCDF(x float64) float64 { return 0.5 * math.Erfc(-x/math.Sqrt2) }
