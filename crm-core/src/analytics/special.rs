//! Special functions for the customer-value models: ln Γ, digamma and the
//! Gauss hypergeometric series. Written here rather than pulled from a crate
//! because the models need only these three, on positive real arguments.

use std::f64::consts::PI;

/// Lanczos coefficients for g = 7, n = 9 (relative error of Γ below 1e-15).
const LANCZOS_G: f64 = 7.0;
const LANCZOS: [f64; 9] = [
    0.999_999_999_999_809_9,
    676.520_368_121_885_1,
    -1_259.139_216_722_402_8,
    771.323_428_777_653_1,
    -176.615_029_162_140_6,
    12.507_343_278_686_905,
    -0.138_571_095_265_720_12,
    9.984_369_578_019_572e-6,
    1.505_632_735_149_311_6e-7,
];

/// ln |Γ(x)| by the Lanczos approximation, with the reflection formula below 1/2.
///
/// ```
/// use crm_core::analytics::special::ln_gamma;
/// assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-13);
/// assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-13);
/// ```
pub fn ln_gamma(x: f64) -> f64 {
    if x < 0.5 {
        // Γ(x) Γ(1 - x) = π / sin(π x)
        return (PI / (PI * x).sin().abs()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = LANCZOS[0];
    for (i, c) in LANCZOS.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + LANCZOS_G + 0.5;
    0.5 * (2.0 * PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// ln B(a, b) = ln Γ(a) + ln Γ(b) − ln Γ(a + b).
pub fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// The digamma function ψ(x) = d ln Γ(x) / dx for x > 0: the recurrence
/// ψ(x) = ψ(x + 1) − 1/x up to x ≥ 10, then the asymptotic series (error below 1e-14).
pub fn digamma(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 || x.is_infinite() {
        return f64::NAN;
    }
    let (mut x, mut acc) = (x, 0.0);
    while x < 10.0 {
        acc -= 1.0 / x;
        x += 1.0;
    }
    let f = 1.0 / (x * x);
    acc + x.ln() - 0.5 / x - f * (1.0 / 12.0 - f * (1.0 / 120.0 - f * (1.0 / 252.0 - f * (1.0 / 240.0 - f / 132.0))))
}

/// The Gauss hypergeometric function ₂F₁(a, b; c; z) for 0 ≤ z < 1 by its power
/// series, summed until a term no longer changes the sum. `None` when the series
/// does not settle (z too close to 1, or a non-finite term).
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> Option<f64> {
    if !(0.0..1.0).contains(&z) {
        return None;
    }
    let (mut term, mut sum) = (1.0_f64, 1.0_f64);
    for k in 0..10_000_000u32 {
        let k = f64::from(k);
        term *= (a + k) * (b + k) / ((c + k) * (k + 1.0)) * z;
        sum += term;
        if !sum.is_finite() {
            return None;
        }
        if term.abs() <= 1e-16 * sum.abs() {
            return Some(sum);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_gamma_matches_factorials_and_half_integers() {
        let mut fact = 1.0_f64;
        for n in 1..30 {
            assert!((ln_gamma(f64::from(n)) - fact.ln()).abs() < 1e-12 * fact.ln().max(1.0), "n={n}");
            fact *= f64::from(n);
        }
        // Γ(1/2 + n) = (2n)! √π / (4^n n!)
        assert!((ln_gamma(1.5) - (PI.sqrt() / 2.0).ln()).abs() < 1e-14);
        assert!((ln_gamma(0.1) - 2.252_712_651_734_206).abs() < 1e-13);
        assert!((ln_gamma(1e6) - 12_815_504.569_147_612).abs() < 1e-6);
    }

    #[test]
    fn digamma_matches_known_values_and_the_derivative() {
        let euler = 0.577_215_664_901_532_9;
        assert!((digamma(1.0) + euler).abs() < 1e-13, "{}", digamma(1.0) + euler);
        assert!((digamma(0.5) + euler + 2.0 * 2f64.ln()).abs() < 1e-13);
        for x in [0.05, 0.3, 1.7, 4.2, 13.0, 250.0] {
            let h = 1e-5 * x;
            let numeric = (ln_gamma(x + h) - ln_gamma(x - h)) / (2.0 * h);
            assert!((digamma(x) - numeric).abs() < 1e-7 * (1.0 + numeric.abs()), "x={x}");
        }
    }

    #[test]
    fn hyp2f1_matches_closed_forms() {
        // ₂F₁(1, 1; 2; z) = −ln(1 − z) / z
        for z in [0.0_f64, 0.1, 0.5, 0.9, 0.99] {
            let expect = if z == 0.0 { 1.0 } else { -(1.0 - z).ln() / z };
            assert!((hyp2f1(1.0, 1.0, 2.0, z).unwrap() - expect).abs() < 1e-12 * expect, "z={z}");
        }
        assert!(hyp2f1(1.0, 1.0, 2.0, 1.0).is_none());
    }
}
