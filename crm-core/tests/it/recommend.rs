//! Recommendations: properties of the top-k lists (no bought sku when excluded, no
//! duplicates, full length, popularity for strangers, independence of the thread count
//! and of the input order), edge cases, the engine-history builder, and the shared
//! fixture `scenarios/recommend/basic.json` (also run by pytest and node).

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::Value;

use crm_core::recommend::{
    interactions_from_store, InteractionOptions, Interactions, PurchaseWeight, RecommendOptions, Recommender,
};
use crm_core::{Command, Engine, MemoryStore, Order, OrderItem, Program};

/// (member, sku, kind): kind 0 is a purchase, 1..=3 browse, favourite, add_to_cart.
type Row = (u8, u8, u8);

const KINDS: [&str; 3] = ["browse", "favourite", "add_to_cart"];

fn category(sku: u8) -> Option<String> {
    (sku % 4 != 3).then(|| format!("c{}", sku % 3))
}

fn interactions(rows: &[Row], purchase: PurchaseWeight) -> Interactions {
    let mut x = Interactions::new(InteractionOptions { purchase, ..InteractionOptions::default() }).unwrap();
    for &(m, s, kind) in rows {
        let (member, sku) = (format!("m{m}"), format!("s{s}"));
        if kind == 0 {
            x.add_purchase(&member, &sku, category(s).as_deref(), 1 + u32::from(s % 3)).unwrap();
        } else {
            x.add_engagement(&member, &sku, KINDS[kind as usize - 1]).unwrap();
        }
    }
    x
}

fn lists(r: &Recommender, members: u8, k: usize) -> Vec<Vec<(String, u32)>> {
    (0..members)
        .map(|m| {
            r.recommend(&format!("m{m}"), k).into_iter().map(|t| (t.sku, (t.score * 1e4).round() as u32)).collect()
        })
        .collect()
}

