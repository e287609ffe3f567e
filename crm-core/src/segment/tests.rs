//! Unit tests: error carets (exact text), type errors naming the field, each
//! operator in both evaluators, and an ignored timing run.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::json;

use super::*;

fn err(text: &str) -> RuleError {
    match Rule::parse(text) {
        Ok(r) => panic!("expected an error for {text:?}, got {r}"),
        Err(e) => e,
    }
}

fn canon(text: &str) -> String {
    Rule::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}")).to_string()
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn set(items: &[&str]) -> FieldValue<'static> {
    FieldValue::TextSet(Cow::Owned(items.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>()))
}

#[test]
fn caret_points_at_the_unexpected_token() {
    let e = err("tier == \"gold\" and\n  orders(90d) >= ");
    assert_eq!(e.kind, RuleErrorKind::Syntax);
    assert_eq!((e.line, e.column), (2, 18));
    assert_eq!(e.message, "expected a value, found end of input");
    assert_eq!(e.caret, "  orders(90d) >= \n                 ^");
    assert_eq!(
        e.to_string(),
        "line 2, column 18: expected a value, found end of input\n  orders(90d) >= \n                 ^"
    );
}

#[test]
fn caret_for_unknown_field_and_bad_window() {
    let e = err("tier == \"gold\" and spnd(90d) > 1");
    assert_eq!(e.message, "unknown field `spnd`");
    assert_eq!(e.caret, "tier == \"gold\" and spnd(90d) > 1\n                   ^");
    let e = err("orders(90x) > 1");
    assert_eq!((e.line, e.column), (1, 8));
    assert_eq!(e.message, "`90x` is not a number or a window (windows are like 90d, 8w, 6m, 1y)");
    assert_eq!(e.caret, "orders(90x) > 1\n       ^");
    let e = err("orders(0d) > 1");
    assert_eq!(e.message, "window `0d` must be between 1 and 4294967295");
    let e = err("(tier == \"gold\"");
    assert_eq!(e.message, "expected `)`, found end of input");
    assert_eq!(e.caret, "(tier == \"gold\"\n               ^");
    let e = err("region == \"north");
    assert_eq!(e.message, "unterminated text literal");
    assert_eq!(e.column, 11);
    let e = err("tier == \"gold\" orders(90d) > 1");
    assert_eq!(e.message, "expected `and`, `or` or end of rule, found `orders`");
    let e = err("tier ~ 1");
    assert_eq!(e.message, "unexpected character `~`");
    let e = err("joined_at > 2024-02-30");
    assert_eq!(e.message, "`2024-02-30` is not a valid date");
}

#[test]
fn caret_counts_characters_not_bytes() {
    let e = err("region == \"华东\" and ?");
    assert_eq!((e.line, e.column), (1, 20));
    assert_eq!(e.caret, "region == \"华东\" and ?\n                   ^");
}

#[test]
fn type_errors_name_the_field() {
    let e = err("tier == \"gold\" and spend(365d) >= \"abc\"");
    assert_eq!(e.kind, RuleErrorKind::Type);
    assert_eq!(e.field.as_deref(), Some("spend(365d)"));
    assert_eq!(e.message, "field `spend(365d)` is money, got text \"abc\"");
    assert_eq!(e.column, 20);
    assert_eq!(e.caret, "tier == \"gold\" and spend(365d) >= \"abc\"\n                   ^");
    let cases = [
        ("orders(90d) >= 1.5", "field `orders(90d)` is number, got decimal 1.5"),
        ("region > \"a\"", "field `region` is text, which has no order; use `==`, `!=` or `in`, not `>`"),
        ("tags == \"vip\"", "field `tags` is a set of text; use `contains` or `exists`, not `==`"),
        ("orders(90d) contains \"x\"", "field `orders(90d)` is number, which does not support `contains`"),
        ("birthday_within(7d) > true", "field `birthday_within(7d)` is bool, which does not support `>`"),
        ("rfm.r", "field `rfm.r` is number, not bool; compare it with a value"),
        ("birthday == 5", "field `birthday` is date, got integer 5"),
        ("tier in (\"gold\", 3)", "field `tier` is text, got integer 3"),
        ("tags contains 3", "field `tags` is a set of text, got integer 3"),
        ("birthday_within(7d) == \"yes\"", "field `birthday_within(7d)` is bool, got text \"yes\""),
    ];
    for (text, message) in cases {
        let e = err(text);
        assert_eq!(e.kind, RuleErrorKind::Type, "{text}");
        assert_eq!(e.message, message, "{text}");
    }
}

