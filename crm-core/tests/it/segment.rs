//! Property tests of the segment rule language: printing and parsing are
//! inverse (text and JSON), batch evaluation over columns agrees with
//! one-member evaluation on random tables, `not not r == r`, De Morgan on
//! bitmaps, and no input makes the readers panic.
//!
//! 256 cases per property by default; set `PROPTEST_CASES` to change that.

use std::borrow::Cow;
use std::collections::BTreeSet;

use chrono::NaiveDate;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use rust_decimal::Decimal;
use serde_json::{json, Value as Json};

use crm_core::segment::{
    diff, eval_columns, Bitmap, CmpOp, Field, FieldType, FieldValue, MemberColumns, MemberValues, Rule, Value, Window,
    WindowUnit,
};
use crm_core::MemberId;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/segment.txt"))),
        ..ProptestConfig::default()
    }
}

const TEXTS: &[&str] = &["gold", "silver", "basic", "platinum", "vip", "app", "a\"b\\c", "中文", "", "x\ny", "and"];
const LADDER: &[&str] = &["basic", "silver", "gold", "platinum"];

fn base_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 2, 25).unwrap_or_default()
}

// ----- literals ------------------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    prop::sample::select(TEXTS).prop_map(String::from)
}

fn arg() -> impl Strategy<Value = String> {
    prop::sample::select(&["reward", "growth", "vip code", "and", "x_1", "中", "a\"b"][..]).prop_map(String::from)
}

fn int() -> impl Strategy<Value = i64> {
    prop_oneof![8 => -3i64..10, 1 => any::<i64>()]
}

fn money() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        8 => (-300i64..1000, 0u32..4).prop_map(|(m, s)| Decimal::new(m, s)),
        1 => (any::<i64>(), 0u32..29).prop_map(|(m, s)| Decimal::new(m, s)),
    ]
}

fn date() -> impl Strategy<Value = NaiveDate> {
    (0i64..10).prop_map(|d| base_date() + chrono::Duration::days(d))
}

fn window() -> impl Strategy<Value = Window> {
    (1u32..400, prop::sample::select(&[WindowUnit::Days, WindowUnit::Weeks, WindowUnit::Months, WindowUnit::Years][..]))
        .prop_map(|(count, unit)| Window { count, unit })
}

/// A literal already in the form the checker produces for a field of type `ty`.
fn literal(ty: FieldType) -> BoxedStrategy<Value> {
    match ty {
        FieldType::Number => int().prop_map(Value::Int).boxed(),
        FieldType::Money | FieldType::Decimal => money().prop_map(Value::Decimal).boxed(),
        FieldType::Text | FieldType::TextSet => text().prop_map(Value::Text).boxed(),
        FieldType::Date => date().prop_map(Value::Date).boxed(),
        FieldType::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        FieldType::Dynamic => prop_oneof![
            int().prop_map(Value::Int),
            // Whole decimals normalise to integers, so generate fractional ones.
            (-300i64..1000, 1u32..4).prop_map(|(m, s)| Value::Decimal(Decimal::new(m, s))),
            text().prop_map(Value::Text),
            any::<bool>().prop_map(Value::Bool),
            date().prop_map(Value::Date),
        ]
        .boxed(),
        _ => Just(Value::Bool(true)).boxed(),
    }
}

// ----- rules ---------------------------------------------------------------------

fn any_field() -> impl Strategy<Value = Field> {
    let simple = prop::sample::select(vec![
        Field::Name,
        Field::Email,
        Field::Phone,
        Field::Gender,
        Field::Region,
        Field::JoinChannel,
        Field::Birthday,
        Field::JoinedAt,
        Field::Tags,
        Field::Channels,
        Field::Tier,
        Field::Stage,
        Field::DaysSinceLastOrder,
        Field::RfmR,
        Field::RfmF,
        Field::RfmM,
        Field::RfmGroup,
        Field::NpsLast,
        Field::OpenTickets,
    ]);
    prop_oneof![
        4 => simple,
        1 => arg().prop_map(Field::Attr),
        1 => arg().prop_map(Field::Balance),
        1 => window().prop_map(Field::Orders),
        1 => window().prop_map(Field::Spend),
        1 => (arg(), window()).prop_map(|(e, w)| Field::Events(e, w)),
        1 => window().prop_map(Field::BirthdayWithin),
        1 => window().prop_map(Field::Csat),
        1 => window().prop_map(Field::RatingAvg),
        1 => prop_oneof![window().prop_map(Field::Reviews), window().prop_map(Field::Tickets), window().prop_map(Field::Contacts)],
    ]
}

