//! The page: headline cards, one section per figure, charts from [`super::svg`].

use std::fmt::Write;

use chrono_tz::Tz;
use rust_decimal::Decimal;

use super::i18n::{self, compact, date, f, group_name, int, money, pct, stage_name, Lang, Text};
use super::svg::{bars, escape, heatmap, Bars, Heat};
use super::PageData;
use crate::analytics::RfmGroup;
use crate::lifecycle::Stage;
use crate::whatif::{Comparison, ProgrammeFigures};

/// Cohorts (the latest) and months after the first shown in the heatmap.
const MAX_COHORTS: usize = 24;
const MAX_MONTHS: usize = 25;

/// Styles, all under `.crm-report` so the fragment can sit in a notebook.
const CSS: &str = "\
.crm-report{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Noto Sans','Noto Sans CJK SC','WenQuanYi Micro Hei','PingFang SC','Microsoft YaHei',sans-serif;color:#1d2330;background:#fff;max-width:1120px;margin:0 auto;padding:16px 24px;line-height:1.4}\
.crm-report h1{font-size:24px;margin:0 0 2px}\
.crm-report h2{font-size:18px;margin:0 0 10px;padding-bottom:4px;border-bottom:1px solid #dde2ea}\
.crm-report section{margin-top:28px}\
.crm-report .sub{color:#5a6372;margin:0 0 12px}\
.crm-report .cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:12px}\
.crm-report .card{border:1px solid #dde2ea;border-radius:8px;padding:12px 14px}\
.crm-report .card .v{font-size:26px;font-weight:600}\
.crm-report .card .l{font-size:13px;color:#5a6372}\
.crm-report .row{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}\
.crm-report svg{max-width:100%;height:auto;display:block}\
.crm-report table{border-collapse:collapse;font-size:13px;margin-top:8px}\
.crm-report th,.crm-report td{padding:3px 10px;border-bottom:1px solid #eef0f4;text-align:right}\
.crm-report th:first-child,.crm-report td:first-child{text-align:left}\
.crm-report .note{color:#5a6372;font-size:12px;margin:6px 0 0}\
.crm-report footer{margin-top:32px;color:#5a6372;font-size:12px}";

/// The page as a complete HTML document (UTF-8) that loads nothing: its
/// Content-Security-Policy forbids every fetch, styles are inline and the
/// charts are SVG in the page. `whatif` adds the comparison section.
pub fn render_html(data: &PageData, lang: Lang, whatif: Option<&Comparison>) -> String {
    let title = format!("{} · {}", Text::Title.get(lang), data.programme);
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title>\
         <style>body{{margin:0;background:#fff}}{CSS}</style></head><body>\n",
        lang.tag(),
        escape(&title)
    );
    body(&mut out, data, lang, whatif);
    out.push_str("</body></html>\n");
    out
}

/// The page's content as one `<div class="crm-report">` with its own
/// `<style>`: for embedding, e.g. Jupyter's `_repr_html_`.
pub fn render_fragment(data: &PageData, lang: Lang, whatif: Option<&Comparison>) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(out, "<style>{CSS}</style>");
    body(&mut out, data, lang, whatif);
    out
}

fn body(out: &mut String, data: &PageData, lang: Lang, whatif: Option<&Comparison>) {
    let tz: Tz = data.timezone.parse().unwrap_or(Tz::UTC);
    let t = |k: Text| k.get(lang);
    let _ = write!(out, "<div class=\"crm-report\" lang=\"{}\">", lang.tag());
    let _ = writeln!(
        out,
        "<header><h1>{}</h1><p class=\"sub\">{} · {} {} ({}) · {} {} – {}</p></header>",
        escape(&data.programme),
        escape(t(Text::Title)),
        escape(t(Text::AsOf)),
        escape(&date(data.at, tz, lang)),
        escape(&data.timezone),
        escape(t(Text::FlowsBetween)),
        escape(&date(data.flows.from, tz, lang)),
        escape(&date(data.flows.to, tz, lang)),
    );
    headline(out, data, lang);
    tiers(out, data, lang);
    lifecycle(out, data, lang, tz);
    liability(out, data, lang);
    cohorts(out, data, lang);
    rfm(out, data, lang);
    channels(out, data, lang);
    if let Some(c) = whatif {
        what_if(out, c, lang, tz);
    }
    let _ = writeln!(out, "<footer>{}</footer></div>", escape(t(Text::Footer)));
}

