//! Unconstrained minimisation for the maximum-likelihood fits: BFGS with
//! analytic gradients and a backtracking (Armijo) line search, restarted from
//! several points. The models optimise log-parameters, so every point of ℝⁿ is
//! admissible and a non-finite objective only means "step back".

/// Where a minimisation ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Minimum<const N: usize> {
    /// The arg-min.
    pub x: [f64; N],
    /// The objective there.
    pub value: f64,
    /// Largest absolute gradient component there.
    pub gradient_norm: f64,
    /// BFGS iterations, summed over restarts.
    pub iterations: usize,
    /// Objective evaluations, summed over restarts.
    pub evaluations: usize,
    /// True when the gradient fell below the tolerance.
    pub converged: bool,
}

/// Tolerances of [`bfgs`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Stop when every gradient component is below this.
    pub gradient: f64,
    /// Give up after this many iterations.
    pub max_iterations: usize,
    /// Largest step of any coordinate in one iteration (log-parameters: e⁴ ≈ 55×).
    pub max_step: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance { gradient: 1e-9, max_iterations: 500, max_step: 4.0 }
    }
}

fn dot<const N: usize>(a: &[f64; N], b: &[f64; N]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn inf_norm<const N: usize>(a: &[f64; N]) -> f64 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// Minimise `f` (returning the value and the gradient) from `x0` by BFGS.
/// `None` when the objective is not finite at `x0`.
pub fn bfgs<const N: usize>(
    mut f: impl FnMut(&[f64; N]) -> (f64, [f64; N]),
    x0: [f64; N],
    tol: Tolerance,
) -> Option<Minimum<N>> {
    let (mut x, (mut fx, mut g)) = (x0, f(&x0));
    let mut evaluations = 1;
    if !fx.is_finite() || g.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let identity = || {
        let mut h = [[0.0; N]; N];
        for (i, row) in h.iter_mut().enumerate() {
            row[i] = 1.0;
        }
        h
    };
    let mut h = identity();
    let mut iterations = 0;
    while iterations < tol.max_iterations && inf_norm(&g) > tol.gradient {
        iterations += 1;
        let mut p = [0.0; N];
        for i in 0..N {
            p[i] = -dot(&h[i], &g);
        }
        let mut slope = dot(&g, &p);
        if slope.is_nan() || slope >= 0.0 {
            // Not a descent direction: forget the curvature and go downhill.
            h = identity();
            p = g.map(|v| -v);
            slope = dot(&g, &p);
        }
        let mut step = (tol.max_step / inf_norm(&p)).min(1.0);
        let accepted = loop {
            let mut xn = x;
            for i in 0..N {
                xn[i] += step * p[i];
            }
            let (fnew, gnew) = f(&xn);
            evaluations += 1;
            if fnew.is_finite() && gnew.iter().all(|v| v.is_finite()) {
                // Armijo; or, once the decrease is below the rounding noise of the
                // objective, any step that keeps the value and shrinks the gradient
                // (so the end-game is steered by the exact gradient, not by noise).
                let noise = 8.0 * f64::EPSILON * fx.abs().max(1.0);
                if fnew <= fx + 1e-4 * step * slope || (fnew <= fx + noise && inf_norm(&gnew) < inf_norm(&g)) {
                    break Some((xn, fnew, gnew));
                }
            }
            step *= 0.5;
            if step * inf_norm(&p) < 1e-16 {
                break None;
            }
        };
        let Some((xn, fnew, gnew)) = accepted else {
            // No decrease along a descent direction: we are at the floor of the
            // objective's rounding noise. Retry once along the gradient.
            if h != identity() {
                h = identity();
                continue;
            }
            break;
        };
        let mut s = [0.0; N];
        let mut y = [0.0; N];
        for i in 0..N {
            s[i] = xn[i] - x[i];
            y[i] = gnew[i] - g[i];
        }
        let sy = dot(&s, &y);
        if sy > 1e-12 * dot(&s, &s).sqrt() * dot(&y, &y).sqrt() {
            // H ← (I − ρ s yᵀ) H (I − ρ y sᵀ) + ρ s sᵀ
            let rho = 1.0 / sy;
            let mut hy = [0.0; N];
            for i in 0..N {
                hy[i] = dot(&h[i], &y);
            }
            let yhy = dot(&y, &hy);
            for i in 0..N {
                for j in 0..N {
                    h[i][j] += rho * ((1.0 + rho * yhy) * s[i] * s[j] - hy[i] * s[j] - s[i] * hy[j]);
                }
            }
        }
        x = xn;
        fx = fnew;
        g = gnew;
    }
    let gradient_norm = inf_norm(&g);
    Some(Minimum { x, value: fx, gradient_norm, iterations, evaluations, converged: gradient_norm <= tol.gradient })
}

/// [`bfgs`] from each start; the lowest minimum wins (iterations and
/// evaluations are summed). Restarts guard against a start in a flat region
/// where the line search stalls far from the optimum.
pub fn bfgs_restarts<const N: usize>(
    f: impl FnMut(&[f64; N]) -> (f64, [f64; N]),
    starts: &[[f64; N]],
    tol: Tolerance,
) -> Option<Minimum<N>> {
    bfgs_from(f, starts, tol, false)
}

/// [`bfgs`] from each start in turn until one converges (its minimum is returned);
/// when none converges, the lowest minimum. For objectives with one optimum (such as
/// the BG/NBD likelihood in log-parameters), where the later starts only rescue a first
/// start that stalled: a converged first start then costs one run, not one per start.
pub fn bfgs_first_converged<const N: usize>(
    f: impl FnMut(&[f64; N]) -> (f64, [f64; N]),
    starts: &[[f64; N]],
    tol: Tolerance,
) -> Option<Minimum<N>> {
    bfgs_from(f, starts, tol, true)
}

/// [`bfgs`] from the starts in turn, keeping the lowest minimum (iterations
/// and evaluations summed); `stop_when_converged`: stop at the first start
/// that converges.
fn bfgs_from<const N: usize>(
    mut f: impl FnMut(&[f64; N]) -> (f64, [f64; N]),
    starts: &[[f64; N]],
    tol: Tolerance,
    stop_when_converged: bool,
) -> Option<Minimum<N>> {
    let mut best: Option<Minimum<N>> = None;
    let (mut iterations, mut evaluations) = (0, 0);
    for &x0 in starts {
        let Some(m) = bfgs(&mut f, x0, tol) else { continue };
        iterations += m.iterations;
        evaluations += m.evaluations;
        if best.is_none_or(|b| m.value < b.value) {
            best = Some(m);
        }
        if stop_when_converged && m.converged {
            break;
        }
    }
    best.map(|b| Minimum { iterations, evaluations, ..b })
}

/// Test helper: the analytic gradient of `objective` at `u` agrees with
/// central finite differences (step 1e-6) to 1e-7 in every component. The
/// fits trust the gradient blindly, so each model's tests call this.
#[cfg(test)]
pub(crate) fn assert_gradient_matches_finite_differences<const N: usize>(
    objective: impl Fn(&[f64; N]) -> (f64, [f64; N]),
    u: [f64; N],
) {
    let (_, g) = objective(&u);
    for k in 0..N {
        let h = 1e-6;
        let (mut up, mut dn) = (u, u);
        up[k] += h;
        dn[k] -= h;
        let numeric = (objective(&up).0 - objective(&dn).0) / (2.0 * h);
        assert!((g[k] - numeric).abs() < 1e-7, "k={k}: {} vs {numeric}", g[k]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_rosenbrock_minimum() {
        let rosen = |x: &[f64; 2]| {
            let (a, b) = (1.0 - x[0], x[1] - x[0] * x[0]);
            (a * a + 100.0 * b * b, [-2.0 * a - 400.0 * x[0] * b, 200.0 * b])
        };
        let m = bfgs(rosen, [-1.2, 1.0], Tolerance::default()).unwrap();
        assert!(m.converged, "{m:?}");
        assert!((m.x[0] - 1.0).abs() < 1e-8 && (m.x[1] - 1.0).abs() < 1e-8, "{m:?}");
    }

    #[test]
    fn restarts_keep_the_lowest_minimum() {
        // Two wells: x = −1 (value 0) and x = 2 (value −1).
        let f = |x: &[f64; 1]| {
            let v = (x[0] + 1.0).powi(2) * (x[0] - 2.0).powi(2) - (x[0] + 1.0) / 3.0;
            let d = 2.0 * (x[0] + 1.0) * (x[0] - 2.0).powi(2) + 2.0 * (x[0] + 1.0).powi(2) * (x[0] - 2.0) - 1.0 / 3.0;
            (v, [d])
        };
        let m = bfgs_restarts(f, &[[-1.5], [2.5]], Tolerance::default()).unwrap();
        assert!(m.x[0] > 1.5, "{m:?}");
        // Stops at the first converged start: one run's work.
        let first = bfgs_first_converged(f, &[[-1.5], [2.5]], Tolerance::default()).unwrap();
        let one = bfgs(f, [-1.5], Tolerance::default()).unwrap();
        assert!(first.converged && first == one, "{first:?}");
        assert!(bfgs(|_: &[f64; 1]| (f64::NAN, [0.0]), [0.0], Tolerance::default()).is_none());
    }
}