/// The fields of the random tables (one or more of every type).
fn table_fields() -> Vec<Field> {
    vec![
        Field::Tier,
        Field::Region,
        Field::Orders(Window::days(90)),
        Field::DaysSinceLastOrder,
        Field::Spend(Window::days(365)),
        Field::JoinedAt,
        Field::BirthdayWithin(Window::days(7)),
        Field::Tags,
        Field::Attr("level".into()),
        Field::Csat(Window::days(90)),
        Field::NpsLast,
        Field::OpenTickets,
        Field::RatingAvg(Window { count: 1, unit: WindowUnit::Years }),
    ]
}

fn ops() -> impl Strategy<Value = CmpOp> {
    prop::sample::select(&[CmpOp::Eq, CmpOp::Ne, CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge][..])
}

/// A clause that type-checks, for a field drawn from `fields`.
fn clause(fields: BoxedStrategy<Field>) -> impl Strategy<Value = Rule> {
    (fields, 0u8..6, ops(), any::<prop::sample::Index>()).prop_flat_map(|(field, kind, op, _)| {
        let ty = field.field_type();
        let ordered = matches!(
            ty,
            FieldType::Number | FieldType::Money | FieldType::Decimal | FieldType::Date | FieldType::Dynamic
        ) || field == Field::Tier;
        let lit = literal(ty);
        let f = field.clone();
        let exists = Just(Rule::Exists { field: field.clone() }).boxed();
        match (ty, kind) {
            (_, 0) => exists,
            (FieldType::TextSet, _) => lit.prop_map(move |value| Rule::Contains { field: f.clone(), value }).boxed(),
            (FieldType::Bool, 1) => Just(Rule::Is { field: f }).boxed(),
            (FieldType::Text | FieldType::Dynamic, 2) => {
                let lit = if ty == FieldType::Text { literal(FieldType::Text) } else { lit };
                lit.prop_map(move |value| Rule::Contains { field: f.clone(), value }).boxed()
            }
            (_, 3) => {
                prop::collection::vec(lit, 1..4).prop_map(move |values| Rule::In { field: f.clone(), values }).boxed()
            }
            (_, 4) if ordered => {
                (lit.clone(), lit).prop_map(move |(low, high)| Rule::Between { field: f.clone(), low, high }).boxed()
            }
            _ => {
                let op = if ordered || !op.is_ordering() { op } else { CmpOp::Ne };
                lit.prop_map(move |value| Rule::Compare { field: f.clone(), op, value }).boxed()
            }
        }
    })
}

fn rule(fields: BoxedStrategy<Field>) -> impl Strategy<Value = Rule> {
    clause(fields).prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Rule::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Rule::Or),
            inner.prop_map(|r| Rule::Not(Box::new(r))),
        ]
    })
}

fn any_rule() -> impl Strategy<Value = Rule> {
    rule(any_field().boxed())
}

fn table_rule() -> impl Strategy<Value = Rule> {
    rule(prop::sample::select(table_fields()).boxed())
}

// ----- members -------------------------------------------------------------------

fn member_value(ty: FieldType) -> BoxedStrategy<Option<FieldValue<'static>>> {
    let value: BoxedStrategy<FieldValue<'static>> = match ty {
        FieldType::Number => (-3i64..10).prop_map(FieldValue::Int).boxed(),
        FieldType::Money => (-300i64..1000, 0u32..4).prop_map(|(m, s)| FieldValue::Money(Decimal::new(m, s))).boxed(),
        // Means of scores: exact quotients, some with 28 places (the `Exact` column path).
        FieldType::Decimal => {
            (1i64..=50, 1i64..=10).prop_map(|(sum, n)| FieldValue::Money(Decimal::from(sum) / Decimal::from(n))).boxed()
        }
        FieldType::Text => text().prop_map(|s| FieldValue::Text(Cow::Owned(s))).boxed(),
        FieldType::Date => date().prop_map(FieldValue::Date).boxed(),
        FieldType::Bool => any::<bool>().prop_map(FieldValue::Bool).boxed(),
        FieldType::TextSet => prop::collection::btree_set(text(), 0..4)
            .prop_map(|s: BTreeSet<String>| FieldValue::TextSet(Cow::Owned(s)))
            .boxed(),
        _ => {
            let scalar = prop_oneof![
                (-3i64..10).prop_map(Json::from),
                (-30i64..100).prop_map(|m| json!(m as f64 / 10.0)),
                text().prop_map(Json::from),
                any::<bool>().prop_map(Json::from),
                date().prop_map(|d| Json::from(d.to_string())),
                Just(Json::Null),
            ];
            prop_oneof![
                4 => scalar.clone(),
                1 => prop::collection::vec(scalar, 0..3).prop_map(Json::Array),
            ]
            .prop_map(|j| FieldValue::Json(Cow::Owned(j)))
            .boxed()
        }
    };
    prop_oneof![
        8 => value.prop_map(Some),
        2 => Just(None),
        // A source answering with the wrong type counts as missing.
        1 => Just(Some(FieldValue::Bool(true))),
    ]
    .boxed()
}

