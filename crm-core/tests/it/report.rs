//! The report page (`crm_core::report`): data gathered from an engine, every
//! section and chart drawn, text escaped, output deterministic, Chinese
//! strings, the what-if section only when given; random page data never
//! panics and always gives well-formed SVG.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use crm_core::analytics::RfmGroup;
use crm_core::engine::{
    ChannelGroup, ChannelSplit, CohortRow, ExpiringBucket, LiabilityReport, Report, TransitionMatrix,
};
use crm_core::lifecycle::Stage;
use crm_core::report::{
    comparison_from_json, render_fragment, render_html, Lang, PageData, PageOptions, RfmGrid, TierCount,
};
use crm_core::whatif::{compare, Options};
use crm_core::{Engine, MemoryStore, Order, Program};
use proptest::prelude::*;
use rust_decimal::Decimal;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn demo_program() -> Program {
    Program::from_path(format!("{}/../examples/programs/demo.toml", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// 30 members, 1–6 orders each over 15 months, two channels.
fn orders() -> Vec<Order> {
    let t0 = utc("2023-01-05T10:00:00Z");
    let mut out = Vec::new();
    for m in 0..30u64 {
        for k in 0..(1 + (m * 5 + 1) % 6) {
            let at = t0 + Duration::days(((m * 37 + k * 71) % 450) as i64);
            let mut o = Order::paid(
                format!("o{m}-{k}"),
                format!("m{m:02}"),
                at,
                Decimal::new(((m * 131 + k * 977) % 40_000 + 500) as i64, 2),
            );
            o.channel = Some(if (m + k) % 3 == 0 { "store" } else { "web" }.to_string());
            out.push(o);
        }
    }
    out.sort_by_key(|o| o.placed_at);
    out
}

fn engine() -> Engine<MemoryStore> {
    let engine = Engine::new(demo_program(), MemoryStore::new());
    let orders = orders();
    for o in orders {
        let at = o.placed_at;
        engine.record_order(o, at).unwrap();
    }
    engine
}

const AT: &str = "2024-04-01T00:00:00Z";
const SECTIONS: [&str; 7] = ["headline", "tiers", "lifecycle", "liability", "cohorts", "rfm", "channels"];
const CHARTS: [&str; 9] =
    ["tiers", "stages", "flows", "liability", "cohorts", "rfm", "rfm_groups", "channel_members", "channel_spend"];

/// Every `<svg>…</svg>` of the page.
fn svgs(html: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<svg") {
        let end = rest[start..].find("</svg>").map(|e| start + e + 6).expect("an <svg> is closed");
        out.push(&rest[start..end]);
        rest = &rest[end..];
    }
    out
}

/// Tags balance: every element opened is closed in order (or self-closed).
fn balanced(xml: &str) -> Result<(), String> {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = xml;
    while let Some(lt) = rest.find('<') {
        let gt = rest[lt..].find('>').ok_or("unterminated tag")? + lt;
        let tag = &rest[lt + 1..gt];
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().ok_or(format!("</{name}> closes nothing"))?;
            if open != name {
                return Err(format!("</{name}> closes <{open}>"));
            }
        } else if !tag.ends_with('/') {
            let name = tag.split_whitespace().next().unwrap_or_default();
            stack.push(name.to_string());
        }
        rest = &rest[gt + 1..];
    }
    if stack.is_empty() {
        Ok(())
    } else {
        Err(format!("unclosed {stack:?}"))
    }
}

/// The `<body>` element of a page.
fn body(html: &str) -> &str {
    &html[html.find("<body>").unwrap()..html.find("</body>").unwrap() + 7]
}

fn chart_names(html: &str) -> Vec<String> {
    svgs(html)
        .iter()
        .map(|s| {
            let i = s.find("data-chart=\"").expect("every chart is named") + 12;
            s[i..i + s[i..].find('"').unwrap()].to_string()
        })
        .collect()
}

#[test]
fn the_page_gathers_the_existing_reports() {
    let engine = engine();
    let at = utc(AT);
    let page = engine.report_page(&PageOptions::at(at)).unwrap();
    assert_eq!(page.report, engine.report(at).unwrap());
    assert_eq!(page.stages, engine.stage_distribution(at).unwrap());
    assert_eq!(page.flows, engine.stage_transitions(utc("2023-04-01T00:00:00Z"), at).unwrap());
    let tiers = engine.tier_distribution(at).unwrap();
    assert_eq!(page.tiers.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["member", "silver", "gold"]);
    assert!(page.tiers.iter().all(|t| tiers[&t.id] == t.members));
    assert_eq!(page.tiers[2].name, "Gold");
    let active: u64 = [Stage::New, Stage::Active, Stage::Reactivated].iter().map(|s| page.stages[s]).sum();
    assert_eq!(page.active_members, active);
    assert_eq!(page.rfm.buyers, page.report.buyers);
    assert_eq!(page.rfm.counts.iter().flatten().sum::<u64>(), page.rfm.buyers);
    assert_eq!(page.rfm.groups.values().sum::<u64>(), page.rfm.buyers);
    assert_eq!(page.rfm.groups.len(), RfmGroup::ALL.len());
}

/// Cohort columns run to the month of `at`; at the first instant of a month
/// that month has not begun and gets no column (it would show as zeros).
#[test]
fn cohorts_end_with_the_last_month_that_has_begun() {
    let engine = engine();
    let columns = |at: &str| {
        let report = engine.report(utc(at)).unwrap();
        let first = &report.cohorts[0];
        assert_eq!(first.month, "2023-01");
        first.retained.len()
    };
    // 2023-01 .. 2024-03: 15 months.
    assert_eq!(columns("2024-03-31T23:59:59Z"), 15);
    assert_eq!(columns("2024-03-01T00:00:01Z"), 15);
    assert_eq!(columns("2024-03-01T00:00:00Z"), 14);
    assert_eq!(columns("2024-02-29T23:59:59Z"), 14);
}

#[test]
fn every_section_and_chart_is_drawn_and_the_page_loads_nothing() {
    let engine = engine();
    let page = engine.report_page(&PageOptions::at(utc(AT))).unwrap();
    let html = render_html(&page, Lang::En, None);
    assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
    for s in SECTIONS {
        assert!(html.contains(&format!("<section id=\"{s}\">")), "section {s}");
    }
    assert!(!html.contains("id=\"whatif\""));
    assert_eq!(chart_names(&html), CHARTS);
    for svg in svgs(&html) {
        balanced(svg).unwrap();
        assert!(svg.contains("role=\"img\"") && svg.contains("\"><title>"));
        assert!(svg.contains("<rect") && svg.contains("<text"));
    }
    balanced(body(&html)).unwrap();
    // No scripts, no fetches: the only URL is the SVG namespace.
    for bad in ["<script", "<img", "<link", "url(", "@import", "src="] {
        assert!(!html.contains(bad), "{bad}");
    }
    assert_eq!(html.matches("http").count(), html.matches("http://www.w3.org/2000/svg").count() + 1);
    assert!(html.contains("http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'"));
    // Units and axes.
    assert!(html.contains("USD ") && html.contains("months since the first order"));
}

#[test]
fn output_is_deterministic_and_the_fragment_is_the_same_content() {
    let engine = engine();
    let options = PageOptions::at(utc(AT));
    let a = render_html(&engine.report_page(&options).unwrap(), Lang::En, None);
    let b = render_html(&engine.report_page(&options).unwrap(), Lang::En, None);
    assert_eq!(a, b);
    let page = engine.report_page(&options).unwrap();
    let fragment = render_fragment(&page, Lang::En, None);
    assert!(fragment.starts_with("<style>") && !fragment.contains("<html"));
    assert_eq!(chart_names(&fragment), CHARTS);
    // The data survives a serde round trip (the bindings pass it as JSON).
    let json = serde_json::to_string(&page).unwrap();
    let back: PageData = serde_json::from_str(&json).unwrap();
    assert_eq!(render_html(&back, Lang::En, None), a);
}

#[test]
fn chinese_pages_use_the_chinese_strings_and_formats() {
    let engine = engine();
    let page = engine.report_page(&PageOptions::at(utc(AT))).unwrap();
    let html = render_html(&page, Lang::Zh, None);
    assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"zh-CN\">"));
    for s in
        ["会员数", "活跃会员占比", "复购率", "积分负债", "同期群留存", "阶段流转", "2024年4月1日", "沉睡", "单渠道"]
    {
        assert!(html.contains(s), "{s}");
    }
    assert!(!html.contains("Repurchase rate"));
    assert_eq!(chart_names(&html), CHARTS);
}

