//! Analytics: RFM, clustering, BG/NBD and Gamma-Gamma.

use std::fs::File;
use std::time::Instant;

use crm_core::analytics::cluster::{kmeans, value_clusters};
use crm_core::analytics::csv::{read_orders, read_summary, OrderCsvOptions};
use crm_core::analytics::orders::{Day, Orders};
use crm_core::analytics::rfm::{rfm, scores_ascending, scores_descending, RfmGroup, RFM_GROUP_BOXES};
use crm_core::analytics::{clv, summarize, BgNbd, ClvOptions, GammaGamma, Period};
use proptest::prelude::*;
use rust_decimal::Decimal;

const SUMMARY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/cdnow_customers_summary.csv");
const SUMMARY_TX: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/cdnow_customers_summary_with_transactions.csv");

fn within(name: &str, got: f64, published: f64, tolerance: f64) {
    let rel = (got / published - 1.0).abs();
    assert!(rel <= tolerance, "{name} = {got}, published {published}: off by {:.3}%", rel * 100.0);
}

// ---- BG/NBD and Gamma-Gamma on the published CDNOW summaries ----

#[test]
fn bgnbd_reproduces_the_published_cdnow_estimates() {
    let s = read_summary(File::open(SUMMARY).unwrap()).unwrap();
    assert_eq!(s.frequency.len(), 2357);
    let started = Instant::now();
    let (m, report) = BgNbd::fit(&s.frequency, &s.recency, &s.t).unwrap();
    let ms = started.elapsed().as_secs_f64() * 1e3;
    eprintln!("BG/NBD {m:?} {report:?} in {ms:.1} ms");
    assert!(report.converged, "{report:?}");
    for (name, got, published) in [("r", m.r, 0.243), ("alpha", m.alpha, 4.414), ("a", m.a, 0.793), ("b", m.b, 2.426)] {
        within(name, got, published, 0.005);
    }
    // The published log-likelihood of this fit is −9582.4.
    assert!((report.log_likelihood + 9582.4).abs() < 0.1, "{}", report.log_likelihood);
}

#[test]
fn gamma_gamma_reproduces_the_published_cdnow_estimates() {
    let s = read_summary(File::open(SUMMARY_TX).unwrap()).unwrap();
    let zbar = s.monetary.as_ref().expect("zbar column");
    let (m, report) = GammaGamma::fit(&s.frequency, zbar).unwrap();
    eprintln!("Gamma-Gamma {m:?} {report:?}");
    assert!(report.converged, "{report:?}");
    assert_eq!(report.customers, 946, "customers with repeat purchases");
    for (name, got, published) in [("p", m.p, 6.25), ("q", m.q, 3.74), ("gamma", m.gamma, 15.44)] {
        within(name, got, published, 0.005);
    }
}

#[test]
fn model_predictions_match_lifetimes_on_cdnow() {
    let bg = BgNbd { r: 0.242593, alpha: 4.413532, a: 0.792919, b: 2.425907 };
    // Customer 1 of the sample (x=2, t_x=30.43, T=38.86), by hand:
    // odds of death = a/(b+x−1) · ((α+T)/(α+t_x))^(r+x) = 0.231449 · 1.24194^2.242593 = 0.37626.
    let p = bg.p_alive(2.0, 30.43, 38.86);
    assert!((p - 1.0 / 1.37626).abs() < 1e-4, "{p}");
    let e = bg.conditional_expected_purchases(1.0, 2.0, 30.43, 38.86).unwrap();
    assert!(e > 0.0 && e < 0.1, "{e}");
    // The unconditional expectation is increasing and concave in t.
    let (e1, e2, e3) = (
        bg.expected_purchases(10.0).unwrap(),
        bg.expected_purchases(20.0).unwrap(),
        bg.expected_purchases(30.0).unwrap(),
    );
    assert!(0.0 < e1 && e1 < e2 && e2 < e3 && e3 - e2 < e2 - e1, "{e1} {e2} {e3}");
    let gg = GammaGamma { p: 6.25, q: 3.74, gamma: 15.44 };
    let value = gg.expected_average_value(2.0, 22.35).unwrap();
    assert!(value > 22.35 && value < gg.expected_average_value(0.0, 0.0).unwrap(), "{value}");
    // CLV grows with margin and horizon, and shrinks with discounting.
    let opts = ClvOptions::default();
    let base = clv(&bg, &gg, 2.0, 30.43, 38.86, 22.35, opts).unwrap();
    assert!(base > 0.0);
    let longer = clv(&bg, &gg, 2.0, 30.43, 38.86, 22.35, ClvOptions { months: 24, ..opts }).unwrap();
    let dearer = clv(&bg, &gg, 2.0, 30.43, 38.86, 22.35, ClvOptions { monthly_discount_rate: 0.05, ..opts }).unwrap();
    let half = clv(&bg, &gg, 2.0, 30.43, 38.86, 22.35, ClvOptions { margin: 0.5, ..opts }).unwrap();
    assert!(longer > base && dearer < base && (half - base / 2.0).abs() < 1e-9, "{base} {longer} {dearer} {half}");
}

