package lift_test

import (
	"math"
	"strings"
	"testing"

	"github.com/omni/omni/core/lift"
)

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.6f, want %.6f ± %g", what, got, want, tol)
	}
}

// The incomplete beta against closed forms: Beta(1,1) is uniform,
// Beta(a,1) has CDF x^a, Beta(2,2) has CDF 3x²−2x³.
func TestBetaCDFMatchesClosedForms(t *testing.T) {
	for _, x := range []float64{0.01, 0.2, 0.5, 0.73, 0.99} {
		near(t, "I(x;1,1)", lift.BetaCDF(x, 1, 1), x, 1e-12)
		near(t, "I(x;3,1)", lift.BetaCDF(x, 3, 1), x*x*x, 1e-12)
		near(t, "I(x;1,4)", lift.BetaCDF(x, 1, 4), 1-math.Pow(1-x, 4), 1e-12)
		near(t, "I(x;2,2)", lift.BetaCDF(x, 2, 2), 3*x*x-2*x*x*x, 1e-12)
	}
	// I_x(k, n−k+1) = P(Binomial(n, x) ≥ k): n=5, k=2, x=0.3 by hand:
	// 1 − 0.7^5 − 5·0.3·0.7^4 = 1 − 0.16807 − 0.36015 = 0.47178.
	near(t, "I(0.3;2,4)", lift.BetaCDF(0.3, 2, 4), 0.47178, 1e-9)
}

// binomialTail is P(Binomial(n, p) ≥ k), summed term by term.
func binomialTail(n, k int, p float64) float64 {
	s := 0.0
	for i := k; i <= n; i++ {
		lc, _ := math.Lgamma(float64(n + 1))
		li, _ := math.Lgamma(float64(i + 1))
		lni, _ := math.Lgamma(float64(n - i + 1))
		s += math.Exp(lc - li - lni + float64(i)*math.Log(p) + float64(n-i)*math.Log1p(-p))
	}
	return s
}

// Quantiles: closed forms, then the posterior of 10 conversions in 100
// customers, Beta(11, 91), whose 2.5% and 97.5% quantiles q satisfy
// P(Binomial(101, q) ≥ 11) = 0.025 and 0.975, checked by summing the
// binomial, and which lie near the textbook 0.055 and 0.174.
func TestBetaQuantile(t *testing.T) {
	near(t, "Q(0.025;1,1)", lift.BetaQuantile(0.025, 1, 1), 0.025, 1e-12)
	near(t, "Q(0.025;3,1)", lift.BetaQuantile(0.025, 3, 1), math.Cbrt(0.025), 1e-12) // 0.292402
	near(t, "Q(0.5;2,2)", lift.BetaQuantile(0.5, 2, 2), 0.5, 1e-12)

	lo, hi := lift.BetaQuantile(0.025, 11, 91), lift.BetaQuantile(0.975, 11, 91)
	near(t, "tail at low", binomialTail(101, 11, lo), 0.025, 1e-9)
	near(t, "tail at high", binomialTail(101, 11, hi), 0.975, 1e-9)
	near(t, "low", lo, 0.055, 0.002)
	near(t, "high", hi, 0.174, 0.002)

	r := lift.Rate(lift.Group{Customers: 100, Conversions: 10})
	near(t, "rate estimate", r.Estimate, 11.0/102, 1e-12)
	if r.Low != lo || r.High != hi {
		t.Errorf("Rate interval %v, want [%v, %v]", r, lo, hi)
	}
}

// The exact probability that one Beta beats another, against two cases
// done by hand: Beta(2,1) (density 2x) beats a uniform with ∫2x·x dx = 2/3,
// and a uniform beats Beta(2,1) with 1/3; equal posteriors give 1/2.
func TestProbabilityBetterExact(t *testing.T) {
	near(t, "P(Beta(2,1) > U)", lift.ProbabilityBetter(2, 1, 1, 1), 2.0/3, 1e-12)
	near(t, "P(U > Beta(2,1))", lift.ProbabilityBetter(1, 1, 2, 1), 1.0/3, 1e-12)
	near(t, "equal", lift.ProbabilityBetter(21, 181, 21, 181), 0.5, 1e-9)
}

