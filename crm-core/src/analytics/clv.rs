//! Customer lifetime value from a fitted BG/NBD (how many purchases) and
//! Gamma-Gamma (how much per purchase), discounted monthly:
//!
//! ```text
//! CLV = margin · E[M | x, z̄] · Σ_{i=1..months} ( E[Y(i·f)] − E[Y((i−1)·f)] ) / (1 + d)^i
//! ```
//!
//! where `E[Y(t)]` is the BG/NBD expected number of purchases in the next `t`
//! periods given the customer's (x, t_x, T), `f` the periods per month, `d` the
//! monthly discount rate and `E[M | x, z̄]` the Gamma-Gamma expected mean
//! transaction value. This is the formula of the `lifetimes` package: the
//! purchases expected in month i are valued and discounted as of the month's end.

use super::bgnbd::BgNbd;
use super::gamma_gamma::GammaGamma;
use crate::error::{CrmError, Result};

/// Horizon, discounting and margin of a CLV.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClvOptions {
    /// Months ahead.
    pub months: u32,
    /// Discount rate per month (0.01 = 1 % a month).
    pub monthly_discount_rate: f64,
    /// Model periods per month (see [`super::summary::Period::per_month`]).
    pub periods_per_month: f64,
    /// Share of revenue that is profit (1.0 for revenue CLV).
    pub margin: f64,
}

impl Default for ClvOptions {
    fn default() -> Self {
        ClvOptions { months: 12, monthly_discount_rate: 0.01, periods_per_month: 365.25 / 12.0 / 7.0, margin: 1.0 }
    }
}

/// The CLV of a customer with `x` repeat purchases of mean value `zbar`, last at
/// `t_x`, observed for `t` periods.
pub fn clv(bg: &BgNbd, gg: &GammaGamma, x: f64, t_x: f64, t: f64, zbar: f64, options: ClvOptions) -> Result<f64> {
    let ClvOptions { months, monthly_discount_rate: d, periods_per_month: f, margin } = options;
    if !(d > -1.0 && d.is_finite()) {
        return Err(CrmError::invalid("monthly_discount_rate", "must be finite and above -1"));
    }
    if !(f > 0.0 && f.is_finite()) {
        return Err(CrmError::invalid("periods_per_month", "must be finite and positive"));
    }
    if !margin.is_finite() {
        return Err(CrmError::invalid("margin", "must be finite"));
    }
    let value = gg.expected_average_value(x, zbar)?;
    let (mut total, mut before) = (0.0, 0.0);
    for i in 1..=months {
        let upto = bg.conditional_expected_purchases(f64::from(i) * f, x, t_x, t)?;
        total += (upto - before) / (1.0 + d).powi(i as i32);
        before = upto;
    }
    Ok(margin * value * total)
}