fn section(out: &mut String, id: &str, title: &str) {
    let _ = write!(out, "<section id=\"{id}\"><h2>{}</h2>", escape(title));
}

fn note(out: &mut String, text: &str) {
    let _ = write!(out, "<p class=\"note\">{}</p>", escape(text));
}

/// `n (12.3%)`: a count and its share of `of`.
fn count_share(n: u64, of: u64) -> String {
    if of == 0 {
        int(i128::from(n))
    } else {
        let share = (Decimal::from(n) / Decimal::from(of)).round_dp(4);
        format!("{} ({})", int(i128::from(n)), pct(share))
    }
}

fn headline(out: &mut String, d: &PageData, lang: Lang) {
    let t = |k: Text| k.get(lang);
    let r = &d.report;
    section(out, "headline", t(Text::Headline));
    let cards = [
        (t(Text::Members), int(i128::from(r.members)), format!("{} {}", int(i128::from(r.buyers)), t(Text::Buyers))),
        (
            t(Text::ActiveShare),
            pct(d.active_share),
            format!("{} · {}", t(Text::ActiveShareNote), int(i128::from(d.active_members))),
        ),
        (t(Text::RepurchaseRate), pct(r.repurchase_rate), t(Text::RepurchaseNote).to_string()),
        (
            t(Text::Liability),
            money(r.liability.value, &d.currency, lang),
            format!("{} {}", int(i128::from(r.liability.outstanding)), t(Text::LiabilityNote)),
        ),
    ];
    out.push_str("<div class=\"cards\">");
    for (label, value, sub) in cards {
        let _ = write!(
            out,
            "<div class=\"card\"><div class=\"l\">{}</div><div class=\"v\">{}</div><div class=\"l\">{}</div></div>",
            escape(label),
            escape(&value),
            escape(&sub)
        );
    }
    out.push_str("</div></section>\n");
}

fn tiers(out: &mut String, d: &PageData, lang: Lang) {
    let t = |k: Text| k.get(lang);
    section(out, "tiers", t(Text::Tiers));
    if d.tiers.is_empty() {
        note(out, t(Text::NoTiers));
    } else {
        let total = d.tiers.iter().fold(0u64, |a, x| a.saturating_add(x.members));
        out.push_str(&bars(&Bars {
            name: "tiers",
            title: t(Text::TiersTitle),
            axis: t(Text::MembersUnit),
            series: vec![t(Text::Members).to_string()],
            groups: d
                .tiers
                .iter()
                .map(|x| (x.name.clone(), vec![(x.members as f64, count_share(x.members, total))]))
                .collect(),
            tick: &|v| compact(v, lang),
            empty: t(Text::NoData),
        }));
    }
    out.push_str("</section>\n");
}

fn lifecycle(out: &mut String, d: &PageData, lang: Lang, tz: Tz) {
    let t = |k: Text| k.get(lang);
    section(out, "lifecycle", t(Text::Lifecycle));
    out.push_str("<div class=\"row\">");
    let members = d.stages.values().fold(0u64, |a, n| a.saturating_add(*n));
    out.push_str(&bars(&Bars {
        name: "stages",
        title: t(Text::StagesTitle),
        axis: t(Text::MembersUnit),
        series: vec![t(Text::Members).to_string()],
        groups: Stage::ALL
            .iter()
            .map(|s| {
                let n = d.stages.get(s).copied().unwrap_or(0);
                (stage_name(*s, lang).to_string(), vec![(n as f64, count_share(n, members))])
            })
            .collect(),
        tick: &|v| compact(v, lang),
        empty: t(Text::NoData),
    }));
    let cell = |a: &Stage, b: &Stage| d.flows.counts.get(a).and_then(|m| m.get(b)).copied().unwrap_or(0);
    let max = Stage::ALL.iter().flat_map(|a| Stage::ALL.iter().map(move |b| (a, b))).map(|(a, b)| cell(a, b)).max();
    let max = max.unwrap_or(0).max(1) as f64;
    out.push_str(&heatmap(&Heat {
        name: "flows",
        title: t(Text::FlowsTitle),
        x_axis: &format!("{} {} →", t(Text::FlowsTo), date(d.flows.to, tz, lang)),
        y_axis: &format!("{} {} ↓", t(Text::FlowsFrom), date(d.flows.from, tz, lang)),
        cols: Stage::ALL.iter().map(|s| stage_name(*s, lang).to_string()).collect(),
        rows: Stage::ALL.iter().map(|s| stage_name(*s, lang).to_string()).collect(),
        cells: Stage::ALL
            .iter()
            .map(|a| {
                Stage::ALL
                    .iter()
                    .map(|b| {
                        let n = cell(a, b);
                        (n > 0).then(|| ((n as f64 / max).sqrt(), compact(n as f64, lang)))
                    })
                    .collect()
            })
            .collect(),
        legend: ("0".into(), compact(max, lang)),
        empty: t(Text::NoData),
    }));
    out.push_str("</div>");
    note(out, t(Text::FlowsNote));
    out.push_str("</section>\n");
}