#[test]
fn text_from_the_data_is_escaped() {
    let engine = engine();
    let mut page = engine.report_page(&PageOptions::at(utc(AT))).unwrap();
    page.programme = "<script>alert('x')</script> & \"co\"".into();
    page.tiers[0].name = "<b>gold</b>".into();
    page.report.channels.by_channel.insert("<img src=x>".into(), 1);
    let html = render_html(&page, Lang::En, None);
    assert!(!html.contains("<script") && !html.contains("<b>") && !html.contains("<img"));
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;co&quot;"));
    assert!(html.contains("&lt;b&gt;gold&lt;/b&gt;"));
}

#[test]
fn the_what_if_section_appears_only_when_given() {
    let engine = engine();
    let page = engine.report_page(&PageOptions::at(utc(AT))).unwrap();
    let mut double = Program::default_demo();
    double.earn.rules[0].points_per_unit = Decimal::TWO;
    let programs = vec![("default".to_string(), Program::default_demo()), ("double".to_string(), double)];
    let c = compare(&orders(), &[], &programs, &Options::default()).unwrap();
    let html = render_html(&page, Lang::En, Some(&c));
    assert!(html.contains("<section id=\"whatif\">"));
    let mut expected = CHARTS.to_vec();
    expected.push("whatif");
    assert_eq!(chart_names(&html), expected);
    assert!(html.contains(">double</th>") && html.contains("points issued"));
    // The whatif example's stdout (a table, then the JSON) is read by its last line.
    let mut json = serde_json::to_value(&c).unwrap();
    json["elapsed_ms"] = 12.5.into();
    let stdout = format!("what-if replay of …\nprogramme  default  double\n{json}\n");
    assert_eq!(comparison_from_json(&stdout).unwrap(), c);
    let e = comparison_from_json("not json").unwrap_err();
    assert_eq!((e.code(), e.field()), ("validation_error", Some("whatif")));
}

