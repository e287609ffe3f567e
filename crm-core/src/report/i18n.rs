//! The words and number formats of the report page, in English and Chinese.
//!
//! Every visible string goes through `Text` (an exhaustive match, so a
//! missing translation does not compile) or one of the formatters here.

use std::str::FromStr;

use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::analytics::RfmGroup;
use crate::error::{CrmError, Result};
use crate::lifecycle::Stage;
use crate::time::local_date;

/// The language of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    En,
    Zh,
}

impl Lang {
    /// The BCP 47 tag of the page (`en`, `zh-CN`).
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }
}

impl FromStr for Lang {
    type Err = CrmError;

    /// `en` or `zh` (case-insensitive; `zh-CN`, `zh-Hans` too).
    fn from_str(s: &str) -> Result<Lang> {
        match s.to_ascii_lowercase().as_str() {
            "en" | "en-us" | "en-gb" => Ok(Lang::En),
            "zh" | "zh-cn" | "zh-hans" => Ok(Lang::Zh),
            _ => Err(CrmError::invalid("lang", format!("must be \"en\" or \"zh\", got {s:?}"))),
        }
    }
}

/// Every fixed string of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Text {
    Title,
    AsOf,
    FlowsBetween,
    Headline,
    Members,
    MembersUnit,
    Buyers,
    ActiveShare,
    ActiveShareNote,
    RepurchaseRate,
    RepurchaseNote,
    Liability,
    LiabilityNote,
    Tiers,
    TiersTitle,
    NoTiers,
    Lifecycle,
    StagesTitle,
    FlowsTitle,
    FlowsFrom,
    FlowsTo,
    FlowsNote,
    PointsLiability,
    LiabilityTitle,
    Points,
    PointsUnit,
    Value,
    Outstanding,
    ExpiringWithin,
    Days,
    Breakage,
    BreakageNote,
    EarnedRedeemedExpired,
    Cohorts,
    CohortsTitle,
    CohortMonth,
    MonthsSinceFirst,
    CohortsNote,
    CohortsTruncated,
    Rfm,
    RfmTitle,
    RfmGroupsTitle,
    Recency,
    Frequency,
    RfmNote,
    Channels,
    ChannelMembersTitle,
    ChannelSpendTitle,
    SingleChannel,
    MultiChannel,
    Spend,
    AverageSpend,
    ByChannel,
    WhatIf,
    WhatIfTitle,
    WhatIfNote,
    Programme,
    PointsIssued,
    PointsRedeemed,
    PointsExpired,
    PointsOutstanding,
    LiabilityValue,
    TierChanges,
    Orders,
    MoversUp,
    MoversDown,
    NoData,
    Footer,
}