fn liability(out: &mut String, d: &PageData, lang: Lang) {
    let t = |k: Text| k.get(lang);
    let l = &d.report.liability;
    let cur = &d.currency;
    section(out, "liability", t(Text::PointsLiability));
    let label = |p: i64, v: Decimal| format!("{} · {}", int(i128::from(p)), money(v, cur, lang));
    let mut groups =
        vec![(t(Text::Outstanding).to_string(), vec![(l.outstanding as f64, label(l.outstanding, l.value))])];
    for b in &l.expiring {
        let name = match lang {
            Lang::En => format!("{} {} {}", t(Text::ExpiringWithin), b.days, t(Text::Days)),
            Lang::Zh => format!("{} {} {}", t(Text::ExpiringWithin), b.days, t(Text::Days)),
        };
        groups.push((name, vec![(b.points as f64, label(b.points, b.value))]));
    }
    out.push_str(&bars(&Bars {
        name: "liability",
        title: t(Text::LiabilityTitle),
        axis: t(Text::PointsUnit),
        series: vec![t(Text::Points).to_string()],
        groups,
        tick: &|v| compact(v, lang),
        empty: t(Text::NoData),
    }));
    let _ = write!(
        out,
        "<table><tr><th>{}</th><th>{}</th><th>{}</th></tr>\
         <tr><td>{}</td><td>{}</td><td>{}</td></tr>\
         <tr><td>{} ({})</td><td>{}</td><td>{}</td></tr>\
         <tr><td>{}</td><td colspan=\"2\">{} / {} / {}</td></tr></table>",
        escape(t(Text::PointsLiability)),
        escape(t(Text::Points)),
        escape(t(Text::Value)),
        escape(t(Text::Outstanding)),
        escape(&int(i128::from(l.outstanding))),
        escape(&money(l.value, cur, lang)),
        escape(t(Text::Breakage)),
        escape(&pct(l.breakage_rate)),
        escape(&int(i128::from(l.breakage_points))),
        escape(&money(l.breakage_value, cur, lang)),
        escape(t(Text::EarnedRedeemedExpired)),
        escape(&int(i128::from(l.earned))),
        escape(&int(i128::from(l.redeemed))),
        escape(&int(i128::from(l.expired))),
    );
    note(out, &format!("{}: {}", t(Text::Breakage), t(Text::BreakageNote)));
    out.push_str("</section>\n");
}