#[test]
fn model_inputs_are_checked() {
    let e = BgNbd::fit(&[1.0, 0.5], &[1.0, 0.0], &[2.0, 2.0]).unwrap_err();
    assert_eq!(e.field(), Some("frequency[1]"));
    let e = BgNbd::fit(&[1.0], &[3.0], &[2.0]).unwrap_err();
    assert_eq!(e.field(), Some("recency[0]"));
    let e = BgNbd::fit(&[1.0], &[1.0], &[f64::NAN]).unwrap_err();
    assert_eq!(e.field(), Some("T[0]"));
    assert!(BgNbd::fit(&[], &[], &[]).is_err());
    let e = GammaGamma::fit(&[0.0, 2.0], &[0.0, -1.0]).unwrap_err();
    assert_eq!(e.field(), Some("monetary_value[1]"));
    assert!(GammaGamma::fit(&[0.0], &[0.0]).is_err());
}

// ---- customer summaries from an order history ----

fn orders(rows: &[(&str, &str, &str)]) -> Orders {
    let mut csv = String::from("member_id,order_id,placed_at,amount\n");
    for (i, (m, at, amount)) in rows.iter().enumerate() {
        csv.push_str(&format!("{m},o{i},{at},{amount}\n"));
    }
    read_orders(csv.as_bytes(), OrderCsvOptions::default()).unwrap().orders
}

fn day(date: &str) -> Day {
    crm_core::analytics::orders::day_of_date(chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap())
}

#[test]
fn summary_counts_purchase_days_and_repeat_day_totals() {
    let o = orders(&[
        ("a", "1997-01-01T10:00:00Z", "10.00"),
        ("a", "1997-01-01T18:00:00Z", "5.00"), // same day: one transaction
        ("a", "1997-01-15T12:00:00Z", "20.00"),
        ("a", "1997-01-15T13:00:00Z", "4.00"),
        ("a", "1997-01-29T12:00:00Z", "6.00"),
        ("a", "1997-03-01T12:00:00Z", "99.00"), // after the calibration end
        ("b", "1997-01-08T12:00:00Z", "7.00"),
        ("c", "1997-02-20T12:00:00Z", "1.00"), // first order after the end: left out
    ]);
    let s = summarize(&o, day("1997-02-11"), Period::Week).unwrap();
    assert_eq!(s.member, [0, 1]);
    assert_eq!(s.frequency, [2.0, 0.0]);
    assert_eq!(s.recency, [4.0, 0.0]);
    assert_eq!(s.t, [41.0 / 7.0, 34.0 / 7.0]);
    assert_eq!(s.monetary, [15.0, 0.0]);
    let d = summarize(&o, day("1997-02-11"), Period::Day).unwrap();
    assert_eq!((d.recency[0], d.t[0]), (28.0, 41.0));
}

// ---- RFM ----

