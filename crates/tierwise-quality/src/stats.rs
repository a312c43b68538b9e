//! The statistics of the quality bar, shared by `tierwise quality plan` (offline, on outcome
//! data: `tierwise_eval::quality_plan`, whose module doc derives the method) and the
//! shadow-test report ([`crate::report`]).
//!
//! - [`betting_p_value`]: p-value of "the mean is at most m₀" for values in [0, 1], by betting
//!   (Waudby-Smith & Ramdas 2023): valid at every sample size (Ville's inequality), no normal
//!   approximation, no minimum n; for draws without replacement from a finite population or
//!   from a stream.
//! - [`Pair`]: the ratio test of a candidate against a reference on paired scores: ratio ≥ B
//!   ⟺ mean(cᵢ − B·sᵢ) ≥ 0, rescaled to [0, 1] and tested by betting; one-sided bounds by
//!   inverting the test over B.
//! - [`benjamini_hochberg`]: the step-up count at level q (many categories at once).

/// The largest ratio bound searched when inverting the test.
pub const RATIO_MAX: f64 = 4.0;

/// p-value of H0 "the mean of the population is at most `m0`", from `ys` ∈ [0, 1] drawn without
/// replacement, in draw order, from a population of `population` values in [0, 1]: the betting
/// test described in the module doc. `tune` is the level the bet is sized for (the p-value is
/// valid whatever it is): λ_t = √(2 ln(1/tune) / (n σ̂²_{t−1})), the fixed-horizon predictable
/// plug-in of Waudby-Smith & Ramdas, which moved more safe categories in the simulation test
/// than their Kelly-style (aGRAPA) bet.
pub fn betting_p_value(ys: &[f64], m0: f64, population: usize, tune: f64) -> f64 {
    let n = ys.len();
    let log_tune = (1.0 / tune.clamp(1e-12, 0.5)).ln();
    if n == 0 {
        return 1.0;
    }
    let big_n = population.max(n) as f64;
    let mut capital = 1.0f64;
    let mut best = 1.0f64;
    let mut sum = 0.0f64;
    // regularized running mean and variance (WSR's predictable plug-in estimates)
    let mut mu = 0.5f64;
    let mut var_sum = 0.25f64;
    for (t, &y) in ys.iter().enumerate() {
        // the mean of the rows not yet drawn, were the population mean m0
        let m_t = (big_n * m0 - sum) / (big_n - t as f64);
        if m_t < -1e-12 {
            return 0.0;
        }
        let m_t = m_t.clamp(0.0, 1.0);
        let var = var_sum / (t as f64 + 1.0);
        // the fixed-horizon predictable plug-in bet, clipped so every factor stays positive
        let lambda = (2.0 * log_tune / (n as f64 * var))
            .sqrt()
            .min(0.5 / m_t.max(1e-9));
        capital *= 1.0 + lambda * (y - m_t);
        best = best.max(capital);
        sum += y;
        var_sum += (y - mu) * (y - mu);
        mu = (0.5 + sum) / (t as f64 + 2.0);
    }
    // the draws alone already exceed what the null allows
    if sum > big_n * m0 + 1e-9 {
        return 0.0;
    }
    (1.0 / best).min(1.0)
}

/// The tests of one candidate against a reference on paired scores in [0, 1] (the candidate's
/// `c`, the reference's `s`, row by row, in draw order): is the ratio mean(c) / mean(s) at
/// least (or at most) a bar?
#[derive(Debug, Clone, Copy)]
pub struct Pair<'a> {
    pub c: &'a [f64],
    pub s: &'a [f64],
    /// Rows the sample was drawn from without replacement (`usize::MAX` for a stream, e.g.
    /// the gateway's traffic: the null mean then stays put).
    pub population: usize,
    /// Every row was drawn: the ratio is known, the test is exact.
    pub exact: bool,
    /// The level the bets are sized for.
    pub tune: f64,
}

