//! The BG/NBD model of repeat purchasing (Fader, Hardie & Lee 2005, "Counting
//! your customers the easy way"): while alive, a customer buys at a Poisson
//! rate λ ~ Gamma(r, α); after every purchase they drop out with probability
//! p ~ Beta(a, b). Fitted by maximum likelihood on (x, t_x, T) per customer.
//!
//! The likelihood is the closed form of the paper (eq. 6), in logs:
//!
//! ```text
//! ln L = ln Γ(r+x) − ln Γ(r) + r ln α + ln B(a, b+x) − ln B(a, b)
//!      + ln( (α+T)^−(r+x) + [x > 0] · a/(b+x−1) · (α+t_x)^−(r+x) )
//! ```
//!
//! maximised over the log-parameters by BFGS with its analytic gradient.

use super::fit_data::FitData;
use super::optimize::{bfgs_first_converged, Tolerance};
use super::special::{digamma, hyp2f1, ln_gamma};
use crate::error::{CrmError, Result};

/// Fitted BG/NBD parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgNbd {
    /// Shape of the purchase-rate gamma.
    pub r: f64,
    /// Scale of the purchase-rate gamma (in periods).
    pub alpha: f64,
    /// Dropout beta, first shape.
    pub a: f64,
    /// Dropout beta, second shape.
    pub b: f64,
}

/// Diagnostics of a maximum-likelihood fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitReport {
    /// Total log-likelihood at the optimum.
    pub log_likelihood: f64,
    /// Customers in the data.
    pub customers: usize,
    /// Distinct rows after merging identical customers.
    pub distinct_rows: usize,
    /// Optimiser iterations and objective evaluations (all restarts).
    pub iterations: usize,
    pub evaluations: usize,
    /// True when the gradient vanished to the tolerance.
    pub converged: bool,
}

/// Check one customer row; `i` names it in the error.
pub(crate) fn check_customer(i: usize, x: f64, t_x: f64, t: f64) -> Result<()> {
    if !(x >= 0.0 && x.is_finite() && x.fract() == 0.0) {
        return Err(CrmError::invalid(format!("frequency[{i}]"), format!("{x} is not a whole number >= 0")));
    }
    if !(t.is_finite() && t >= 0.0) {
        return Err(CrmError::invalid(format!("T[{i}]"), format!("{t} is not a finite age >= 0")));
    }
    if !(t_x >= 0.0 && t_x <= t) {
        return Err(CrmError::invalid(format!("recency[{i}]"), format!("{t_x} is not between 0 and T = {t}")));
    }
    Ok(())
}

fn check_lengths(frequency: &[f64], recency: &[f64], t: &[f64]) -> Result<()> {
    if recency.len() != frequency.len() || t.len() != frequency.len() {
        return Err(CrmError::invalid(
            "recency",
            format!("frequency, recency and T differ in length ({}, {}, {})", frequency.len(), recency.len(), t.len()),
        ));
    }
    if frequency.is_empty() {
        return Err(CrmError::invalid("frequency", "no customers to fit"));
    }
    Ok(())
}

/// Terms of the likelihood that depend on the frequency x alone (and the parameters).
#[derive(Debug, Clone, Copy, Default)]
struct PerX {
    base: f64,
    d_r: f64,
    d_a: f64,
    d_b: f64,
    /// ln a − ln(b+x−1), for x > 0.
    ln_a_bx1: f64,
    /// 1/(b+x−1), for x > 0.
    inv_bx1: f64,
}

/// Mean negative log-likelihood and its gradient in log-parameters.
fn objective(d: &FitData<3>, u: &[f64; 4]) -> (f64, [f64; 4]) {
    objective_with(d, u, &mut Vec::new())
}