impl Text {
    pub(crate) fn get(self, lang: Lang) -> &'static str {
        let (en, zh) = match self {
            Text::Title => ("Loyalty programme report", "会员运营报告"),
            Text::AsOf => ("as of", "统计时点"),
            Text::FlowsBetween => ("stage flows", "阶段流转"),
            Text::Headline => ("Headline figures", "核心指标"),
            Text::Members => ("Members", "会员数"),
            Text::MembersUnit => ("members", "会员数（人）"),
            Text::Buyers => ("buyers", "购买会员"),
            Text::ActiveShare => ("Active share", "活跃会员占比"),
            Text::ActiveShareNote => ("new, active or reactivated", "新客、活跃或回流"),
            Text::RepurchaseRate => ("Repurchase rate", "复购率"),
            Text::RepurchaseNote => ("buyers with 2+ orders", "下单两次及以上的购买会员"),
            Text::Liability => ("Outstanding liability", "积分负债"),
            Text::LiabilityNote => ("points", "积分"),
            Text::Tiers => ("Tier distribution", "会员等级分布"),
            Text::TiersTitle => ("Members per tier", "各等级会员数"),
            Text::NoTiers => ("The programme has no tier ladder.", "该方案未设置会员等级。"),
            Text::Lifecycle => ("Lifecycle stages", "生命周期"),
            Text::StagesTitle => ("Members per stage", "各阶段会员数"),
            Text::FlowsTitle => ("Stage flows", "阶段流转"),
            Text::FlowsFrom => ("stage at", "起始阶段"),
            Text::FlowsTo => ("stage at", "结束阶段"),
            Text::FlowsNote => (
                "Members who joined after the first date count as prospects there.",
                "起始日之后入会的会员在起始日计为潜客。",
            ),
            Text::PointsLiability => ("Points liability", "积分负债"),
            Text::LiabilityTitle => ("Outstanding points and what expires soon", "未使用积分与即将过期积分"),
            Text::Points => ("points", "积分"),
            Text::PointsUnit => ("points", "积分（分）"),
            Text::Value => ("value", "价值"),
            Text::Outstanding => ("outstanding", "未使用"),
            Text::ExpiringWithin => ("expiring within", "到期于"),
            Text::Days => ("days", "天内"),
            Text::Breakage => ("Breakage", "沉淀率"),
            Text::BreakageNote => (
                "expired ÷ (expired + redeemed); the outstanding points expected never to be redeemed at that rate",
                "过期 ÷（过期 + 兑换）；按此比例预计永不兑换的未使用积分",
            ),
            Text::EarnedRedeemedExpired => ("earned / redeemed / expired (lifetime)", "累计发放 / 兑换 / 过期"),
            Text::Cohorts => ("Cohort retention", "同期群留存"),
            Text::CohortsTitle => ("Share of each cohort buying again, by month", "各月同期群的逐月复购留存"),
            Text::CohortMonth => ("first-order month (members)", "首单月份（人数）"),
            Text::MonthsSinceFirst => ("months since the first order", "首单后月数"),
            Text::CohortsNote => (
                "Month 0 is the month of the first paid order: 100% by definition.",
                "第 0 月为首个付款订单所在月份，按定义为 100%。",
            ),
            Text::CohortsTruncated => ("Only the latest cohorts and months are shown.", "仅显示最近的同期群与月份。"),
            Text::Rfm => ("RFM grid", "RFM 分析"),
            Text::RfmTitle => ("Buyers by recency and frequency score", "按最近购买与购买频次评分的会员数"),
            Text::RfmGroupsTitle => ("Buyers per RFM group", "各 RFM 分群会员数"),
            Text::Recency => ("recency score (5 = most recent)", "最近购买评分（5 = 最近）"),
            Text::Frequency => ("frequency score (5 = most orders)", "购买频次评分（5 = 最多）"),
            Text::RfmNote => (
                "Scores are ranks in fifths over the buyers; paid orders net of refunds up to the report date.",
                "评分为购买会员中的五分位排名；统计截至报告日的付款订单（扣除退款）。",
            ),
            Text::Channels => ("Single- and multi-channel members", "单渠道与多渠道会员"),
            Text::ChannelMembersTitle => ("Buyers by number of channels", "按购买渠道数的会员数"),
            Text::ChannelSpendTitle => ("Average spend per buyer", "人均消费"),
            Text::SingleChannel => ("single channel", "单渠道"),
            Text::MultiChannel => ("multi-channel", "多渠道"),
            Text::Spend => ("spend", "消费额"),
            Text::AverageSpend => ("average spend", "人均消费"),
            Text::ByChannel => ("buyers per channel", "各渠道购买会员"),
            Text::WhatIf => ("What-if comparison", "方案模拟对比"),
            Text::WhatIfTitle => ("The same history under each programme", "同一历史在各方案下的结果"),
            Text::WhatIfNote => ("The first programme is the base.", "第一个方案为基准。"),
            Text::Programme => ("programme", "方案"),
            Text::PointsIssued => ("points issued", "发放积分"),
            Text::PointsRedeemed => ("points redeemed", "兑换积分"),
            Text::PointsExpired => ("points expired", "过期积分"),
            Text::PointsOutstanding => ("points outstanding", "未使用积分"),
            Text::LiabilityValue => ("liability", "积分负债"),
            Text::TierChanges => ("tier changes", "等级变动"),
            Text::Orders => ("orders", "订单"),
            Text::MoversUp => ("members in a higher tier", "等级更高的会员"),
            Text::MoversDown => ("members in a lower tier", "等级更低的会员"),
            Text::NoData => ("no data", "暂无数据"),
            Text::Footer => (
                "Generated by crm-core from the engine's store; one self-contained file, no network access.",
                "由 crm-core 根据引擎数据生成；单一自包含文件，无需联网。",
            ),
        };
        match lang {
            Lang::En => en,
            Lang::Zh => zh,
        }
    }
}

/// The display name of a lifecycle stage.
pub(crate) fn stage_name(stage: Stage, lang: Lang) -> &'static str {
    let (en, zh) = match stage {
        Stage::Prospect => ("prospect", "潜客"),
        Stage::New => ("new", "新客"),
        Stage::Active => ("active", "活跃"),
        Stage::Reactivated => ("reactivated", "回流"),
        Stage::AtRisk => ("at risk", "流失风险"),
        Stage::Dormant => ("dormant", "沉睡"),
        Stage::Churned => ("churned", "流失"),
    };
    if lang == Lang::Zh {
        zh
    } else {
        en
    }
}

/// The display name of an RFM group.
pub(crate) fn group_name(group: RfmGroup, lang: Lang) -> &'static str {
    let (en, zh) = match group {
        RfmGroup::Champions => ("champions", "重要价值"),
        RfmGroup::Loyal => ("loyal", "忠诚"),
        RfmGroup::PotentialLoyalists => ("potential loyalists", "潜力忠诚"),
        RfmGroup::New => ("new", "新客"),
        RfmGroup::Promising => ("promising", "有潜力"),
        RfmGroup::NeedAttention => ("need attention", "需关注"),
        RfmGroup::AboutToSleep => ("about to sleep", "即将沉睡"),
        RfmGroup::CannotLose => ("cannot lose", "不可流失"),
        RfmGroup::AtRisk => ("at risk", "流失风险"),
        RfmGroup::Hibernating => ("hibernating", "沉睡"),
        RfmGroup::Lost => ("lost", "已流失"),
    };
    if lang == Lang::Zh {
        zh
    } else {
        en
    }
}