impl Pair<'_> {
    /// p-value of "ratio < b" (small: evidence that ratio ≥ b).
    pub fn p_at_least(&self, b: f64) -> f64 {
        if self.exact {
            let d: f64 = self.c.iter().zip(self.s).map(|(c, s)| c - b * s).sum();
            return if d >= -1e-9 { 0.0 } else { 1.0 };
        }
        let ys: Vec<f64> = self
            .c
            .iter()
            .zip(self.s)
            .map(|(c, s)| (c - b * s + b) / (1.0 + b))
            .collect();
        betting_p_value(&ys, b / (1.0 + b), self.population, self.tune)
    }

    /// p-value of "ratio > b" (small: evidence that ratio ≤ b).
    pub fn p_at_most(&self, b: f64) -> f64 {
        if self.exact {
            let d: f64 = self.c.iter().zip(self.s).map(|(c, s)| b * s - c).sum();
            return if d >= -1e-9 { 0.0 } else { 1.0 };
        }
        let ys: Vec<f64> = self
            .c
            .iter()
            .zip(self.s)
            .map(|(c, s)| (b * s - c + 1.0) / (1.0 + b))
            .collect();
        betting_p_value(&ys, 1.0 / (1.0 + b), self.population, self.tune)
    }

    /// One-sided bounds on the ratio at level `alpha` each, by bisection on the bar.
    pub fn bounds(&self, alpha: f64) -> (f64, Option<f64>) {
        let this = Pair {
            tune: alpha,
            ..*self
        };
        let this = &this;
        let bisect = |ok: &dyn Fn(f64) -> bool, mut lo: f64, mut hi: f64| {
            // 24 halvings of [0, 4]: a bound to 2.4e-7
            for _ in 0..24 {
                let mid = 0.5 * (lo + hi);
                if ok(mid) {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            (lo, hi)
        };
        // lower: the largest b with "ratio ≥ b" proven
        let lower = if this.p_at_least(RATIO_MAX) <= alpha {
            RATIO_MAX
        } else if this.p_at_least(1e-9) > alpha {
            0.0
        } else {
            bisect(&|b| this.p_at_least(b) <= alpha, 1e-9, RATIO_MAX).0
        };
        // upper: the smallest b with "ratio ≤ b" proven
        let upper = if this.p_at_most(RATIO_MAX) > alpha {
            None
        } else if this.p_at_most(0.0) <= alpha {
            Some(0.0)
        } else {
            Some(bisect(&|b| this.p_at_most(b) > alpha, 0.0, RATIO_MAX).1)
        };
        (lower, upper)
    }
}

/// Benjamini–Hochberg: how many of `ps` are selected at level `q`.
pub fn benjamini_hochberg(ps: &[f64], q: f64) -> usize {
    let mut sorted: Vec<f64> = ps.to_vec();
    sorted.sort_by(f64::total_cmp);
    let m = sorted.len() as f64;
    let mut r = 0;
    for (i, p) in sorted.iter().enumerate() {
        if *p <= q * (i + 1) as f64 / m {
            r = i + 1;
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bh_selects_the_step_up_count() {
        assert_eq!(benjamini_hochberg(&[0.01, 0.04, 0.5], 0.1), 2);
        assert_eq!(benjamini_hochberg(&[0.2, 0.3], 0.1), 0);
        assert_eq!(benjamini_hochberg(&[0.09, 0.1], 0.1), 2);
    }

    #[test]
    fn betting_p_value_is_small_far_above_and_one_below() {
        let high = vec![0.9; 100];
        assert!(betting_p_value(&high, 0.5, 10_000, 0.01) < 1e-6);
        let low = vec![0.3; 100];
        assert!((betting_p_value(&low, 0.5, 10_000, 0.01) - 1.0).abs() < 1e-12);
        // the whole population drawn, above the null: impossible under it
        assert_eq!(betting_p_value(&[0.6; 10], 0.5, 10, 0.01), 0.0);
    }

    #[test]
    fn a_stream_population_keeps_the_null_mean() {
        // 60 of 60 equal pairs: ratio 1 is proven above 0.9, not above 1.05
        let c = vec![1.0; 60];
        let p = Pair {
            c: &c,
            s: &c,
            population: usize::MAX,
            exact: false,
            tune: 0.05,
        };
        assert!(p.p_at_least(0.9) < 0.05);
        assert!(p.p_at_least(1.05) > 0.5);
        let (lower, upper) = p.bounds(0.05);
        assert!(lower > 0.9 && lower < 1.0, "{lower}");
        assert!(upper.is_some_and(|u| u > 1.0), "{upper:?}");
    }
}