#[test]
fn crate_error_carries_position_and_field() {
    let e: crate::CrmError = parse("spend(365d) >= \"abc\"").unwrap_err();
    assert_eq!(e.code(), "rule_error");
    assert_eq!(e.field(), Some("spend(365d)"));
    assert_eq!(
        e.to_string(),
        "invalid rule: line 1, column 1: field `spend(365d)` is money, got text \"abc\"\nspend(365d) >= \"abc\"\n^"
    );
    let e: crate::CrmError = from_json(&json!({"and": [{"field": "tier", "op": "~", "value": 1}]})).unwrap_err();
    assert_eq!(e.to_string(), "invalid rule: and[0].op: unknown operator `~`");
}

#[test]
fn json_errors_carry_the_path() {
    let e = Rule::from_json(&json!({"and": [{"field": "tier", "op": "==", "value": "gold"}, {"field": "spend", "window": "365d", "op": ">=", "value": "abc"}]}))
        .unwrap_err();
    assert_eq!(e.path, "and[1]");
    assert_eq!(e.field.as_deref(), Some("spend(365d)"));
    assert_eq!(e.message, "field `spend(365d)` is money, got text \"abc\"");
    let e = Rule::from_json(&json!({"field": "orders", "op": ">"})).unwrap_err();
    assert_eq!((e.path.as_str(), e.message.as_str()), ("window", "is required"));
    let e = Rule::from_json(&json!({"field": "tier", "op": "==", "value": "gold", "vaule": 1})).unwrap_err();
    assert_eq!((e.path.as_str(), e.message.as_str()), ("vaule", "unexpected key `vaule`"));
    let e = Rule::from_json(&json!({"or": []})).unwrap_err();
    assert_eq!((e.path.as_str(), e.message.as_str()), ("or", "needs at least one rule"));
    let e = Rule::from_json(&json!([1])).unwrap_err();
    assert_eq!(e.path, "$");
    let e = Rule::from_json_str("{").unwrap_err();
    assert_eq!(e.kind, RuleErrorKind::Json);
}

#[test]
fn canonical_text() {
    assert_eq!(canon("TIER = 'gold'   AND Orders(90D)>=3"), "tier == \"gold\" and orders(90d) >= 3");
    assert_eq!(
        canon("(tier == 'a' and (stage == 'b' and rfm.r >= 4))"),
        "tier == \"a\" and stage == \"b\" and rfm.r >= 4"
    );
    assert_eq!(canon("tier == 'a' or stage == 'b' and rfm.r >= 4"), "tier == \"a\" or (stage == \"b\" and rfm.r >= 4)");
    assert_eq!(
        canon("(tier == 'a' or stage == 'b') and rfm.r >= 4"),
        "(tier == \"a\" or stage == \"b\") and rfm.r >= 4"
    );
    assert_eq!(canon("not (tier == 'a' or stage == 'b')"), "not (tier == \"a\" or stage == \"b\")");
    assert_eq!(canon("stage in ['at_risk', 'dormant',]"), "stage in (\"at_risk\", \"dormant\")");
    assert_eq!(canon("not tag(\"vip_manual\")"), "not tags contains \"vip_manual\"");
    assert_eq!(
        canon("attributes[\"vip code\"] exists and attr.level > 2"),
        "attributes[\"vip code\"] exists and attr.level > 2"
    );
    assert_eq!(
        canon("attr[\"plain\"] == 1.50 and attr['and'] == 2.0"),
        "attr.plain == 1.50 and attributes[\"and\"] == 2.0"
    );
    assert_eq!(canon("spend(1y) between 100 and 500.00"), "spend(1y) between 100 and 500.00");
    assert_eq!(canon("spend(1y) >= '99.5'"), "spend(1y) >= 99.5");
    assert_eq!(canon("joined_at >= '2024-01-31' # comment\n"), "joined_at >= 2024-01-31");
    assert_eq!(canon("events(\"add_to_cart\",7d)>=1"), "events(\"add_to_cart\", 7d) >= 1");
    assert_eq!(
        canon("balance('reward') > -5 and birthday_within(2w)"),
        "balance(\"reward\") > -5 and birthday_within(2w)"
    );
    assert_eq!(canon("name contains \"\\u{4e2d}\\\"\\n\""), "name contains \"中\\\"\\n\"");
    assert_eq!(
        canon("rfm.GROUP <> 'champions' and rfm.f < 2 and rfm.m <= 3 and rfm.r > 1"),
        "rfm.group != \"champions\" and rfm.f < 2 and rfm.m <= 3 and rfm.r > 1"
    );
    assert_eq!(canon("attr.x == 99999999999999999999"), "attr.x == 99999999999999999999");
}