#[test]
fn rfm_scores_small_hand_computed_example_with_ties() {
    // members: 0..6; day 100 is as_of.
    let member = [0, 1, 1, 2, 2, 2, 3, 4, 4, 5, 0, 5];
    let day: [Day; 12] = [90, 100, 80, 50, 60, 99, 10, 99, 98, 40, 101, 40];
    let amount = [1000, 500, 500, 300, 300, 400, 10_000, 250, 250, 1000, 9_999, 99];
    let t = rfm(&member, &day, &amount, 7, 2, 100).unwrap();
    // member 6 has no order; member 0's order on day 101 is after as_of.
    assert_eq!(t.member, [0, 1, 2, 3, 4, 5]);
    assert_eq!(t.recency, [10, 0, 1, 90, 1, 60]);
    assert_eq!(t.frequency, [1, 2, 3, 1, 2, 2]);
    assert_eq!(t.monetary_minor, [1000, 1000, 1000, 10_000, 500, 1099]);
    assert_eq!(t.monetary(5), Decimal::new(1099, 2));
    // recency: #strictly larger of {10,0,1,90,1,60}: 10→2, 0→5, 1→3, 90→0, 1→3, 60→1
    //   score = 1 + floor(5·k/6): 2→2, 5→5, 3→3, 0→1, 1→1
    assert_eq!(t.r_score, [2, 5, 3, 1, 3, 1]);
    // frequency {1,2,3,1,2,2}: #smaller 1→0, 2→2, 3→5 ⇒ 1, 2, 5
    assert_eq!(t.f_score, [1, 2, 5, 1, 2, 2]);
    // monetary {1000,1000,1000,10000,500,1099}: #smaller 1000→1, 10000→5, 500→0, 1099→4 ⇒ 1, 5, 1, 4
    assert_eq!(t.m_score, [1, 1, 1, 5, 1, 4]);
    assert_eq!(t.group(1), RfmGroup::PotentialLoyalists); // (5, 2, 1)
    assert_eq!(t.group(3), RfmGroup::Hibernating); // (1, 1, 5): lapsed, but spent much
    assert_eq!(t.group(2), RfmGroup::Loyal); // (3, 5, 1)
    assert_eq!(t.group(0), RfmGroup::Hibernating); // (2, 1, 1)
}

#[test]
fn rfm_rejects_bad_columns() {
    assert_eq!(rfm(&[0], &[1, 2], &[1], 1, 2, 5).unwrap_err().field(), Some("day"));
    assert_eq!(rfm(&[0, 3], &[1, 2], &[1, 1], 2, 2, 5).unwrap_err().field(), Some("member[1]"));
    assert_eq!(rfm(&[0, 0], &[1, 2], &[i64::MAX, 1], 1, 2, 5).unwrap_err().field(), Some("amount[1]"));
    assert!(rfm(&[], &[], &[], 0, 2, 5).unwrap().is_empty());
}

#[test]
fn every_score_triple_is_in_exactly_one_group_box() {
    for r in 1..=5u8 {
        for f in 1..=5u8 {
            for m in 1..=5u8 {
                let inside = |(lo, hi): (u8, u8), v: u8| lo <= v && v <= hi;
                let boxes: Vec<RfmGroup> = RFM_GROUP_BOXES
                    .iter()
                    .filter(|(_, rr, fr, mr)| inside(*rr, r) && inside(*fr, f) && inside(*mr, m))
                    .map(|b| b.0)
                    .collect();
                assert_eq!(boxes.len(), 1, "({r},{f},{m}) is in {boxes:?}");
                assert_eq!(RfmGroup::of(r, f, m), boxes[0]);
            }
        }
    }
    // Every group is reachable.
    for g in RfmGroup::ALL {
        assert!(RFM_GROUP_BOXES.iter().any(|b| b.0 == g), "{g:?}");
    }
    assert_eq!(RfmGroup::of(5, 5, 5), RfmGroup::Champions);
    assert_eq!(RfmGroup::of(1, 1, 1), RfmGroup::Lost);
    assert_eq!(RfmGroup::of(1, 5, 5), RfmGroup::CannotLose);
    assert_eq!(RfmGroup::PotentialLoyalists.name(), "potential_loyalists");
}

/// The score formula, literally: O(n²).
fn naive_scores(values: &[i64], larger_is_better: bool) -> Vec<u8> {
    let n = values.len() as u64;
    values
        .iter()
        .map(|v| {
            let beaten = values.iter().filter(|w| if larger_is_better { *w < v } else { *w > v }).count() as u64;
            (1 + 5 * beaten / n) as u8
        })
        .collect()
}

