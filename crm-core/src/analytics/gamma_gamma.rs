//! The Gamma-Gamma model of spend per transaction (Fader, Hardie & Lee 2005,
//! "RFM and CLV: using iso-value curves"): a customer's transaction values are
//! Gamma(p, ν) around their mean p/ν, with ν ~ Gamma(q, γ) across customers.
//! Fitted by maximum likelihood on (x, z̄): repeat purchases and their mean value.
//!
//! Per customer with x > 0 (the others carry no spend information and are skipped):
//!
//! ```text
//! ln L = ln Γ(px+q) − ln Γ(px) − ln Γ(q) + q ln γ + (px−1) ln z̄ + px ln x − (px+q) ln(x z̄ + γ)
//! ```

use super::fit_data::FitData;
use super::optimize::{bfgs_restarts, Tolerance};
use super::special::{digamma, ln_gamma};
use crate::analytics::bgnbd::FitReport;
use crate::error::{CrmError, Result};

/// Fitted Gamma-Gamma parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaGamma {
    pub p: f64,
    pub q: f64,
    pub gamma: f64,
}

/// Mean negative log-likelihood and its gradient in log-parameters; rows are `[x, z̄]`.
fn objective(d: &FitData<2>, u: &[f64; 3]) -> (f64, [f64; 3]) {
    let [p, q, gamma] = u.map(f64::exp);
    let (lg_q, ps_q, ln_gamma_) = (ln_gamma(q), digamma(q), gamma.ln());
    // Per distinct x: ln Γ(px+q) − ln Γ(px), and ψ(px+q), ψ(px).
    let per_x: Vec<(f64, f64, f64)> =
        d.xs.iter()
            .map(|&x| {
                let (px, pxq) = (p * x, p * x + q);
                (ln_gamma(pxq) - ln_gamma(px), digamma(pxq), digamma(px))
            })
            .collect();
    let (mut ll, mut g) = (0.0, [0.0; 3]);
    for (i, &[x, m]) in d.rows.iter().enumerate() {
        let (lg, ps_pxq, ps_px) = per_x[d.x_index[i]];
        let w = d.weight[i];
        let (px, pxq) = (p * x, p * x + q);
        let (ln_m, ln_x, den) = (m.ln(), x.ln(), x * m + gamma);
        let ln_den = den.ln();
        ll += w * (lg - lg_q + q * ln_gamma_ + (px - 1.0) * ln_m + px * ln_x - pxq * ln_den);
        g[0] += w * x * (ps_pxq - ps_px + ln_m + ln_x - ln_den);
        g[1] += w * (ps_pxq - ps_q + ln_gamma_ - ln_den);
        g[2] += w * (q / gamma - pxq / den);
    }
    let n = d.total;
    let theta = [p, q, gamma];
    (-ll / n, std::array::from_fn(|k| -g[k] * theta[k] / n))
}

impl GammaGamma {
    /// Fit by maximum likelihood on `frequency` (repeat purchases) and
    /// `monetary` (their mean value) per customer; customers with frequency 0
    /// are skipped, the others need a positive monetary value.
    pub fn fit(frequency: &[f64], monetary: &[f64]) -> Result<(GammaGamma, FitReport)> {
        if monetary.len() != frequency.len() {
            return Err(CrmError::invalid(
                "monetary_value",
                format!("has {} rows, frequency has {}", monetary.len(), frequency.len()),
            ));
        }
        let mut rows = Vec::with_capacity(frequency.len());
        for (i, (&x, &m)) in frequency.iter().zip(monetary).enumerate() {
            if !(x >= 0.0 && x.is_finite() && x.fract() == 0.0) {
                return Err(CrmError::invalid(format!("frequency[{i}]"), format!("{x} is not a whole number >= 0")));
            }
            if x == 0.0 {
                continue;
            }
            if !(m > 0.0 && m.is_finite()) {
                return Err(CrmError::invalid(format!("monetary_value[{i}]"), format!("{m} is not a positive amount")));
            }
            rows.push([x, m]);
        }
        if rows.is_empty() {
            return Err(CrmError::invalid("frequency", "no customer with repeat purchases to fit"));
        }
        let data = FitData::new(rows);
        let starts = [[0.0; 3], [1.0, 1.0, 2.0], [2.0, 0.5, 3.0]];
        let m = bfgs_restarts(|u| objective(&data, u), &starts, Tolerance::default())
            .ok_or_else(|| CrmError::invalid("monetary_value", "the likelihood is not finite at any start"))?;
        let [p, q, gamma] = m.x.map(f64::exp);
        let report = FitReport {
            log_likelihood: -m.value * data.total,
            customers: data.total as usize,
            distinct_rows: data.rows.len(),
            iterations: m.iterations,
            evaluations: m.evaluations,
            converged: m.converged,
        };
        Ok((GammaGamma { p, q, gamma }, report))
    }

    /// Expected mean transaction value of a customer with `x` repeat purchases
    /// of mean `zbar`: `p (γ + x z̄) / (p x + q − 1)`, a weighted mean of the
    /// population mean `p γ / (q − 1)` and the customer's own mean. Needs q > 1.
    pub fn expected_average_value(&self, x: f64, zbar: f64) -> Result<f64> {
        if self.q <= 1.0 {
            return Err(CrmError::invalid("q", "the mean spend is infinite when q <= 1"));
        }
        if !(x >= 0.0 && x.is_finite() && zbar >= 0.0 && zbar.is_finite()) {
            return Err(CrmError::invalid("monetary_value", "frequency and mean value must be finite and >= 0"));
        }
        let zbar = if x == 0.0 { 0.0 } else { zbar };
        Ok(self.p * (self.gamma + x * zbar) / (self.p * x + self.q - 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradient_matches_finite_differences() {
        let d = FitData::new(vec![[1.0, 20.0], [3.0, 12.5], [3.0, 40.0], [10.0, 5.0]]);
        crate::analytics::optimize::assert_gradient_matches_finite_differences(|u| objective(&d, u), [1.5, 1.2, 2.7]);
    }
}