fn members() -> impl Strategy<Value = Vec<MemberValues>> {
    let row: Vec<_> = table_fields().into_iter().map(|f| member_value(f.field_type())).collect();
    prop::collection::vec(row, 0..70).prop_map(|rows| {
        rows.into_iter()
            .map(|values| {
                let mut m = MemberValues::new().with_tier_ladder(LADDER.iter().copied());
                for (f, v) in table_fields().into_iter().zip(values) {
                    if let Some(v) = v {
                        m.set(f, v);
                    }
                }
                m
            })
            .collect()
    })
}

fn table(rows: &[MemberValues]) -> MemberColumns {
    let ids = (0..rows.len()).map(|i| MemberId(format!("m{i:03}")));
    let mut t = MemberColumns::from_sources(&table_fields(), ids.zip(rows));
    t.set_tier_ladder(LADDER.iter().copied());
    t
}

fn eval(rule: &Rule, t: &MemberColumns) -> Bitmap {
    match eval_columns(rule, t) {
        Ok(b) => b,
        Err(e) => panic!("{rule}: {e}"),
    }
}

// ----- properties ------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn print_then_parse_gives_the_rule(r in any_rule()) {
        let text = r.clone().normalized().to_string();
        let parsed = Rule::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}\n{e}")))?;
        prop_assert_eq!(&parsed, &r.clone().normalized(), "{}", text);
        prop_assert_eq!(parsed.to_string(), text);
    }

    #[test]
    fn json_then_read_gives_the_rule(r in any_rule()) {
        let json = r.to_json();
        let back = Rule::from_json(&json).map_err(|e| TestCaseError::fail(format!("{json}\n{e}")))?;
        prop_assert_eq!(&back, &r.clone().normalized());
        let via_string = Rule::from_json_str(&serde_json::to_string(&r).unwrap_or_default());
        prop_assert_eq!(via_string.ok(), Some(back));
    }

    #[test]
    fn text_json_text_is_identity_on_canonical_text(r in any_rule()) {
        let text = r.normalized().to_string();
        let parsed = Rule::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let again = Rule::from_json(&parsed.to_json()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(again.to_string(), text);
    }

    #[test]
    fn columns_agree_with_one_member_evaluation(r in table_rule(), rows in members()) {
        let t = table(&rows);
        let bits = eval(&r, &t);
        prop_assert_eq!(bits.len(), rows.len());
        for (i, m) in rows.iter().enumerate() {
            prop_assert_eq!(bits.get(i), r.matches(m), "{} on member {}: {:?}", r, i, m);
        }
        // The column builders agree with `from_sources`: rebuild by type.
        prop_assert_eq!(t.members(&bits).len(), bits.count_ones());
    }

    #[test]
    fn double_negation_and_de_morgan(a in table_rule(), b in table_rule(), rows in members()) {
        let t = table(&rows);
        let not = |r: Rule| Rule::Not(Box::new(r));
        prop_assert_eq!(eval(&not(not(a.clone())), &t), eval(&a, &t));
        let mut ea = eval(&a, &t);
        let eb = eval(&b, &t);
        let both = eval(&Rule::And(vec![a.clone(), b.clone()]), &t);
        let either = eval(&Rule::Or(vec![a.clone(), b.clone()]), &t);
        prop_assert_eq!(eval(&not(Rule::And(vec![a.clone(), b.clone()])), &t),
            eval(&Rule::Or(vec![not(a.clone()), not(b.clone())]), &t));
        prop_assert_eq!(eval(&not(Rule::Or(vec![a.clone(), b.clone()])), &t),
            eval(&Rule::And(vec![not(a.clone()), not(b.clone())]), &t));
        let mut or = ea.clone();
        or.or_with(&eb);
        prop_assert_eq!(either, or);
        ea.and_with(&eb);
        prop_assert_eq!(both, ea);
    }

    #[test]
    fn diff_matches_set_difference(prev in prop::collection::btree_set(0u16..50, 0..30),
                                   cur in prop::collection::btree_set(0u16..50, 0..30)) {
        let ids = |s: &BTreeSet<u16>| s.iter().map(|i| MemberId(format!("m{i:02}"))).collect::<Vec<_>>();
        let (entered, exited) = diff(&ids(&prev), &ids(&cur));
        prop_assert_eq!(entered, ids(&cur.difference(&prev).copied().collect()));
        prop_assert_eq!(exited, ids(&prev.difference(&cur).copied().collect()));
    }

    #[test]
    fn any_text_never_panics(s in any::<String>()) {
        let _ = Rule::parse(&s);
    }

    #[test]
    fn rule_shaped_text_never_panics_and_reads_back(
        s in "[a-z_. ()\\[\\]\"',=<>!0-9dmwy#\\n\\\\{}-]{0,60}",
        words in prop::collection::vec(prop::sample::select(&[
            "tier", "==", "\"gold\"", "and", "or", "not", "(", ")", "in", "[", "]", ",", "between", "orders(90d)",
            "spend(1y)", "12.50", "-3", "2024-02-29", "tags", "contains", "exists", "attr.x", "attributes[\"a b\"]",
            "birthday_within(7d)", "rfm.r", "events(\"v\",7d)", "balance(\"reward\")", "true", "\"", "\\u{41}",
            "csat(90d)", "nps_last", "open_tickets", "rating_avg(1y)", "3.5", "reviews(30d)",
        ][..]), 0..14),
    ) {
        for text in [s, words.join(" ")] {
            match Rule::parse(&text) {
                Ok(r) => {
                    let canonical = r.to_string();
                    prop_assert_eq!(Rule::parse(&canonical).ok(), Some(r), "{} -> {}", text, canonical);
                }
                Err(e) => {
                    if e.line > 0 {
                        prop_assert!(e.caret.ends_with('^'), "{:?}", e);
                        prop_assert!(e.column >= 1);
                    }
                }
            }
        }
    }

    #[test]
    fn any_json_never_panics(j in json_value()) {
        if let Ok(r) = Rule::from_json(&j) {
            prop_assert_eq!(Rule::from_json(&r.to_json()).ok(), Some(r));
        }
    }
}