fn rows() -> impl Strategy<Value = Vec<Row>> {
    prop::collection::vec((0u8..8, 0u8..12, prop_oneof![3 => Just(0u8), 1 => 1u8..4]), 0..60)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn top_k_lists_are_well_formed(
        rows in rows(),
        k in 0usize..14,
        exclude in any::<bool>(),
        diverse in any::<bool>(),
        quantity in any::<bool>(),
        neighbours in 1usize..6,
    ) {
        let purchase = if quantity { PurchaseWeight::Quantity } else { PurchaseWeight::Binary };
        let x = interactions(&rows, purchase);
        let options = RecommendOptions { neighbours, exclude_bought: exclude, one_per_category: diverse, ..RecommendOptions::default() };
        let r = Recommender::fit(&x, options).unwrap();
        let skus: BTreeSet<u8> = rows.iter().map(|r| r.1).collect();
        for m in 0u8..9 {
            let member = format!("m{m}");
            let top = r.recommend(&member, k);
            let listed: BTreeSet<&str> = top.iter().map(|t| t.sku.as_str()).collect();
            prop_assert_eq!(listed.len(), top.len(), "duplicates in {:?}", top);
            let bought: BTreeSet<u8> = rows.iter().filter(|r| r.0 == m && r.2 == 0).map(|r| r.1).collect();
            let allowed: Vec<u8> = skus.iter().copied().filter(|s| !exclude || !bought.contains(s)).collect();
            if exclude {
                for s in &bought {
                    prop_assert!(!listed.contains(format!("s{s}").as_str()), "bought s{} listed for {}", s, member);
                }
            }
            let candidates = if diverse {
                // Categories as the model has them (an sku only engaged with has none).
                let of = |s: u8| {
                    let sku = format!("s{s}");
                    r.item_of(&sku).and_then(|i| r.item_category(i)).map_or(format!("own-{s}"), str::to_owned)
                };
                let groups: BTreeSet<String> = allowed.iter().map(|&s| of(s)).collect();
                groups.len()
            } else {
                allowed.len()
            };
            prop_assert_eq!(top.len(), k.min(candidates), "{:?}", top);
            if diverse {
                let cats: Vec<&String> = top.iter().filter_map(|t| t.category.as_ref()).collect();
                let distinct: BTreeSet<&&String> = cats.iter().collect();
                prop_assert_eq!(distinct.len(), cats.len());
            }
            // Ranked by score (popularity fill, score 0, comes last), ties by sku.
            for w in top.windows(2) {
                prop_assert!(w[0].score >= w[1].score);
            }
            // A member without history gets the popular skus.
            if !rows.iter().any(|r| r.0 == m) && !diverse {
                let popular: Vec<String> =
                    r.popular_items().iter().take(k).map(|&i| r.item_sku(i).to_owned()).collect();
                prop_assert_eq!(top.iter().map(|t| t.sku.clone()).collect::<Vec<_>>(), popular);
                prop_assert!(top.iter().all(|t| t.score == 0.0));
            }
        }
    }

    #[test]
    fn results_do_not_depend_on_threads_or_input_order(
        rows in rows(),
        k in 1usize..8,
        seed in any::<u64>(),
        diverse in any::<bool>(),
    ) {
        let options = RecommendOptions { neighbours: 3, one_per_category: diverse, ..RecommendOptions::default() };
        let one = Recommender::fit(&interactions(&rows, PurchaseWeight::Binary), RecommendOptions { threads: 1, ..options }).unwrap();
        // Shuffle the rows (Fisher-Yates with a small LCG).
        let mut shuffled = rows.clone();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            shuffled.swap(i, (state >> 33) as usize % (i + 1));
        }
        let many = Recommender::fit(&interactions(&shuffled, PurchaseWeight::Binary), RecommendOptions { threads: 3, ..options }).unwrap();
        prop_assert_eq!(lists(&one, 9, k), lists(&many, 9, k));
        // The batch agrees with one-at-a-time, whatever the thread count.
        let batch = many.recommend_all(k);
        prop_assert_eq!(batch.members(), many.members());
        let ids = many.member_ids();
        for m in 0..batch.members() {
            let from_batch: Vec<String> = batch.of(m).map(|(i, _)| many.item_sku(i).to_owned()).collect();
            let single: Vec<String> = many.recommend(ids.get(m as u32), k).into_iter().map(|t| t.sku).collect();
            prop_assert_eq!(from_batch, single);
        }
        prop_assert_eq!(one.recommend_all(k).items.len(), batch.items.len());
    }
}

/// A generated history large enough for several blocks of the fit (64 skus) and of the
/// batch (2,048 members): members buy mostly within one of four groups of skus.
fn large_history(seed: u64, engagements: bool, purchase: PurchaseWeight) -> Interactions {
    let mut x = Interactions::new(InteractionOptions { purchase, ..InteractionOptions::default() }).unwrap();
    let mut state = seed | 1;
    let mut next = |n: u64| {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % n
    };
    for m in 0..2_300u64 {
        let group = next(4);
        for _ in 0..1 + next(6) {
            let sku = if next(5) == 0 { next(200) } else { group * 50 + next(50) };
            let (member, name) = (format!("m{m}"), format!("s{sku}"));
            if engagements && next(4) == 0 {
                x.add_engagement(&member, &name, KINDS[next(3) as usize]).unwrap();
            } else {
                x.add_purchase(&member, &name, category(sku as u8).as_deref(), 1 + next(3) as u32).unwrap();
            }
        }
    }
    x
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// Over several blocks of skus and members: the neighbour lists and every member's
    /// list are the same, to the bit, on 1, 2 or 3 threads; with exclusion on, no list
    /// holds a sku the member bought.
    #[test]
    fn large_histories_do_not_depend_on_threads_and_never_list_bought_skus(
        seed in any::<u64>(),
        engagements in any::<bool>(),
        quantity in any::<bool>(),
        diverse in any::<bool>(),
    ) {
        let purchase = if quantity { PurchaseWeight::Quantity } else { PurchaseWeight::Binary };
        let x = large_history(seed, engagements, purchase);
        let fit = |threads| {
            let options = RecommendOptions { threads, one_per_category: diverse, ..RecommendOptions::default() };
            Recommender::fit(&x, options).unwrap()
        };
        let one = fit(1);
        let top = one.recommend_all(10);
        for threads in [2, 3] {
            let many = fit(threads);
            for i in 0..one.skus() as u32 {
                let sku = one.item_sku(i);
                prop_assert_eq!(one.similar(sku, 50), many.similar(sku, 50));
            }
            prop_assert_eq!(&many.recommend_all(10), &top);
        }
        let ids = one.member_ids();
        for m in 0..top.members() {
            let member = ids.get(m as u32);
            if !diverse {
                prop_assert_eq!(top.of(m).count(), 10);
            }
            for (item, _) in top.of(m) {
                prop_assert!(!one.bought(member, one.item_sku(item)), "{} bought {}", member, one.item_sku(item));
            }
        }
    }
}