// The Monte Carlo draws agree with the exact sum, and a comparison is a
// function of its inputs (fixed seed).
func TestCompareConversionAgreesWithExactAndIsRepeatable(t *testing.T) {
	tr := lift.Group{Customers: 200, Conversions: 30}
	co := lift.Group{Customers: 200, Conversions: 20}
	c := lift.Compare(tr, co, "treated customers", "held-out customers")
	exact := lift.ProbabilityBetter(31, 171, 21, 181)
	near(t, "P(better)", c.Conversion.ProbabilityBetter, exact, 0.01)
	near(t, "estimate", c.Conversion.Estimate, 31.0/202-21.0/202, 1e-12)
	// Normal approximation of the difference: sd² = Σ ab/((a+b)²(a+b+1)).
	sd := math.Sqrt(31.0*171/(202*202*203) + 21.0*181/(202*202*203))
	near(t, "low", c.Conversion.Low, c.Conversion.Estimate-1.96*sd, 0.006)
	near(t, "high", c.Conversion.High, c.Conversion.Estimate+1.96*sd, 0.006)
	if c.Conversion.Relative == nil || c.Conversion.Relative.Low >= c.Conversion.Relative.High {
		t.Errorf("relative lift %+v", c.Conversion.Relative)
	}
	again := lift.Compare(tr, co, "treated customers", "held-out customers")
	a, b := again.Conversion, c.Conversion
	if *a.Relative != *b.Relative || a.Low != b.Low || a.High != b.High || a.ProbabilityBetter != b.ProbabilityBetter {
		t.Errorf("not repeatable: %+v vs %+v", again.Conversion, c.Conversion)
	}
}

// Revenue per customer by hand: treated revenues 10, 0, 0, 30 (mean 10,
// variance (1000 − 4·100)/3 = 200), control 0, 0, 10, 10 (mean 5,
// variance (200 − 4·25)/3 = 100/3); se = √(200/4 + (100/3)/4) = 7.6376;
// interval 5 ± 1.96·se; P(better) = Φ(5/7.6376) = Φ(0.6547) = 0.7437.
func TestCompareRevenueByHand(t *testing.T) {
	c := lift.Compare(lift.Group{Customers: 4, Conversions: 2, Revenue: 40, RevenueSq: 1000},
		lift.Group{Customers: 4, Conversions: 2, Revenue: 20, RevenueSq: 200}, "a", "b")
	r := c.RevenuePerCustomer
	near(t, "estimate", r.Estimate, 5, 1e-12)
	near(t, "low", r.Low, 5-1.959964*7.637626, 1e-4)
	near(t, "high", r.High, 5+1.959964*7.637626, 1e-4)
	near(t, "P(better)", r.ProbabilityBetter, 0.7437, 1e-4)
	if r.Relative != nil {
		t.Errorf("revenue has a relative lift: %+v", r.Relative)
	}
}

// The verdict never names a winner below the minimum, however lopsided,
// and names one only past 95%.
func TestVerdict(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tr, co lift.Group
		want   string
	}{
		{"few customers", lift.Group{Customers: 99, Conversions: 60}, lift.Group{Customers: 500, Conversions: 10}, lift.NotEnoughData},
		{"few conversions", lift.Group{Customers: 1000, Conversions: 200}, lift.Group{Customers: 1000, Conversions: 9}, lift.NotEnoughData},
		{"treated better", lift.Group{Customers: 1000, Conversions: 150, Revenue: 7500, RevenueSq: 375000},
			lift.Group{Customers: 1000, Conversions: 100, Revenue: 5000, RevenueSq: 250000},
			"treated customers convert better (99% likely); treated customers bring more revenue per customer (99% likely)"},
		{"control better", lift.Group{Customers: 1000, Conversions: 100}, lift.Group{Customers: 1000, Conversions: 150},
			"held-out customers convert better (99% likely)"},
		{"no difference", lift.Group{Customers: 500, Conversions: 50}, lift.Group{Customers: 500, Conversions: 50},
			"no clear difference in conversion yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := lift.Compare(tc.tr, tc.co, "treated customers", "held-out customers")
			if !strings.HasPrefix(c.Verdict, tc.want) {
				t.Errorf("verdict %q, want %q", c.Verdict, tc.want)
			}
			if c.Enough != (tc.want != lift.NotEnoughData) {
				t.Errorf("enough_data %v", c.Enough)
			}
		})
	}
	if lift.Compare(lift.Group{}, lift.Group{Customers: 5}, "a", "b") != nil {
		t.Error("a comparison with an empty group")
	}
}

// Draws that all agree still read "over 99%", never "100%".
func TestVerdictNeverSaysCertain(t *testing.T) {
	c := lift.Compare(lift.Group{Customers: 1000, Conversions: 500}, lift.Group{Customers: 1000, Conversions: 100}, "a", "b")
	if c.Conversion.ProbabilityBetter != 1 || c.Verdict != "a convert better (over 99% likely)" {
		t.Errorf("P %v, verdict %q", c.Conversion.ProbabilityBetter, c.Verdict)
	}
}