/// [`objective`] with a reusable buffer for the per-frequency terms (the optimiser calls
/// it a few hundred times: no allocation per call).
fn objective_with(d: &FitData<3>, u: &[f64; 4], per_x: &mut Vec<PerX>) -> (f64, [f64; 4]) {
    let [r, alpha, a, b] = u.map(f64::exp);
    let (lg_r, lg_b, lg_ab) = (ln_gamma(r), ln_gamma(b), ln_gamma(a + b));
    let (ps_r, ps_b, ps_ab) = (digamma(r), digamma(b), digamma(a + b));
    let (ln_alpha, ln_a) = (alpha.ln(), a.ln());
    let head = -lg_r + r * ln_alpha + lg_ab - lg_b;
    per_x.clear();
    per_x.extend(d.xs.iter().map(|&x| {
        let (lg_rx, lg_bx, lg_abx) = (ln_gamma(r + x), ln_gamma(b + x), ln_gamma(a + b + x));
        let (ps_rx, ps_bx, ps_abx) = (digamma(r + x), digamma(b + x), digamma(a + b + x));
        let bx1 = b + x - 1.0;
        PerX {
            base: head + lg_rx + lg_bx - lg_abx,
            d_r: ps_rx - ps_r + ln_alpha,
            d_a: ps_ab - ps_abx,
            d_b: ps_ab + ps_bx - ps_b - ps_abx,
            ln_a_bx1: if x > 0.0 { ln_a - bx1.ln() } else { 0.0 },
            inv_bx1: if x > 0.0 { 1.0 / bx1 } else { 0.0 },
        }
    }));
    // Sums over the rows: ll, ∂/∂r, ∂/∂α (before the r/α term), ∂/∂a (w4 part), ∂/∂b (w4 part),
    // and the per-x terms weighted once per row.
    let (mut ll, mut g_r, mut g_alpha, mut g_a4, mut g_b4) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_dr, mut sum_da, mut sum_db) = (0.0, 0.0, 0.0);
    for (i, &[x, t_x, t]) in d.rows.iter().enumerate() {
        let (p, w) = (&per_x[d.x_index[i]], d.weight[i]);
        let rx = r + x;
        let inv_at = 1.0 / (alpha + t);
        let ln_at = (alpha + t).ln();
        let a3 = -rx * ln_at;
        sum_dr += w * p.d_r;
        sum_da += w * p.d_a;
        sum_db += w * p.d_b;
        if x > 0.0 {
            let ln_atx = (alpha + t_x).ln();
            let a4 = p.ln_a_bx1 - rx * ln_atx;
            // ln(e^a3 + e^a4) with one exp: the weights are logistic in a4 − a3.
            let (m, diff) = if a3 >= a4 { (a3, a4 - a3) } else { (a4, a3 - a4) };
            let e = diff.exp();
            let s = 1.0 + e;
            let inv_s = 1.0 / s;
            let (w3, w4) = if a3 >= a4 { (inv_s, e * inv_s) } else { (e * inv_s, inv_s) };
            ll += w * (p.base + m + s.ln());
            g_r -= w * (w3 * ln_at + w4 * ln_atx);
            g_alpha -= w * rx * (w3 * inv_at + w4 / (alpha + t_x));
            g_a4 += w * w4;
            g_b4 -= w * w4 * p.inv_bx1;
        } else {
            ll += w * (p.base + a3);
            g_r -= w * ln_at;
            g_alpha -= w * rx * inv_at;
        }
    }
    let n = d.total;
    let g = [sum_dr + g_r, d.total * r / alpha + g_alpha, sum_da + g_a4 / a, sum_db + g_b4];
    let theta = [r, alpha, a, b];
    (-ll / n, std::array::from_fn(|k| -g[k] * theta[k] / n))
}

impl BgNbd {
    /// Fit by maximum likelihood on one row per customer: `frequency` (repeat
    /// purchases, whole numbers), `recency` (`t_x`, first to last purchase) and
    /// `t` (`T`, first purchase to the end of the calibration period), in one time unit.
    pub fn fit(frequency: &[f64], recency: &[f64], t: &[f64]) -> Result<(BgNbd, FitReport)> {
        check_lengths(frequency, recency, t)?;
        let mut rows = Vec::with_capacity(frequency.len());
        for i in 0..frequency.len() {
            check_customer(i, frequency[i], recency[i], t[i])?;
            // t_x is irrelevant without repeats: normalise it so such rows merge.
            rows.push([frequency[i], if frequency[i] > 0.0 { recency[i] } else { 0.0 }, t[i]]);
        }
        let data = FitData::new(rows);
        // Start from all-ones (as `lifetimes` does) and two spread-out points.
        let starts = [[0.0; 4], [-1.0, 1.0, -1.0, 1.0], [1.0, 2.5, 0.5, 1.5]];
        // The first start nearly always converges; the others only rescue one that stalls.
        let mut per_x = Vec::with_capacity(data.xs.len());
        let m = bfgs_first_converged(|u| objective_with(&data, u, &mut per_x), &starts, Tolerance::default())
            .ok_or_else(|| CrmError::invalid("frequency", "the likelihood is not finite at any start"))?;
        let [r, alpha, a, b] = m.x.map(f64::exp);
        let report = FitReport {
            log_likelihood: -m.value * data.total,
            customers: frequency.len(),
            distinct_rows: data.rows.len(),
            iterations: m.iterations,
            evaluations: m.evaluations,
            converged: m.converged,
        };
        Ok((BgNbd { r, alpha, a, b }, report))
    }