#[test]
fn edge_cases_new_member_everything_bought_k_zero_empty_history() {
    // Empty history: nothing to recommend, to anyone.
    let empty = Recommender::fit(&interactions(&[], PurchaseWeight::Binary), RecommendOptions::default()).unwrap();
    assert!(empty.recommend("anyone", 5).is_empty());
    assert_eq!(empty.recommend_all(5).members(), 0);
    let rows: Vec<Row> = vec![(0, 0, 0), (0, 1, 0), (0, 2, 0), (1, 0, 0), (1, 1, 0), (2, 2, 0), (2, 3, 1)];
    let r = Recommender::fit(&interactions(&rows, PurchaseWeight::Binary), RecommendOptions::default()).unwrap();
    // k = 0: empty lists.
    assert!(r.recommend("m0", 0).is_empty());
    assert!(r.recommend_all(0).items.is_empty());
    // A new member: the most popular skus (s0, s1, s2 have 2 members each, s3 one).
    let new: Vec<String> = r.recommend("stranger", 3).into_iter().map(|t| t.sku).collect();
    assert_eq!(new, ["s0", "s1", "s2"]);
    // m0 bought every sku bought by anyone; s3 was only browsed (by m2), so it is left.
    let top = r.recommend("m0", 5);
    assert_eq!(top.iter().map(|t| t.sku.as_str()).collect::<Vec<_>>(), ["s3"]);
    // A member who bought everything there is gets nothing.
    let all: Vec<Row> = (0..4).map(|s| (0, s, 0)).chain([(1, 0, 0), (1, 1, 0)]).collect();
    let r = Recommender::fit(&interactions(&all, PurchaseWeight::Binary), RecommendOptions::default()).unwrap();
    assert!(r.recommend("m0", 3).is_empty());
    assert!(r.recommend_all(3).of(0).next().is_none());
    // ...unless bought skus may come again.
    let mut again = r.clone();
    again.set_query_options(false, false);
    assert_eq!(again.recommend("m0", 3).len(), 3);
}

