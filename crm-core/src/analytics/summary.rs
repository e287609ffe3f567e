//! Per-customer summaries for the value models, as in the published CDNOW
//! analyses (Fader, Hardie & Lee 2005): purchases are counted per day, so
//! several orders on one day are one transaction.
//!
//! - frequency `x`: distinct purchase days after the first (repeat purchases);
//! - recency `t_x`: from the first to the last purchase day;
//! - age `T`: from the first purchase day to the end of the calibration period;
//! - monetary value `zbar`: the mean of the day totals of the repeat purchase
//!   days (the first day excluded: it is not a repeat transaction), 0 when `x = 0`.
//!
//! `t_x` and `T` are in [`Period`]s.

use super::orders::{Day, Orders};
use crate::error::{CrmError, Result};

/// The time unit of recency and age.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Period {
    #[default]
    Day,
    Week,
}

impl Period {
    /// Length in days.
    pub fn days(self) -> f64 {
        match self {
            Period::Day => 1.0,
            Period::Week => 7.0,
        }
    }

    /// Periods in an average month (365.25 / 12 days): the CLV step.
    pub fn per_month(self) -> f64 {
        365.25 / 12.0 / self.days()
    }
}

/// Frequency, recency, age and mean repeat value per customer (columns).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Member index (into the order history's ids), ascending.
    pub member: Vec<u32>,
    pub frequency: Vec<f64>,
    pub recency: Vec<f64>,
    pub t: Vec<f64>,
    /// Mean repeat day total in currency units (a model input, so `f64`), 0 without repeats.
    pub monetary: Vec<f64>,
}

impl Summary {
    /// Number of customers.
    pub fn len(&self) -> usize {
        self.member.len()
    }

    /// True when there are no customers.
    pub fn is_empty(&self) -> bool {
        self.member.is_empty()
    }
}

/// Summarise the orders placed up to and including `calibration_end`.
/// Customers whose first order is later are left out.
pub fn summarize(orders: &Orders, calibration_end: Day, period: Period) -> Result<Summary> {
    orders.validate()?;
    // Sort (member, day) keys: one O(n log n) pass gives every customer's days in order.
    let mut rows: Vec<(u64, i64)> = Vec::with_capacity(orders.len());
    for i in 0..orders.len() {
        let day = orders.day[i];
        if day <= calibration_end {
            // Offset so days sort as unsigned; the end is at most 2³¹ days after any day.
            let d = (i64::from(day) - i64::from(Day::MIN)) as u64;
            rows.push(((u64::from(orders.member[i]) << 32) | d, orders.amount[i]));
        }
    }
    rows.sort_unstable_by_key(|r| r.0);
    let unit = 10f64.powi(orders.scale as i32);
    let mut s = Summary::default();
    let mut i = 0;
    while i < rows.len() {
        let member = (rows[i].0 >> 32) as u32;
        let day_of = |k: u64| (i128::from(k & 0xffff_ffff) + i128::from(Day::MIN)) as i64;
        let first = day_of(rows[i].0);
        let (mut last, mut repeat_days, mut repeat_total) = (first, 0u64, 0i128);
        while i < rows.len() && (rows[i].0 >> 32) as u32 == member {
            // One purchase day: every order with the same (member, day) key.
            let (key, day) = (rows[i].0, day_of(rows[i].0));
            let mut total = 0i128;
            while i < rows.len() && rows[i].0 == key {
                total += i128::from(rows[i].1);
                i += 1;
            }
            if day != first {
                repeat_days += 1;
                repeat_total += total;
                last = day;
            }
        }
        let span = |to: i64| (to - first) as f64 / period.days();
        s.member.push(member);
        s.frequency.push(repeat_days as f64);
        s.recency.push(span(last));
        s.t.push(span(i64::from(calibration_end)));
        s.monetary.push(if repeat_days == 0 { 0.0 } else { repeat_total as f64 / repeat_days as f64 / unit });
    }
    if s.is_empty() {
        return Err(CrmError::invalid("orders", "no order on or before the calibration end"));
    }
    Ok(s)
}