fn cohorts(out: &mut String, d: &PageData, lang: Lang) {
    let t = |k: Text| k.get(lang);
    section(out, "cohorts", t(Text::Cohorts));
    let all = &d.report.cohorts;
    let rows = &all[all.len().saturating_sub(MAX_COHORTS)..];
    let months = rows.iter().map(|c| c.rates.len()).max().unwrap_or(0);
    let cols = months.min(MAX_MONTHS);
    // Month 0 is 100% by definition: the colours are scaled on the later months.
    let max = rows.iter().flat_map(|c| c.rates.iter().skip(1).take(cols)).map(|r| f(*r)).fold(0.0, f64::max);
    let scale = if max > 0.0 { max } else { 1.0 };
    out.push_str(&heatmap(&Heat {
        name: "cohorts",
        title: t(Text::CohortsTitle),
        x_axis: t(Text::MonthsSinceFirst),
        y_axis: t(Text::CohortMonth),
        cols: (0..cols).map(|k| k.to_string()).collect(),
        rows: rows
            .iter()
            .map(|c| format!("{} ({})", i18n::month(&c.month, lang), int(i128::from(c.members))))
            .collect(),
        cells: rows
            .iter()
            .map(|c| {
                (0..cols)
                    .map(|k| {
                        c.rates.get(k).map(|r| {
                            let shade = if k == 0 { 1.0 } else { (f(*r) / scale).min(1.0) };
                            (shade, format!("{}%", i18n::decimal(*r * Decimal::ONE_HUNDRED, 0)))
                        })
                    })
                    .collect()
            })
            .collect(),
        legend: ("0%".into(), format!("≥ {}", pct(Decimal::try_from(max).unwrap_or_default().round_dp(4)))),
        empty: t(Text::NoData),
    }));
    note(out, t(Text::CohortsNote));
    if rows.len() < all.len() || cols < months {
        note(out, t(Text::CohortsTruncated));
    }
    out.push_str("</section>\n");
}

fn rfm(out: &mut String, d: &PageData, lang: Lang) {
    let t = |k: Text| k.get(lang);
    let g = &d.rfm;
    section(out, "rfm", t(Text::Rfm));
    out.push_str("<div class=\"row\">");
    let count = |r: usize, fr: usize| g.counts.get(r).and_then(|row| row.get(fr)).copied().unwrap_or(0);
    let max = (0..5).flat_map(|r| (0..5).map(move |fr| (r, fr))).map(|(r, fr)| count(r, fr)).max().unwrap_or(0).max(1);
    out.push_str(&heatmap(&Heat {
        name: "rfm",
        title: t(Text::RfmTitle),
        x_axis: t(Text::Recency),
        y_axis: t(Text::Frequency),
        cols: (1..=5).map(|r| format!("R{r}")).collect(),
        rows: (1..=5).rev().map(|fr| format!("F{fr}")).collect(),
        cells: (0..5)
            .rev()
            .map(|fr| {
                (0..5)
                    .map(|r| {
                        let n = count(r, fr);
                        Some(((n as f64 / max as f64).sqrt(), int(i128::from(n))))
                    })
                    .collect()
            })
            .collect(),
        legend: ("0".into(), compact(max as f64, lang)),
        empty: t(Text::NoData),
    }));
    out.push_str(&bars(&Bars {
        name: "rfm_groups",
        title: t(Text::RfmGroupsTitle),
        axis: t(Text::MembersUnit),
        series: vec![t(Text::Members).to_string()],
        groups: RfmGroup::ALL
            .iter()
            .map(|grp| {
                let n = g.groups.get(grp).copied().unwrap_or(0);
                (group_name(*grp, lang).to_string(), vec![(n as f64, count_share(n, g.buyers))])
            })
            .collect(),
        tick: &|v| compact(v, lang),
        empty: t(Text::NoData),
    }));
    out.push_str("</div>");
    note(out, t(Text::RfmNote));
    out.push_str("</section>\n");
}