#[test]
fn the_flow_window_defaults_to_the_year_before_and_is_checked() {
    let engine = engine();
    let at = utc(AT);
    let page = engine.report_page(&PageOptions::at(at)).unwrap();
    assert_eq!((page.flows.from, page.flows.to), (utc("2023-04-01T00:00:00Z"), at));
    let bad = PageOptions { at, flows_from: Some(at), flows_to: Some(at - Duration::days(1)) };
    let e = engine.report_page(&bad).unwrap_err();
    assert_eq!((e.code(), e.field()), ("validation_error", Some("flows_to")));
}

#[test]
fn an_empty_programme_still_draws_every_chart() {
    let engine = Engine::new(Program::default_demo(), MemoryStore::new());
    let page = engine.report_page(&PageOptions::at(utc(AT))).unwrap();
    let html = render_html(&page, Lang::En, None);
    // No tier ladder: the section says so and has no chart.
    assert!(html.contains("The programme has no tier ladder."));
    assert_eq!(chart_names(&html), &CHARTS[1..]);
    for svg in svgs(&html) {
        balanced(svg).unwrap();
        assert!(svg.contains("<rect") || svg.contains("<line"));
    }
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec!["a", "Z", "<", ">", "&", "\"", "'", "会员", " ", "\u{1}", "ü", "9"]),
        0..12,
    )
    .prop_map(|v| v.concat())
}

fn dec() -> impl Strategy<Value = Decimal> {
    (any::<i64>(), 0u32..6).prop_map(|(m, s)| Decimal::new(m, s))
}

