//! Likelihood inputs shared by the model fits: identical customer rows merged
//! into one weighted row, and the distinct frequencies, so that a likelihood
//! evaluates its ln Γ / ψ terms once per distinct frequency and its other terms
//! once per distinct row.

/// Weighted distinct rows `[x, ...]` and, per row, the index of its `x` in `xs`.
#[derive(Debug, Clone, Default)]
pub(crate) struct FitData<const K: usize> {
    pub rows: Vec<[f64; K]>,
    pub weight: Vec<f64>,
    /// Distinct values of column 0 (the frequency), ascending.
    pub xs: Vec<f64>,
    /// `x_index[i]`: position of `rows[i][0]` in `xs`.
    pub x_index: Vec<usize>,
    /// Sum of the weights (the number of customers).
    pub total: f64,
}

impl<const K: usize> FitData<K> {
    /// Merge identical rows (compared bit for bit after sorting).
    pub fn new(mut rows: Vec<[f64; K]>) -> FitData<K> {
        rows.sort_unstable_by(|a, b| {
            a.iter().zip(b).map(|(x, y)| x.total_cmp(y)).find(|o| o.is_ne()).unwrap_or(std::cmp::Ordering::Equal)
        });
        let mut d = FitData { total: rows.len() as f64, ..FitData::default() };
        for row in rows {
            if d.rows.last() == Some(&row) {
                *d.weight.last_mut().unwrap_or(&mut 0.0) += 1.0;
                continue;
            }
            if d.xs.last() != Some(&row[0]) {
                d.xs.push(row[0]);
            }
            d.x_index.push(d.xs.len() - 1);
            d.rows.push(row);
            d.weight.push(1.0);
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_identical_rows() {
        let d = FitData::new(vec![[1.0, 2.0], [0.0, 0.0], [1.0, 2.0], [1.0, 3.0]]);
        assert_eq!(d.rows, [[0.0, 0.0], [1.0, 2.0], [1.0, 3.0]]);
        assert_eq!(d.weight, [1.0, 2.0, 1.0]);
        assert_eq!(d.xs, [0.0, 1.0]);
        assert_eq!(d.x_index, [0, 1, 1]);
        assert_eq!(d.total, 4.0);
    }
}