#[test]
fn engagements_weigh_less_than_purchases() {
    // m0 bought a and browsed b; others bought (a, c) and (b, d): c should beat d for m0.
    let mut x = Interactions::new(InteractionOptions::default()).unwrap();
    x.add_purchase("m0", "a", None, 1).unwrap();
    x.add_engagement("m0", "b", "browse").unwrap();
    for m in ["m1", "m2"] {
        x.add_purchase(m, "a", None, 1).unwrap();
        x.add_purchase(m, "c", None, 1).unwrap();
        x.add_purchase(m, "b", None, 1).unwrap();
    }
    x.add_purchase("m3", "b", None, 1).unwrap();
    x.add_purchase("m3", "d", None, 1).unwrap();
    let r = Recommender::fit(&x, RecommendOptions::default()).unwrap();
    let top: Vec<String> = r.recommend("m0", 3).into_iter().map(|t| t.sku).collect();
    // b was only browsed: still a candidate (it was not bought).
    assert_eq!(top[0], "c");
    assert!(top.contains(&"b".to_owned()));
    assert!(r.bought("m0", "a") && !r.bought("m0", "b"));
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[test]
fn interactions_from_an_engine_history() {
    let e = Engine::new(Program::default_demo(), MemoryStore::new());
    let now = at("2024-05-01T12:00:00Z");
    let item =
        |sku: &str, qty: u32| OrderItem { sku: sku.into(), category: Some("tea".into()), qty, price: Decimal::ONE };
    let order = |id: &str, member: &str, items: Vec<OrderItem>| {
        let mut o = Order::paid(id, member, now - Duration::days(1), Decimal::from(10));
        o.items = items;
        e.record_order(o, now).unwrap();
    };
    order("o1", "ann", vec![item("green", 1), item("cups", 2)]);
    order("o2", "bob", vec![item("green", 1), item("cups", 1)]);
    order("o3", "cy", vec![item("green", 1)]);
    let mut cancelled = Order::paid("o4", "cy", now - Duration::days(1), Decimal::from(10));
    cancelled.items = vec![item("kettle", 1)];
    cancelled.status = crm_core::OrderStatus::Cancelled;
    e.record_order(cancelled, now).unwrap();
    let engage = |key: &str, member: &str, kind: &str, sku: &str| {
        let c = Command::RecordEngagement {
            member_id: member.into(),
            kind: kind.into(),
            at: Some(now - Duration::hours(1)),
            sku: Some(sku.into()),
            reference: None,
        };
        e.execute(key, c, now).unwrap();
    };
    engage("e1", "cy", "add_to_cart", "honey");
    engage("e2", "cy", "review", "green"); // no weight: skipped
    let x = interactions_from_store(e.store(), InteractionOptions::default()).unwrap();
    assert_eq!((x.members(), x.len()), (3, 6));
    let r = Recommender::fit(&x, RecommendOptions::default()).unwrap();
    // cy bought green, which goes with cups; the cancelled kettle is not a purchase.
    assert_eq!(r.recommend("cy", 1)[0].sku, "cups");
    assert!(!r.bought("cy", "kettle"));
    assert_eq!(r.recommend("cy", 1)[0].category.as_deref(), Some("tea"));
}

/// The shared fixture: interactions in, expected top-k lists out (Rust, Python, Node).
#[test]
fn shared_fixture() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/recommend/basic.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut x = Interactions::new(InteractionOptions::default()).unwrap();
    for p in v["purchases"].as_array().unwrap() {
        let s = |f: &str| p[f].as_str().unwrap().to_owned();
        x.add_purchase(&s("member_id"), &s("sku"), p["category"].as_str(), p["qty"].as_u64().unwrap() as u32).unwrap();
    }
    for e in v["engagements"].as_array().unwrap() {
        let s = |f: &str| e[f].as_str().unwrap().to_owned();
        x.add_engagement(&s("member_id"), &s("sku"), &s("kind")).unwrap();
    }
    for case in v["cases"].as_array().unwrap() {
        let options = RecommendOptions {
            neighbours: case["neighbours"].as_u64().unwrap() as usize,
            exclude_bought: case["exclude_bought"].as_bool().unwrap(),
            one_per_category: case["one_per_category"].as_bool().unwrap(),
            ..RecommendOptions::default()
        };
        let r = Recommender::fit(&x, options).unwrap();
        let k = case["k"].as_u64().unwrap() as usize;
        for (member, expected) in case["expected"].as_object().unwrap() {
            let got: Vec<Value> = r
                .recommend(member, k)
                .into_iter()
                .map(|t| serde_json::json!([t.sku, (t.score * 1e4).round() / 1e4]))
                .collect();
            assert_eq!(&Value::Array(got), expected, "{} {member}", case["name"]);
        }
    }
}