fn page_data() -> impl Strategy<Value = PageData> {
    let cohort = (text(), any::<u64>(), prop::collection::vec((any::<u64>(), dec()), 0..30)).prop_map(
        |(month, members, ret)| CohortRow {
            month,
            members,
            retained: ret.iter().map(|r| r.0).collect(),
            rates: ret.iter().map(|r| r.1).collect(),
        },
    );
    let group = || {
        (any::<u64>(), dec(), dec()).prop_map(|(members, spend, average_spend)| ChannelGroup {
            members,
            spend,
            average_spend,
        })
    };
    let stage = prop::sample::select(Stage::ALL.to_vec());
    (
        (text(), text(), any::<u64>(), any::<u64>(), dec(), any::<i64>(), dec()),
        prop::collection::vec((1u32..400, any::<i64>(), dec()), 0..4),
        prop::collection::vec(cohort, 0..30),
        (group(), group(), prop::collection::btree_map(text(), any::<u64>(), 0..4)),
        prop::collection::vec((text(), text(), any::<u64>()), 0..6),
        prop::collection::btree_map(stage.clone(), any::<u64>(), 0..7),
        prop::collection::vec((stage.clone(), stage, any::<u64>()), 0..20),
        (
            prop::collection::vec(prop::collection::vec(any::<u64>(), 0..6), 0..6),
            prop::collection::btree_map(prop::sample::select(RfmGroup::ALL.to_vec()), any::<u64>(), 0..11),
        ),
        (0i64..4_000_000_000, 0i64..4_000_000_000, any::<bool>()),
    )
        .prop_map(
            |(
                head,
                buckets,
                cohorts,
                (single, multi, by_channel),
                tiers,
                stages,
                flows,
                (counts, groups),
                (a, b, tz),
            )| {
                let (programme, currency, members, buyers, rate, outstanding, value) = head;
                let at = Utc.timestamp_opt(a, 0).unwrap();
                let from = Utc.timestamp_opt(b, 0).unwrap();
                let mut matrix: BTreeMap<Stage, BTreeMap<Stage, u64>> = BTreeMap::new();
                for (x, y, n) in flows {
                    matrix.entry(x).or_default().insert(y, n);
                }
                PageData {
                    programme,
                    currency,
                    timezone: if tz { "Asia/Shanghai".into() } else { "not a zone".into() },
                    at,
                    report: Report {
                        at,
                        members,
                        buyers,
                        repurchase_rate: rate,
                        liability: LiabilityReport {
                            at,
                            outstanding,
                            value,
                            expiring: buckets
                                .into_iter()
                                .map(|(days, points, value)| ExpiringBucket { days, points, value })
                                .collect(),
                            earned: outstanding.wrapping_mul(3),
                            redeemed: i64::MIN,
                            expired: i64::MAX,
                            breakage_rate: rate,
                            breakage_points: -outstanding.saturating_abs(),
                            breakage_value: value,
                        },
                        cohorts,
                        channels: ChannelSplit { single_channel: single, multi_channel: multi, by_channel },
                    },
                    active_members: buyers,
                    active_share: rate,
                    tiers: tiers.into_iter().map(|(id, name, members)| TierCount { id, name, members }).collect(),
                    stages,
                    flows: TransitionMatrix { from, to: at, counts: matrix },
                    rfm: RfmGrid { buyers, counts, groups },
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any data, however odd (huge or negative figures, ragged matrices,
    /// markup in names, an unknown zone), renders without a panic into
    /// well-formed charts, in both languages.
    #[test]
    fn random_page_data_renders_well_formed_svg(page in page_data(), zh in any::<bool>()) {
        let lang = if zh { Lang::Zh } else { Lang::En };
        let html = render_html(&page, lang, None);
        let charts = svgs(&html);
        prop_assert!(charts.len() >= 8);
        for svg in charts {
            prop_assert!(balanced(svg).is_ok(), "{:?}", balanced(svg));
            prop_assert!(!svg.contains("NaN") && !svg.contains("inf"));
        }
        prop_assert!(balanced(body(&html)).is_ok());
        prop_assert!(!html.contains("<script"));
    }
}