fn json_value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::from),
        any::<i64>().prop_map(Json::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)),
        prop::sample::select(
            &[
                "tier",
                "orders",
                "spend",
                "attr",
                "events",
                "==",
                ">=",
                "in",
                "between",
                "contains",
                "exists",
                "90d",
                "0d",
                "x",
                "12.5",
                "2024-02-30",
                "gold",
                "rfm.group",
                "birthday_within",
            ][..]
        )
        .prop_map(Json::from),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        let key = prop::sample::select(
            &[
                "and",
                "or",
                "not",
                "field",
                "op",
                "value",
                "values",
                "low",
                "high",
                "window",
                "event",
                "name",
                "point_type",
                "decimal",
                "date",
            ][..],
        );
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            prop::collection::btree_map(key, inner, 0..5)
                .prop_map(|m| Json::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

#[test]
fn documented_json_example_reads() {
    let j = json!({"and": [
      {"field": "spend", "window": "365d", "op": ">=", "value": "500.00"},
      {"field": "tier", "op": "in", "values": ["gold", "platinum"]},
      {"field": "orders", "window": "90d", "op": "between", "low": 2, "high": 10},
      {"not": {"field": "tags", "op": "contains", "value": "vip_manual"}},
      {"or": [
        {"field": "events", "event": "add_to_cart", "window": "7d", "op": ">=", "value": 1},
        {"field": "birthday_within", "window": "7d"}
      ]},
      {"field": "attr", "name": "vip code", "op": "exists"},
      {"field": "balance", "point_type": "reward", "op": ">", "value": 1000}
    ]});
    let r = Rule::from_json(&j).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.to_string(),
        "spend(365d) >= 500.00 and tier in (\"gold\", \"platinum\") and orders(90d) between 2 and 10 \
         and not tags contains \"vip_manual\" and (events(\"add_to_cart\", 7d) >= 1 or birthday_within(7d)) \
         and attributes[\"vip code\"] exists and balance(\"reward\") > 1000"
    );
    assert_eq!(r.to_json(), j);
}

#[test]
fn design_example_parses() {
    let r = Rule::parse(
        r#"tier >= "gold" and orders(90d) >= 2 and stage in ["at_risk", "dormant"] and not tag("vip_manual")"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.clause_count(), 4);
    assert_eq!(r.fields(), vec![Field::Tier, Field::Orders(Window::days(90)), Field::Stage, Field::Tags]);
}