    /// Log-likelihood of one customer's (x, t_x, T).
    pub fn log_likelihood(&self, x: f64, t_x: f64, t: f64) -> f64 {
        let data = FitData::new(vec![[x, if x > 0.0 { t_x } else { 0.0 }, t]]);
        -objective(&data, &[self.r, self.alpha, self.a, self.b].map(f64::ln)).0
    }

    /// Probability that a customer with history (x, t_x, T) is still alive at T:
    /// `1 / (1 + [x > 0] · a/(b+x−1) · ((α+T)/(α+t_x))^(r+x))`.
    pub fn p_alive(&self, x: f64, t_x: f64, t: f64) -> f64 {
        if x <= 0.0 {
            return 1.0;
        }
        let ln_odds = (self.a / (self.b + x - 1.0)).ln() + (self.r + x) * ((self.alpha + t) / (self.alpha + t_x)).ln();
        1.0 / (1.0 + ln_odds.exp())
    }

    /// The age `T` (periods since the first purchase) at which the P(alive)
    /// of a customer with `x` repeat purchases, the last at `t_x`, falls to
    /// `p` if no purchase comes: [`BgNbd::p_alive`] solved for `T`,
    /// `(α+t_x) · (odds / (a/(b+x−1)))^(1/(r+x)) − α` with `odds = 1/p − 1`.
    /// `None` for `x = 0` (the model keeps such a customer alive for ever);
    /// `t_x` when P(alive) is below `p` already right after the last
    /// purchase. Lifecycle stages on P(alive) read their thresholds here.
    /// Errors name `frequency` (`x`, a whole number >= 0), `recency` (`t_x`,
    /// finite, >= 0) or `p` (strictly between 0 and 1).
    ///
    /// ```
    /// use crm_core::analytics::bgnbd::BgNbd;
    /// let m = BgNbd { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 };
    /// let t = m.alive_until(2.0, 10.0, 0.5)?.unwrap();
    /// assert!((m.p_alive(2.0, 10.0, t) - 0.5).abs() < 1e-9);
    /// assert_eq!(m.alive_until(0.0, 0.0, 0.5)?, None);
    /// assert!(m.alive_until(2.0, 10.0, 1.0).is_err());
    /// # Ok::<(), crm_core::CrmError>(())
    /// ```
    pub fn alive_until(&self, x: f64, t_x: f64, p: f64) -> Result<Option<f64>> {
        if !(x >= 0.0 && x.is_finite() && x.fract() == 0.0) {
            return Err(CrmError::invalid("frequency", format!("{x} is not a whole number >= 0")));
        }
        if !(t_x >= 0.0 && t_x.is_finite()) {
            return Err(CrmError::invalid("recency", format!("{t_x} is not a finite age >= 0")));
        }
        if !(p > 0.0 && p < 1.0) {
            return Err(CrmError::invalid("p", format!("{p} is not a probability strictly between 0 and 1")));
        }
        if x == 0.0 {
            return Ok(None);
        }
        let ln_ratio = ((1.0 / p - 1.0).ln() - (self.a / (self.b + x - 1.0)).ln()) / (self.r + x);
        Ok(Some(((self.alpha + t_x) * ln_ratio.exp() - self.alpha).max(t_x)))
    }