fn channels(out: &mut String, d: &PageData, lang: Lang) {
    let t = |k: Text| k.get(lang);
    let c = &d.report.channels;
    let cur = &d.currency;
    section(out, "channels", t(Text::Channels));
    let groups = [(t(Text::SingleChannel), &c.single_channel), (t(Text::MultiChannel), &c.multi_channel)];
    let buyers = c.single_channel.members.saturating_add(c.multi_channel.members);
    out.push_str("<div class=\"row\">");
    out.push_str(&bars(&Bars {
        name: "channel_members",
        title: t(Text::ChannelMembersTitle),
        axis: t(Text::MembersUnit),
        series: vec![t(Text::Members).to_string()],
        groups: groups
            .iter()
            .map(|(l, g)| (l.to_string(), vec![(g.members as f64, count_share(g.members, buyers))]))
            .collect(),
        tick: &|v| compact(v, lang),
        empty: t(Text::NoData),
    }));
    out.push_str(&bars(&Bars {
        name: "channel_spend",
        title: t(Text::ChannelSpendTitle),
        axis: &format!("{} ({cur})", t(Text::AverageSpend)),
        series: vec![t(Text::AverageSpend).to_string()],
        groups: groups
            .iter()
            .map(|(l, g)| (l.to_string(), vec![(f(g.average_spend), money(g.average_spend, cur, lang))]))
            .collect(),
        tick: &|v| compact(v, lang),
        empty: t(Text::NoData),
    }));
    out.push_str("</div>");
    let _ = write!(
        out,
        "<table><tr><th></th><th>{}</th><th>{}</th><th>{}</th></tr>",
        escape(t(Text::Members)),
        escape(t(Text::Spend)),
        escape(t(Text::AverageSpend))
    );
    for (label, g) in groups {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(label),
            escape(&int(i128::from(g.members))),
            escape(&money(g.spend, cur, lang)),
            escape(&money(g.average_spend, cur, lang))
        );
    }
    out.push_str("</table>");
    let per: Vec<String> = c.by_channel.iter().map(|(k, n)| format!("{k} {}", int(i128::from(*n)))).collect();
    if !per.is_empty() {
        note(out, &format!("{}: {}", t(Text::ByChannel), per.join(", ")));
    }
    out.push_str("</section>\n");
}

/// One figure of a programme in the what-if comparison.
type Figure = fn(&ProgrammeFigures) -> i64;

fn what_if(out: &mut String, c: &Comparison, lang: Lang, tz: Tz) {
    let t = |k: Text| k.get(lang);
    section(out, "whatif", t(Text::WhatIf));
    let ps = &c.programmes;
    let metrics: [(Text, Figure); 4] = [
        (Text::PointsIssued, |p| p.points_issued),
        (Text::PointsRedeemed, |p| p.points_redeemed),
        (Text::PointsExpired, |p| p.points_expired),
        (Text::PointsOutstanding, |p| p.points_outstanding),
    ];
    out.push_str(&bars(&Bars {
        name: "whatif",
        title: &format!("{} ({} {})", t(Text::WhatIfTitle), t(Text::AsOf), date(c.until, tz, lang)),
        axis: t(Text::PointsUnit),
        series: ps.iter().map(|p| p.label.clone()).collect(),
        groups: metrics
            .iter()
            .map(|(k, get)| {
                (t(*k).to_string(), ps.iter().map(|p| (get(p) as f64, compact(get(p) as f64, lang))).collect())
            })
            .collect(),
        tick: &|v| compact(v, lang),
        empty: t(Text::NoData),
    }));
    let _ = write!(out, "<table><tr><th>{}</th>", escape(t(Text::Programme)));
    for p in ps {
        let _ = write!(out, "<th>{}</th>", escape(&p.label));
    }
    out.push_str("</tr>");
    let mut row = |name: &str, cell: &dyn Fn(&ProgrammeFigures) -> String| {
        let _ = write!(out, "<tr><td>{}</td>", escape(name));
        for p in ps {
            let _ = write!(out, "<td>{}</td>", escape(&cell(p)));
        }
        out.push_str("</tr>");
    };
    row(t(Text::Programme), &|p| p.programme.clone());
    row(t(Text::Orders), &|p| int(i128::from(p.orders)));
    row(t(Text::Members), &|p| int(i128::from(p.members)));
    for (k, get) in &metrics {
        row(t(*k), &|p| int(i128::from(get(p))));
    }
    row(t(Text::LiabilityValue), &|p| money(p.liability_value, &p.currency, lang));
    row(t(Text::TierChanges), &|p| int(i128::from(p.tier_changes)));
    out.push_str("</table>");
    for m in &c.movers {
        note(
            out,
            &format!(
                "{} → {}: {} {}, {} {}",
                m.from,
                m.to,
                int(i128::from(m.up)),
                t(Text::MoversUp),
                int(i128::from(m.down)),
                t(Text::MoversDown)
            ),
        );
    }
    note(out, t(Text::WhatIfNote));
    for n in &c.notes {
        note(out, n);
    }
    out.push_str("</section>\n");
}