/// An integer with thousands separators: `1,234,567` (both languages group
/// by three in running text).
pub(crate) fn int(n: i128) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A decimal rounded half-even to `dp` places with thousands separators.
pub(crate) fn decimal(d: Decimal, dp: u32) -> String {
    let r = d.round_dp_with_strategy(dp, RoundingStrategy::MidpointNearestEven);
    let text = format!("{:.*}", dp as usize, r);
    let (sign, body) = text.strip_prefix('-').map_or(("", text.as_str()), |b| ("-", b));
    let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
    let grouped = whole.parse::<i128>().map(int).unwrap_or_else(|_| whole.to_string());
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac}")
    }
}

/// Money: `USD 1,234.56` in English, `1,234.56 USD` in Chinese, to the
/// currency's minor unit.
pub(crate) fn money(d: Decimal, currency: &str, lang: Lang) -> String {
    let v = decimal(d, crate::money::minor_unit(currency));
    match lang {
        Lang::En => format!("{currency} {v}"),
        Lang::Zh => format!("{v} {currency}"),
    }
}

/// A rate (0.1234) as a percentage with one decimal (`12.3%`).
pub(crate) fn pct(rate: Decimal) -> String {
    format!("{}%", decimal(rate * Decimal::ONE_HUNDRED, 1))
}

/// A short number for axes and bar ends: `12.3k`, `4.5M` in English,
/// `1.2万`, `3.4亿` in Chinese; below 10,000 the full integer.
pub(crate) fn compact(x: f64, lang: Lang) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let a = x.abs();
    let units: &[(f64, &str)] = match lang {
        Lang::En => &[(1e9, "B"), (1e6, "M"), (1e4, "k")],
        Lang::Zh => &[(1e8, "亿"), (1e4, "万")],
    };
    for &(size, suffix) in units {
        if a >= size {
            // English "k" counts thousands even though it starts at 10,000.
            let size = if suffix == "k" { 1e3 } else { size };
            let v = x / size;
            let text = if v.abs() >= 100.0 { format!("{v:.0}") } else { format!("{v:.1}") };
            return format!("{}{suffix}", text.trim_end_matches(".0"));
        }
    }
    if x.fract() == 0.0 {
        int(x as i128)
    } else {
        let text = format!("{x:.1}");
        text.trim_end_matches(".0").to_string()
    }
}

/// A date in the programme's zone: `1998-07-01` or `1998年7月1日`.
pub(crate) fn date(t: DateTime<Utc>, tz: Tz, lang: Lang) -> String {
    let d = local_date(tz, t);
    match lang {
        Lang::En => d.format("%Y-%m-%d").to_string(),
        Lang::Zh => format!("{}年{}月{}日", d.year(), d.month(), d.day()),
    }
}

/// A `YYYY-MM` month label: unchanged in English, `1997年1月` in Chinese.
pub(crate) fn month(label: &str, lang: Lang) -> String {
    match (lang, label.split_once('-')) {
        (Lang::Zh, Some((y, m))) => format!("{y}年{}月", m.trim_start_matches('0')),
        _ => label.to_string(),
    }
}

/// A decimal as `f64` for drawing (never for arithmetic on money).
pub(crate) fn f(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_and_compact_per_language() {
        assert_eq!(int(1_234_567), "1,234,567");
        assert_eq!(int(-1_000), "-1,000");
        assert_eq!(int(999), "999");
        assert_eq!(decimal(Decimal::new(-123_456_789, 2), 2), "-1,234,567.89");
        assert_eq!(money(Decimal::new(12_345, 2), "USD", Lang::En), "USD 123.45");
        assert_eq!(money(Decimal::new(12_345, 0), "JPY", Lang::Zh), "12,345 JPY");
        assert_eq!(pct(Decimal::new(1234, 4)), "12.3%");
        assert_eq!(compact(23_570.0, Lang::En), "23.6k");
        assert_eq!(compact(23_570.0, Lang::Zh), "2.4万");
        assert_eq!(compact(250_000_000.0, Lang::Zh), "2.5亿");
        assert_eq!(compact(2_000.0, Lang::En), "2,000");
        assert_eq!(compact(f64::NAN, Lang::En), "–");
        assert_eq!(month("1997-01", Lang::Zh), "1997年1月");
    }

    #[test]
    fn languages_parse_by_their_codes() {
        assert_eq!("zh".parse::<Lang>().unwrap(), Lang::Zh);
        assert_eq!("EN".parse::<Lang>().unwrap(), Lang::En);
        let e = "fr".parse::<Lang>().unwrap_err();
        assert_eq!(e.field(), Some("lang"));
    }
}
