//! Value clusters: k-means++ on log-scaled, standardised RFM values, with a
//! seeded PRNG so a run is reproducible bit for bit.
//!
//! Each member becomes the point (ln(1+recency), ln(1+frequency),
//! ln(1+monetary)), every coordinate standardised to mean 0 and standard
//! deviation 1 (the logs tame the long tails of frequency and spend; the
//! standardisation weighs the three equally). Clusters are numbered by
//! decreasing value of their centre, `−recency + frequency + monetary` in
//! standardised units: cluster 0 is the most valuable.

use super::rfm::RfmTable;
use crate::error::{CrmError, Result};

/// SplitMix64 (Steele, Lea & Flood 2014): tiny, fast, and good enough to pick
/// k-means++ seeds; fixed so results do not depend on an outside crate.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// A point of the clustering space.
pub type Point = [f64; 3];

/// The result of a k-means run.
#[derive(Debug, Clone, PartialEq)]
pub struct Clusters {
    /// Cluster of each point (0 = most valuable).
    pub assignment: Vec<u32>,
    /// Centres in the standardised space.
    pub centroids: Vec<Point>,
    /// Points per cluster.
    pub sizes: Vec<usize>,
    /// Sum of squared distances to the assigned centres.
    pub inertia: f64,
    /// Lloyd iterations run.
    pub iterations: usize,
}

fn dist2(a: &Point, b: &Point) -> f64 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)
}

fn nearest(p: &Point, centroids: &[Point]) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (k, c) in centroids.iter().enumerate() {
        let d = dist2(p, c);
        if d < best.1 {
            best = (k, d);
        }
    }
    best
}

/// Log-scaled, standardised RFM points of a table (see the module docs).
pub fn rfm_points(table: &RfmTable) -> Vec<Point> {
    let unit = 10f64.powi(table.scale as i32);
    let mut points: Vec<Point> = (0..table.len())
        .map(|i| {
            [
                f64::from(table.recency[i]).ln_1p(),
                f64::from(table.frequency[i]).ln_1p(),
                (table.monetary_minor[i] as f64 / unit).max(0.0).ln_1p(),
            ]
        })
        .collect();
    standardise(&mut points);
    points
}

/// Shift and scale every coordinate to mean 0, standard deviation 1 (constant ones to 0).
pub fn standardise(points: &mut [Point]) {
    let n = points.len() as f64;
    for k in 0..3 {
        let mean = points.iter().map(|p| p[k]).sum::<f64>() / n;
        let var = points.iter().map(|p| (p[k] - mean).powi(2)).sum::<f64>() / n;
        let sd = var.sqrt();
        for p in points.iter_mut() {
            p[k] = if sd > 0.0 { (p[k] - mean) / sd } else { 0.0 };
        }
    }
}

/// k-means with k-means++ seeding (Arthur & Vassilvitskii 2007) and Lloyd
/// iterations until no point changes cluster (or `max_iterations`).
/// Deterministic for a given `seed`.
pub fn kmeans(points: &[Point], k: usize, seed: u64, max_iterations: usize) -> Result<Clusters> {
    if k == 0 {
        return Err(CrmError::invalid("k", "must be at least 1"));
    }
    if points.len() < k {
        return Err(CrmError::invalid("k", format!("{k} clusters need at least {k} members, got {}", points.len())));
    }
    if points.iter().any(|p| p.iter().any(|v| !v.is_finite())) {
        return Err(CrmError::invalid("points", "every coordinate must be finite"));
    }
    let mut rng = SplitMix64::new(seed);
    // k-means++: the first centre uniformly, each next one with probability ∝ D².
    let mut centroids = vec![points[(rng.next_u64() % points.len() as u64) as usize]];
    let mut d2: Vec<f64> = points.iter().map(|p| dist2(p, &centroids[0])).collect();
    while centroids.len() < k {
        let total: f64 = d2.iter().sum();
        let pick = if total > 0.0 {
            let target = rng.next_f64() * total;
            let mut acc = 0.0;
            d2.iter()
                .position(|&d| {
                    acc += d;
                    acc > target
                })
                .unwrap_or(points.len() - 1)
        } else {
            // Fewer distinct points than k: any point will do.
            (rng.next_u64() % points.len() as u64) as usize
        };
        let c = points[pick];
        centroids.push(c);
        for (d, p) in d2.iter_mut().zip(points) {
            *d = d.min(dist2(p, &c));
        }
    }
    drop(d2);
    let mut assignment = vec![u32::MAX; points.len()];
    let mut iterations = 0;
    loop {
        let mut changed = false;
        for (a, p) in assignment.iter_mut().zip(points) {
            let k = nearest(p, &centroids).0 as u32;
            changed |= *a != k;
            *a = k;
        }
        if !changed || iterations >= max_iterations {
            break;
        }
        iterations += 1;
        let mut sums = vec![[0.0; 3]; k];
        let mut counts = vec![0usize; k];
        for (&a, p) in assignment.iter().zip(points) {
            let s = &mut sums[a as usize];
            s[0] += p[0];
            s[1] += p[1];
            s[2] += p[2];
            counts[a as usize] += 1;
        }
        for j in 0..k {
            // An emptied cluster keeps its centre.
            if counts[j] > 0 {
                centroids[j] = sums[j].map(|s| s / counts[j] as f64);
            }
        }
    }
    // Number clusters by decreasing value of their centre.
    let value = |c: &Point| -c[0] + c[1] + c[2];
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&x, &y| value(&centroids[y]).total_cmp(&value(&centroids[x])).then(x.cmp(&y)));
    let mut rank = vec![0u32; k];
    for (new, &old) in order.iter().enumerate() {
        rank[old] = new as u32;
    }
    let centroids: Vec<Point> = order.iter().map(|&j| centroids[j]).collect();
    let mut sizes = vec![0usize; k];
    let mut inertia = 0.0;
    for (a, p) in assignment.iter_mut().zip(points) {
        *a = rank[*a as usize];
        sizes[*a as usize] += 1;
        inertia += dist2(p, &centroids[*a as usize]);
    }
    Ok(Clusters { assignment, centroids, sizes, inertia, iterations })
}

/// Value clusters of an RFM table: [`kmeans`] on [`rfm_points`], at most 100 iterations.
pub fn value_clusters(table: &RfmTable, k: usize, seed: u64) -> Result<Clusters> {
    kmeans(&rfm_points(table), k, seed, 100)
}