#[test]
fn json_form_matches_the_documented_shape() {
    let rule =
        Rule::parse(r#"spend(365d) >= 500.00 and tier in ("gold") and birthday_within(7d) and not attr.score == 1.5"#)
            .unwrap();
    assert_eq!(
        rule.to_json(),
        json!({"and": [
            {"field": "spend", "window": "365d", "op": ">=", "value": "500.00"},
            {"field": "tier", "op": "in", "values": ["gold"]},
            {"field": "birthday_within", "window": "7d"},
            {"not": {"field": "attr", "name": "score", "op": "==", "value": {"decimal": "1.5"}}}
        ]})
    );
    let back = Rule::from_json(&rule.to_json()).unwrap();
    assert_eq!(back, rule);
    assert_eq!(back.to_string(), rule.to_string());
    // Serde: the JSON form, or a string in the text form.
    let from_text: Rule = serde_json::from_value(json!("orders(90d) >= 2")).unwrap();
    let from_json: Rule =
        serde_json::from_value(json!({"field": "orders", "window": "90d", "op": ">=", "value": 2})).unwrap();
    assert_eq!(from_text, from_json);
    assert_eq!(serde_json::to_value(&from_text).unwrap(), from_json.to_json());
    // Money given as a JSON number is read exactly as printed.
    let r = Rule::from_json(&json!({"field": "spend", "window": "30d", "op": ">", "value": 0.1})).unwrap();
    assert_eq!(r.to_string(), "spend(30d) > 0.1");
}

/// One member, the same member as a one-row table: both evaluators must agree.
fn both(rule: &str, member: &MemberValues, ladder: &[&str]) -> bool {
    let rule = Rule::parse(rule).unwrap_or_else(|e| panic!("{rule}: {e}"));
    let one = rule.matches(member);
    let mut table = MemberColumns::from_sources(&rule.fields(), [(crate::MemberId::from("m"), member)]);
    table.set_tier_ladder(ladder.iter().copied());
    let batch = eval_columns(&rule, &table).unwrap().get(0);
    assert_eq!(one, batch, "{rule}");
    one
}

#[test]
fn every_operator_in_both_evaluators() {
    let ladder = ["basic", "silver", "gold", "platinum"];
    let m = MemberValues::new()
        .with(Field::Tier, FieldValue::Text("gold".into()))
        .with(Field::Stage, FieldValue::Text("at_risk".into()))
        .with(Field::Name, FieldValue::Text("Li Wei".into()))
        .with(Field::Orders(Window::days(90)), FieldValue::Int(3))
        .with(Field::Spend(Window::days(365)), FieldValue::Money(dec("250.50")))
        .with(Field::Birthday, FieldValue::Date(NaiveDate::from_ymd_opt(1990, 5, 17).unwrap()))
        .with(Field::BirthdayWithin(Window::days(7)), FieldValue::Bool(true))
        .with(Field::Tags, set(&["vip", "new"]))
        .with(Field::Channels, set(&[]))
        .with(Field::Attr("level".into()), FieldValue::Json(Cow::Owned(json!(2))))
        .with(Field::Attr("code".into()), FieldValue::Json(Cow::Owned(json!("A-17"))))
        .with(Field::Attr("pets".into()), FieldValue::Json(Cow::Owned(json!(["cat", "dog"]))))
        .with(Field::Attr("since".into()), FieldValue::Json(Cow::Owned(json!("2020-02-29"))))
        .with_tier_ladder(ladder);
    let cases: &[(&str, bool)] = &[
        ("orders(90d) == 3", true),
        ("orders(90d) != 3", false),
        ("orders(90d) < 3", false),
        ("orders(90d) <= 3", true),
        ("orders(90d) > 2", true),
        ("orders(90d) >= 4", false),
        ("orders(90d) in (1, 3)", true),
        ("orders(90d) between 3 and 3", true),
        ("orders(90d) between 4 and 9", false),
        ("orders(90d) exists", true),
        ("spend(365d) >= 250.50", true),
        ("spend(365d) > 250.5", false),
        ("spend(365d) > 250.499", true),
        ("spend(365d) < 250.501", true),
        ("spend(365d) == 250.5", true),
        ("spend(365d) == 250.505", false),
        ("spend(365d) != 250.505", true),
        ("spend(365d) between 100 and 500.00", true),
        ("spend(365d) between 250.51 and 500", false),
        ("spend(365d) in (1, 250.500)", true),
        ("tier == \"gold\"", true),
        ("tier != \"gold\"", false),
        ("tier != \"silver\"", true),
        ("tier in (\"gold\", \"platinum\")", true),
        ("tier >= \"gold\"", true),
        ("tier > \"gold\"", false),
        ("tier < \"platinum\"", true),
        ("tier >= \"diamond\"", false),
        ("tier between \"silver\" and \"gold\"", true),
        ("stage == \"at_risk\"", true),
        ("name contains \"Wei\"", true),
        ("name contains \"wei\"", false),
        ("region exists", false),
        ("region == \"north\"", false),
        ("region != \"north\"", false),
        ("not region == \"north\"", true),
        ("days_since_last_order > 60", false),
        ("birthday < 1991-01-01", true),
        ("birthday between 1990-05-17 and 1990-05-17", true),
        ("birthday_within(7d)", true),
        ("birthday_within(7d) == false", false),
        ("birthday_within(7d) != false", true),
        ("birthday_within(30d)", false),
        ("tags contains \"vip\"", true),
        ("tags contains \"gone\"", false),
        ("tag(\"new\")", true),
        ("tags exists", true),
        ("channels exists", false),
        ("channels contains \"app\"", false),
        ("attr.level >= 2", true),
        ("attr.level == 2.0", true),
        ("attr.level > 1.5", true),
        ("attr.level == \"2\"", false),
        ("attr.code == \"A-17\"", true),
        ("attr.code contains \"17\"", true),
        ("attr.code > \"A\"", true),
        ("attr.pets contains \"cat\"", true),
        ("attr.pets contains \"cow\"", false),
        ("attr.since < 2021-01-01", true),
        ("attr.level exists", true),
        ("attr.missing exists", false),
        ("attr.level in (1, 2)", true),
        ("attr.level between 1 and 3", true),
        ("tier == \"gold\" and orders(90d) >= 3", true),
        ("tier == \"silver\" or orders(90d) >= 3", true),
        ("tier == \"silver\" or orders(90d) >= 4", false),
        ("not not tier == \"gold\"", true),
    ];
    for (rule, want) in cases {
        assert_eq!(both(rule, &m, &ladder), *want, "{rule}");
    }
    // Without a ladder ordered tier comparisons are false.
    let no_ladder = MemberValues::new().with(Field::Tier, FieldValue::Text("gold".into()));
    assert!(!both("tier >= \"basic\"", &no_ladder, &[]));
}

#[test]
fn money_columns_with_mixed_scales_and_overflow() {
    let values = ["0.001", "12", "-3.5", "79228162514264337593543950335"];
    for lit in ["0", "0.0005", "0.001", "12.000", "-3.49", "79228162514264337593543950335", "-1e-28"] {
        for op in [">", ">=", "<", "<=", "==", "!="] {
            let text = format!("spend(30d) {op} {lit}");
            let Ok(rule) = Rule::parse(&text) else { continue };
            for take in [3usize, 4] {
                let mut table = MemberColumns::new((0..take).map(|i| crate::MemberId::from(format!("m{i}"))).collect());
                table.add_money(Field::Spend(Window::days(30)), values[..take].iter().map(|v| Some(dec(v)))).unwrap();
                let bits = eval_columns(&rule, &table).unwrap();
                for (i, v) in values[..take].iter().enumerate() {
                    let m = MemberValues::new().with(Field::Spend(Window::days(30)), FieldValue::Money(dec(v)));
                    assert_eq!(bits.get(i), rule.matches(&m), "{text} on {v}");
                }
            }
        }
    }
}

#[test]
fn columns_report_what_is_missing() {
    let rule = Rule::parse("orders(90d) > 1").unwrap();
    let table = MemberColumns::new(vec!["a".into()]);
    let e = eval_columns(&rule, &table).unwrap_err();
    assert_eq!(e.field(), Some("columns.orders(90d)"));
    let mut table = MemberColumns::new(vec!["a".into()]);
    let e = table.add_int(Field::Spend(Window::days(1)), [Some(1)]).unwrap_err();
    assert_eq!(e.to_string(), "invalid columns.spend(1d): field is money, the column holds number");
    let e = table.add_int(Field::Orders(Window::days(1)), [Some(1), None]).unwrap_err();
    assert_eq!(e.to_string(), "invalid columns.orders(1d): has 2 values for 1 members");
}

#[test]
fn saved_segment_reports_entries_and_exits() {
    let at = chrono::DateTime::<chrono::Utc>::from_timestamp(1_700_000_000, 0).unwrap();
    let rule = Rule::parse("orders(90d) >= 2").unwrap();
    let mut seg = SavedSegment::new("repeat", rule);
    let field = Field::Orders(Window::days(90));
    let ids: Vec<crate::MemberId> = ["a", "b", "c"].iter().map(|s| crate::MemberId::from(*s)).collect();
    let mut t = MemberColumns::new(ids.clone());
    t.add_int(field.clone(), [Some(2), Some(0), Some(5)]).unwrap();
    let ch = seg.refresh(&t, at).unwrap();
    assert_eq!(ch.iter().map(|c| (c.member_id.as_str(), c.entered)).collect::<Vec<_>>(), [("a", true), ("c", true)]);
    let mut t = MemberColumns::new(ids);
    t.add_int(field.clone(), [Some(2), Some(3), Some(1)]).unwrap();
    let ch = seg.refresh(&t, at).unwrap();
    assert_eq!(ch.iter().map(|c| (c.member_id.as_str(), c.entered)).collect::<Vec<_>>(), [("b", true), ("c", false)]);
    assert_eq!(seg.members, vec![crate::MemberId::from("a"), "b".into()]);
    // Real time: one member after a fact.
    let m = MemberValues::new().with(field.clone(), FieldValue::Int(0));
    let c = seg.update_member(&"a".into(), &m, at).unwrap();
    assert!(!c.entered && c.segment_id == "repeat");
    assert_eq!(seg.update_member(&"a".into(), &m, at), None);
    assert!(!seg.contains(&"a".into()));
    let json = serde_json::to_value(&seg).unwrap();
    assert_eq!(json["rule"], json!({"field": "orders", "window": "90d", "op": ">=", "value": 2}));
    assert_eq!(serde_json::from_value::<SavedSegment>(json).unwrap(), seg);
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let deep = format!("{}tier == \"a\"{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(err(&deep).message.contains("nested deeper"));
    let nots = format!("{}tier == \"a\"", "not ".repeat(10_000));
    assert!(err(&nots).message.contains("nested deeper"));
    let mut j = json!({"field": "tier", "op": "exists"});
    for _ in 0..100 {
        j = json!({ "not": j });
    }
    assert!(Rule::from_json(&j).unwrap_err().message.contains("nested deeper"));
}

/// Five clauses over 1,000,000 members. Run with
/// `cargo test --release -p crm-core --lib segment::tests::speed -- --ignored --nocapture`.
#[test]
#[ignore]
fn speed_five_clauses_one_million_members() {
    let n = 1_000_000usize;
    let ids: Vec<crate::MemberId> = (0..n).map(|i| crate::MemberId(format!("m{i:07}"))).collect();
    let mut t = MemberColumns::new(ids);
    t.set_tier_ladder(["basic", "silver", "gold", "platinum"]);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let tiers = ["basic", "silver", "gold", "platinum"];
    let mut tier = Vec::with_capacity(n);
    let mut orders = Vec::with_capacity(n);
    let mut spend = Vec::with_capacity(n);
    let mut days = Vec::with_capacity(n);
    let mut tags: Vec<Vec<&str>> = Vec::with_capacity(n);
    for _ in 0..n {
        let r = rnd();
        tier.push(Some(tiers[(r % 4) as usize]));
        orders.push(Some((r >> 8) as i64 % 10));
        spend.push(Some(Decimal::new(((r >> 16) % 100_000) as i64, 2)));
        days.push(if r >> 40 & 7 == 0 { None } else { Some(((r >> 20) % 400) as i64) });
        tags.push(if r >> 44 & 3 == 0 { vec!["vip"] } else { vec![] });
    }
    t.add_text(Field::Tier, tier).unwrap();
    t.add_int(Field::Orders(Window::days(90)), orders).unwrap();
    t.add_money(Field::Spend(Window::days(365)), spend).unwrap();
    t.add_int(Field::DaysSinceLastOrder, days).unwrap();
    t.add_text_set(Field::Tags, tags).unwrap();
    let rule = Rule::parse(
        r#"tier in ("gold", "platinum") and orders(90d) >= 3 and spend(365d) between 100.00 and 500.00
           and (days_since_last_order > 60 or not tags contains "vip")"#,
    )
    .unwrap();
    assert_eq!(rule.clause_count(), 5);
    let mut best = std::time::Duration::MAX;
    let mut count = 0;
    for _ in 0..20 {
        let start = std::time::Instant::now();
        let bits = eval_columns(&rule, &t).unwrap();
        best = best.min(start.elapsed());
        count = bits.count_ones();
    }
    println!("five clauses over {n} members: best of 20 = {best:?} ({count} matched)");
}