proptest! {
    #[test]
    fn scores_match_the_naive_formula(values in prop::collection::vec(-20i64..20, 1..200)) {
        let up = scores_ascending(&values);
        let down = scores_descending(&values);
        prop_assert_eq!(&up, &naive_scores(&values, true));
        prop_assert_eq!(&down, &naive_scores(&values, false));
        for i in 0..values.len() {
            prop_assert!((1..=5).contains(&up[i]) && (1..=5).contains(&down[i]));
            for j in 0..values.len() {
                if values[i] == values[j] {
                    prop_assert_eq!(up[i], up[j]);
                    prop_assert_eq!(down[i], down[j]);
                }
                if values[i] < values[j] {
                    prop_assert!(up[i] <= up[j]);
                    prop_assert!(down[i] >= down[j]);
                }
            }
        }
    }

    #[test]
    fn rfm_table_matches_a_per_member_reference(
        orders in prop::collection::vec((0u32..30, 0i32..60, 0i64..10_000), 0..300),
        as_of in 0i32..70,
    ) {
        let member: Vec<u32> = orders.iter().map(|o| o.0).collect();
        let day: Vec<Day> = orders.iter().map(|o| o.1).collect();
        let amount: Vec<i64> = orders.iter().map(|o| o.2).collect();
        let t = rfm(&member, &day, &amount, 30, 2, as_of).unwrap();
        let mut expect = Vec::new();
        for m in 0..30u32 {
            let mine: Vec<_> = orders.iter().filter(|o| o.0 == m && o.1 <= as_of).collect();
            if let Some(last) = mine.iter().map(|o| o.1).max() {
                expect.push((m, (as_of - last) as u32, mine.len() as u32, mine.iter().map(|o| o.2).sum::<i64>()));
            }
        }
        prop_assert_eq!(t.member, expect.iter().map(|e| e.0).collect::<Vec<_>>());
        prop_assert_eq!(&t.recency, &expect.iter().map(|e| e.1).collect::<Vec<_>>());
        prop_assert_eq!(&t.frequency, &expect.iter().map(|e| e.2).collect::<Vec<_>>());
        prop_assert_eq!(&t.monetary_minor, &expect.iter().map(|e| e.3).collect::<Vec<_>>());
        let widen = |v: &[u32]| v.iter().map(|&x| i64::from(x)).collect::<Vec<_>>();
        prop_assert_eq!(t.r_score, naive_scores(&widen(&t.recency), false));
        prop_assert_eq!(t.f_score, naive_scores(&widen(&t.frequency), true));
        prop_assert_eq!(t.m_score, naive_scores(&t.monetary_minor, true));
    }
}

// ---- value clusters ----

#[test]
fn kmeans_is_deterministic_for_a_seed_and_ranks_clusters_by_value() {
    // Members with spread-out RFM values.
    let (mut member, mut day, mut amount) = (Vec::new(), Vec::new(), Vec::new());
    for m in 0..300u32 {
        let orders = 1 + (m * 7919 % 13);
        for k in 0..orders {
            member.push(m);
            day.push(((m * 104_729 + k * 31) % 365) as Day);
            amount.push(i64::from(100 + (m * 7 + k * 13) % 900) * 100);
        }
    }
    let t = rfm(&member, &day, &amount, 300, 2, 400).unwrap();
    let a = value_clusters(&t, 4, 42).unwrap();
    let b = value_clusters(&t, 4, 42).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.sizes.iter().sum::<usize>(), 300);
    assert!(a.sizes.iter().all(|&s| s > 0), "{:?}", a.sizes);
    let value = |c: &[f64; 3]| -c[0] + c[1] + c[2];
    assert!(a.centroids.windows(2).all(|w| value(&w[0]) >= value(&w[1])), "{:?}", a.centroids);
    // Two well-separated blobs are found from any seed.
    let mut points = Vec::new();
    for i in 0..50 {
        let e = f64::from(i % 5) * 0.01;
        points.push([e, e, e]);
        points.push([10.0 + e, 10.0 - e, 10.0]);
    }
    for seed in 0..5 {
        let c = kmeans(&points, 2, seed, 50).unwrap();
        assert_eq!(c.sizes, [50, 50], "seed {seed}");
        assert!(c.assignment.chunks(2).all(|p| p[0] != p[1]));
    }
    assert_eq!(kmeans(&points, 0, 1, 10).unwrap_err().field(), Some("k"));
    assert_eq!(kmeans(&points[..1], 2, 1, 10).unwrap_err().field(), Some("k"));
}