    /// Expected purchases of a new customer in their first `t` periods (eq. 9):
    /// `(a+b−1)/(a−1) · [1 − (α/(α+t))^r ₂F₁(r, b; a+b−1; t/(α+t))]`.
    pub fn expected_purchases(&self, t: f64) -> Result<f64> {
        let Self { r, alpha, a, b } = *self;
        if !(t >= 0.0 && t.is_finite()) {
            return Err(CrmError::invalid("t", format!("{t} is not a finite duration >= 0")));
        }
        let f = hyp2f1(r, b, a + b - 1.0, t / (alpha + t))
            .ok_or_else(|| CrmError::invalid("t", "too long a horizon for the hypergeometric series"))?;
        Ok((a + b - 1.0) / (a - 1.0) * (1.0 - (alpha / (alpha + t)).powf(r) * f))
    }

    /// Expected purchases in the next `t` periods of a customer with history
    /// (x, t_x, T) (eq. 10):
    /// `(a+b+x−1)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x; a+b+x−1; t/(α+T+t))]
    /// / (1 + [x > 0] · a/(b+x−1) · ((α+T)/(α+t_x))^(r+x))`.
    pub fn conditional_expected_purchases(&self, t: f64, x: f64, t_x: f64, t_cal: f64) -> Result<f64> {
        let Self { r, alpha, a, b } = *self;
        check_customer(0, x, t_x, t_cal)?;
        if !(t >= 0.0 && t.is_finite()) {
            return Err(CrmError::invalid("t", format!("{t} is not a finite duration >= 0")));
        }
        let z = t / (alpha + t_cal + t);
        let f = hyp2f1(r + x, b + x, a + b + x - 1.0, z)
            .ok_or_else(|| CrmError::invalid("t", "too long a horizon for the hypergeometric series"))?;
        let head = (a + b + x - 1.0) / (a - 1.0) * (1.0 - ((alpha + t_cal) / (alpha + t_cal + t)).powf(r + x) * f);
        Ok(head * self.p_alive(x, t_x, t_cal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// `alive_until` inverts `p_alive`: at the age it gives, P(alive) is
        /// the level asked for, or already below it right after the last
        /// purchase; before that age it is above.
        #[test]
        fn alive_until_inverts_p_alive(
            (r, alpha, a, b) in (0.05f64..5.0, 0.5f64..50.0, 0.1f64..5.0, 0.1f64..10.0),
            x in 1u32..60,
            t_x in 0.0f64..200.0,
            p in 0.01f64..0.99,
        ) {
            let m = BgNbd { r, alpha, a, b };
            let x = f64::from(x);
            let t = m.alive_until(x, t_x, p).unwrap().unwrap();
            proptest::prop_assert!(t >= t_x);
            if t > t_x {
                proptest::prop_assert!((m.p_alive(x, t_x, t) - p).abs() < 1e-7, "{} at {}", m.p_alive(x, t_x, t), t);
                proptest::prop_assert!(m.p_alive(x, t_x, t_x + (t - t_x) * 0.99) > p - 1e-9);
            } else {
                proptest::prop_assert!(m.p_alive(x, t_x, t_x) <= p + 1e-9);
            }
            proptest::prop_assert_eq!(m.alive_until(0.0, 0.0, p).unwrap(), None);
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let d = FitData::new(vec![[0.0, 0.0, 30.0], [2.0, 10.0, 38.0], [5.0, 20.0, 25.0], [1.0, 1.0, 2.0]]);
        crate::analytics::optimize::assert_gradient_matches_finite_differences(
            |u| objective(&d, u),
            [-0.9, 1.3, -0.2, 0.8],
        );
    }

    #[test]
    fn expectations_agree() {
        let m = BgNbd { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 };
        // A customer with no history is a new customer shifted by T.
        let new = m.expected_purchases(10.0).unwrap();
        let cond = m.conditional_expected_purchases(10.0, 0.0, 0.0, 0.0).unwrap();
        assert!((new - cond).abs() < 1e-12, "{new} vs {cond}");
        assert_eq!(m.p_alive(0.0, 0.0, 30.0), 1.0);
        assert!(m.p_alive(5.0, 5.0, 38.0) < m.p_alive(5.0, 37.0, 38.0));
    }
}
