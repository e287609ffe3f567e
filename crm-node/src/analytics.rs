//! Node bindings of `crm_core::analytics` and `crm_core::segment`.
//!
//! * [`rfm`] and [`summary`] read an order history, either as an array of
//!   `{memberId, placedAt, amount}` rows or as columns
//!   `{memberId: [...], placedAt: [...], amount: [...]}` (the fast path: no
//!   per-order objects on the JavaScript side), straight into the core's
//!   [`Orders`] columns. Amounts stay exact: integer minor units at `scale`
//!   decimal places (default 2); a value with more places is an error.
//! * [`fit_bg_nbd`], [`fit_gamma_gamma`], [`p_alive`], [`expected_purchases`]
//!   and [`clv`]: the customer-value models over summary rows or columns.
//! * [`Rule`]: the segment rule language (text and JSON forms) and its
//!   evaluation for one member or for every member over columns.
//!
//! Every function here is synchronous on purpose: they are pure CPU work on
//! data the caller already holds in memory (no store, no I/O), and fast (RFM
//! over a million orders or a BG/NBD fit over tens of thousands of customers
//! takes well under a second), so a worker thread would cost a copy of the
//! input and buy nothing; most of the time goes into reading the JS values,
//! which must happen on the JS thread anyway. Callers who must keep the event
//! loop free during a very large run can call them from a `worker_threads`
//! worker.

use std::borrow::Cow;
use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use crm_core::analytics::orders::{day_of_date, day_of_instant, Day, MemberIds};
use crm_core::analytics::{self as core, BgNbd, ClvOptions, GammaGamma, Orders, Period};
use crm_core::segment::{self, eval_columns, Field, FieldType, FieldValue, MemberColumns, MemberValues};
use crm_core::{money, CrmError, MemberId};
use napi::bindgen_prelude::{ClassInstance, JsObjectValue, JsValue, Object, Uint8Array, Unknown};
use napi::{Env, JsDate, ValueType};
use napi_derive::napi;
use serde_json::Value;

use crate::convert::{boolean, integer, string, JsDocument, Mode, Reader, MAX_SAFE};
use crate::errors::{into_napi, invalid, BResult, Fail};

// ---------------------------------------------------------------------------
// Small readers.

/// An options object (`undefined` or `null`: all defaults).
struct Options<'a>(Option<Object<'a>>);

impl<'a> Options<'a> {
    fn new(v: Option<Unknown<'a>>) -> BResult<Self> {
        let Some(v) = v else { return Ok(Options(None)) };
        match v.get_type()? {
            ValueType::Undefined | ValueType::Null => Ok(Options(None)),
            ValueType::Object => Ok(Options(Some(unsafe { v.cast::<Object>() }?))),
            _ => Err(invalid("options", "must be an object")),
        }
    }

    /// A present option (`undefined` and `null` count as absent).
    fn get(&self, name: &str) -> BResult<Option<Unknown<'a>>> {
        let Some(obj) = &self.0 else { return Ok(None) };
        present(obj.get::<Unknown>(name)?)
    }
}

/// `None` for a missing, `undefined` or `null` value.
fn present(v: Option<Unknown<'_>>) -> BResult<Option<Unknown<'_>>> {
    match v {
        Some(u) if matches!(u.get_type()?, ValueType::Undefined | ValueType::Null) => Ok(None),
        other => Ok(other),
    }
}

/// A JS object argument (not an array).
fn object<'a>(v: Unknown<'a>, field: &str, what: &str) -> BResult<Object<'a>> {
    if v.get_type()? != ValueType::Object {
        return Err(invalid(field, format!("must be {what}")));
    }
    let obj = unsafe { v.cast::<Object>() }?;
    if obj.is_array()? || obj.is_date()? {
        return Err(invalid(field, format!("must be {what}")));
    }
    Ok(obj)
}

/// An array or a typed array, read element by element.
struct Column<'a> {
    obj: Object<'a>,
    len: u32,
}

impl<'a> Column<'a> {
    fn new(v: Unknown<'a>, field: &str) -> BResult<Column<'a>> {
        let bad = || invalid(field, "must be an array");
        if v.get_type()? != ValueType::Object {
            return Err(bad());
        }
        let obj = unsafe { v.cast::<Object>() }?;
        let len = if obj.is_array()? {
            obj.get_array_length()?
        } else if obj.is_typedarray()? {
            obj.get_named_property::<u32>("length")?
        } else {
            return Err(bad());
        };
        Ok(Column { obj, len })
    }

    /// A plain array only (rows of objects).
    fn array(v: Unknown<'a>, field: &str, what: &str) -> BResult<Column<'a>> {
        if v.get_type()? == ValueType::Object {
            let obj = unsafe { v.cast::<Object>() }?;
            if obj.is_array()? {
                let len = obj.get_array_length()?;
                return Ok(Column { obj, len });
            }
        }
        Err(invalid(field, format!("must be {what}")))
    }

    fn get(&self, i: u32) -> BResult<Unknown<'a>> {
        Ok(self.obj.get_element::<Unknown>(i)?)
    }
}

/// A finite JS number.
fn number(v: Unknown<'_>, field: &str) -> BResult<f64> {
    if v.get_type()? != ValueType::Number {
        return Err(invalid(field, "must be a number"));
    }
    let x = unsafe { v.cast::<f64>() }?;
    if !x.is_finite() {
        return Err(invalid(field, "must be a finite number"));
    }
    Ok(x)
}

/// A `Date`'s instant.
fn date_instant(v: Unknown<'_>, field: &str) -> BResult<Option<DateTime<Utc>>> {
    let obj = unsafe { v.cast::<Object>() }?;
    if !obj.is_date()? {
        return Ok(None);
    }
    let ms = unsafe { v.cast::<JsDate>() }?.value_of()?;
    if !ms.is_finite() {
        return Err(invalid(field, "is an invalid Date"));
    }
    DateTime::from_timestamp_millis(ms as i64).map(Some).ok_or_else(|| invalid(field, "is an invalid Date"))
}

/// A bare `YYYY-MM-DD` date.
fn bare_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    (s.len() == 10).then(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()).flatten()
}

/// An order time: a `Date`, an ISO-8601 string with an offset, or a bare
/// `YYYY-MM-DD` date (midnight UTC, as in the order CSV).
fn order_time(v: Unknown<'_>, field: &str) -> BResult<DateTime<Utc>> {
    let bad = || invalid(field, "must be a Date, an ISO-8601 string with an offset or a YYYY-MM-DD date");
    match v.get_type()? {
        ValueType::String => {
            let s = unsafe { v.cast::<String>() }?;
            if let Ok(t) = s.trim().parse::<DateTime<Utc>>() {
                return Ok(t);
            }
            match bare_date(&s) {
                Some(d) => Ok(d.and_time(chrono::NaiveTime::MIN).and_utc()),
                None => Err(invalid(
                    field,
                    format!("{s:?} is not an ISO-8601 date-time with an offset or a YYYY-MM-DD date"),
                )),
            }
        }
        ValueType::Object => date_instant(v, field)?.ok_or_else(bad),
        _ => Err(bad()),
    }
}

/// A cut-off (`asOf`, `calibrationEnd`): an instant (orders up to and
/// including it count), or a `YYYY-MM-DD` date meaning the END of that UTC
/// day. Returns the instant and its UTC day.
fn cutoff(v: Unknown<'_>, field: &str) -> BResult<(DateTime<Utc>, Day)> {
    if v.get_type()? == ValueType::String {
        let s = unsafe { v.cast::<String>() }?;
        if let Some(d) = bare_date(&s) {
            let end = d.and_hms_milli_opt(23, 59, 59, 999).map(|t| t.and_utc());
            return end.map(|t| (t, day_of_date(d))).ok_or_else(|| invalid(field, "is out of range"));
        }
    }
    let t = order_time(v, field)?;
    Ok((t, day_of_instant(t)))
}

/// A calendar date: `YYYY-MM-DD`, or a `Date` (its UTC date).
fn calendar_date(v: Unknown<'_>, field: &str) -> BResult<NaiveDate> {
    let bad = || invalid(field, "must be a YYYY-MM-DD string or a Date");
    match v.get_type()? {
        ValueType::String => {
            let s = unsafe { v.cast::<String>() }?;
            bare_date(&s).ok_or_else(|| invalid(field, format!("{s:?} is not a YYYY-MM-DD date")))
        }
        ValueType::Object => Ok(date_instant(v, field)?.ok_or_else(bad)?.date_naive()),
        _ => Err(bad()),
    }
}

/// An exact amount in minor units at `scale` places: a decimal string, or a
/// number whose shortest decimal form has at most `scale` places.
fn minor_units(v: Unknown<'_>, scale: u32, field: &str) -> BResult<i64> {
    let text = match v.get_type()? {
        ValueType::String => unsafe { v.cast::<String>() }?,
        ValueType::Number => {
            let x = unsafe { v.cast::<f64>() }?;
            if !x.is_finite() {
                return Err(invalid(field, "must be a finite number"));
            }
            if x.fract() == 0.0 {
                if x.abs() > MAX_SAFE as f64 {
                    return Err(invalid(field, format!("{x} is not a safe integer; pass a decimal string")));
                }
                return (x as i64)
                    .checked_mul(10i64.pow(scale))
                    .ok_or_else(|| invalid(field, format!("{x} is out of range at {scale} decimal places")));
            }
            // Fast path: `x` is the double nearest to r / 10^scale (division is
            // correctly rounded and 10^scale is exact), so that decimal round-trips;
            // below 2^52 one double holds at most one such decimal, so it is also
            // x's shortest form.
            let p = 10f64.powi(scale as i32);
            let r = (x * p).round();
            if r.abs() < 4_503_599_627_370_496.0 && r / p == x {
                return Ok(r as i64);
            }
            format!("{x}")
        }
        _ => return Err(invalid(field, "must be a decimal string or a number")),
    };
    let d = money::parse(&text, field)?.normalize();
    if d.scale() > scale {
        return Err(invalid(
            field,
            format!("{text} has more than {scale} decimal places (see the `scale` option); amounts are never rounded"),
        ));
    }
    10i128
        .checked_pow(scale - d.scale())
        .and_then(|p| d.mantissa().checked_mul(p))
        .and_then(|m| i64::try_from(m).ok())
        .ok_or_else(|| invalid(field, format!("{text} is out of range at {scale} decimal places")))
}

// ---------------------------------------------------------------------------
// Order histories.

/// Row (`orders[3].amount`) or column (`orders.amount[3]`) paths.
#[derive(Clone, Copy)]
enum Form {
    Rows,
    Columns,
}

fn order_path(form: Form, i: u32, name: &str) -> String {
    match form {
        Form::Rows => format!("orders[{i}].{name}"),
        Form::Columns => format!("orders.{name}[{i}]"),
    }
}

/// Reads orders into the core's columns, dropping those after `until`.
struct OrderReader {
    orders: Orders,
    until: DateTime<Utc>,
}

impl OrderReader {
    fn push(
        &mut self,
        form: Form,
        i: u32,
        member: Unknown<'_>,
        placed: Unknown<'_>,
        amount: Unknown<'_>,
    ) -> BResult<()> {
        let placed_at = order_time(placed, &order_path(form, i, "placed_at"))?;
        if member.get_type()? != ValueType::String {
            return Err(invalid(&order_path(form, i, "member_id"), "must be a string"));
        }
        let member = unsafe { member.cast::<String>() }?;
        let amount = minor_units(amount, self.orders.scale, &order_path(form, i, "amount"))?;
        if placed_at > self.until {
            return Ok(());
        }
        let o = &mut self.orders;
        o.member.push(o.ids.intern(member.as_bytes())?);
        o.day.push(day_of_instant(placed_at));
        o.amount.push(amount);
        Ok(())
    }
}

/// Read `orders` (rows or columns) placed up to `until`, amounts at `scale` places.
fn read_orders(v: Unknown<'_>, until: DateTime<Utc>, scale: u32) -> BResult<Orders> {
    let what = "an array of {memberId, placedAt, amount} or an object of columns {memberId, placedAt, amount}";
    if v.get_type()? != ValueType::Object {
        return Err(invalid("orders", format!("must be {what}")));
    }
    let obj = unsafe { v.cast::<Object>() }?;
    let mut r = OrderReader { orders: Orders { scale, ids: MemberIds::new(), ..Orders::default() }, until };
    if obj.is_array()? {
        let rows = Column::array(v, "orders", what)?;
        let n = rows.len as usize;
        r.orders.member.reserve(n);
        r.orders.day.reserve(n);
        r.orders.amount.reserve(n);
        for i in 0..rows.len {
            let row = object(rows.get(i)?, &format!("orders[{i}]"), "an order object {memberId, placedAt, amount}")?;
            let field = |js: &str, core: &str| -> BResult<Unknown<'_>> {
                present(row.get::<Unknown>(js)?)?
                    .ok_or_else(|| invalid(&order_path(Form::Rows, i, core), "is required"))
            };
            r.push(
                Form::Rows,
                i,
                field("memberId", "member_id")?,
                field("placedAt", "placed_at")?,
                field("amount", "amount")?,
            )?;
        }
    } else {
        let column = |js: &str, core: &str| -> BResult<Column<'_>> {
            let v =
                present(obj.get::<Unknown>(js)?)?.ok_or_else(|| invalid(&format!("orders.{core}"), "is required"))?;
            Column::new(v, &format!("orders.{core}"))
        };
        let (member, placed, amount) =
            (column("memberId", "member_id")?, column("placedAt", "placed_at")?, column("amount", "amount")?);
        for (c, name) in [(&placed, "placed_at"), (&amount, "amount")] {
            if c.len != member.len {
                return Err(invalid(
                    &format!("orders.{name}"),
                    format!("has {} rows, member_id has {}", c.len, member.len),
                ));
            }
        }
        let n = member.len as usize;
        r.orders.member.reserve(n);
        r.orders.day.reserve(n);
        r.orders.amount.reserve(n);
        for i in 0..member.len {
            r.push(Form::Columns, i, member.get(i)?, placed.get(i)?, amount.get(i)?)?;
        }
    }
    Ok(r.orders)
}

/// The `scale` option: decimal places of the amounts (default 2).
fn scale_option(o: &Options<'_>) -> BResult<u32> {
    match o.get("scale")? {
        None => Ok(2),
        Some(v) => match integer(v, "scale")? {
            s @ 0..=18 => Ok(s as u32),
            _ => Err(invalid("scale", "must be between 0 and 18")),
        },
    }
}

// ---------------------------------------------------------------------------
// RFM.

/// One member's RFM row.
#[napi(object)]
pub struct RfmRow {
    pub member_id: String,
    /// Whole UTC days from the day of the last counted order to the as-of day (0: bought that day).
    pub recency: u32,
    /// Number of counted orders.
    pub frequency: u32,
    /// Exact sum of the amounts (decimal string at the `scale` option's places).
    #[napi(ts_type = "Decimal")]
    pub monetary: String,
    /// 1..=5; recent buyers score high.
    pub r_score: u32,
    /// 1..=5.
    pub f_score: u32,
    /// 1..=5.
    pub m_score: u32,
    /// The named RFM group of the three scores.
    #[napi(ts_type = "RfmGroup")]
    pub group: String,
    /// Value cluster (0 = most valuable), only with the `clusters` option.
    pub cluster: Option<u32>,
}

fn b_rfm(orders: Unknown<'_>, as_of: Unknown<'_>, options: Option<Unknown<'_>>) -> BResult<Vec<RfmRow>> {
    let o = Options::new(options)?;
    let scale = scale_option(&o)?;
    let clusters = match o.get("clusters")? {
        None => None,
        Some(v) => match integer(v, "clusters")? {
            k @ 1..=1000 => Some(k as usize),
            _ => return Err(invalid("clusters", "must be between 1 and 1000")),
        },
    };
    let seed = match o.get("seed")? {
        None => 1,
        Some(v) => match integer(v, "seed")? {
            s if s >= 0 => s as u64,
            _ => return Err(invalid("seed", "must not be negative")),
        },
    };
    let (until, day) = cutoff(as_of, "as_of")?;
    let orders = read_orders(orders, until, scale)?;
    let table = core::rfm_orders(&orders, day)?;
    let assignment = match clusters {
        Some(k) => {
            Some(core::value_clusters(&table, k, seed).map_err(|e| rename_field(e, "k", "clusters"))?.assignment)
        }
        None => None,
    };
    let mut rows: Vec<u32> = (0..table.len() as u32).collect();
    orders.ids.sort_natural_by(&mut rows, |&r| table.member[r as usize]);
    Ok(rows
        .into_iter()
        .map(|r| {
            let i = r as usize;
            RfmRow {
                member_id: orders.ids.get(table.member[i]).to_string(),
                recency: table.recency[i],
                frequency: table.frequency[i],
                monetary: table.monetary(i).to_string(),
                r_score: table.r_score[i].into(),
                f_score: table.f_score[i].into(),
                m_score: table.m_score[i].into(),
                group: table.group(i).name().to_string(),
                cluster: assignment.as_ref().map(|a| a[i]),
            }
        })
        .collect())
}

/// A core validation error on `from` reported on the binding's name `to`.
fn rename_field(e: CrmError, from: &str, to: &str) -> CrmError {
    match e {
        CrmError::Validation { field, reason } if field == from => CrmError::Validation { field: to.into(), reason },
        other => other,
    }
}

/// RFM scores of every member with an order at or before `asOf`.
///
/// `orders` is an array of `{memberId, placedAt, amount}` or, faster for
/// large histories, columns `{memberId: string[], placedAt: (Date|string)[],
/// amount: (string|number)[]}` (no per-order objects). `placedAt` is a `Date`,
/// an ISO-8601 string with an offset or a `YYYY-MM-DD` date (midnight UTC).
/// `amount` is a decimal string or a number, exact at `scale` decimal places
/// (default 2; more places are an error, never rounded).
///
/// `asOf` is an instant (orders up to it count) or a `YYYY-MM-DD` date (the
/// end of that UTC day). Recency is in whole UTC days; scores are ranks
/// (`crm_core::analytics::rfm`). Rows are sorted by member id in natural
/// order: numerically when every id is an integer (`"9"` before `"10"`),
/// else by UTF-8 bytes. With `clusters: k`, each row also gets its value
/// cluster (k-means++ with `seed`, default 1; 0 is the most valuable).
///
/// Synchronous: pure CPU work on data already in memory (see the module docs).
#[napi(
    catch_unwind,
    ts_args_type = "orders: OrdersInput, asOf: Instant, options?: RfmOptions",
    ts_return_type = "RfmRow[]"
)]
pub fn rfm(
    env: Env,
    orders: Unknown<'_>,
    as_of: Unknown<'_>,
    options: Option<Unknown<'_>>,
) -> napi::Result<Vec<RfmRow>> {
    b_rfm(orders, as_of, options).map_err(|f| into_napi(&env, f))
}

// ---------------------------------------------------------------------------
// Customer summaries.

/// One customer's summary for the value models.
#[napi(object)]
pub struct CustomerSummary {
    pub member_id: String,
    /// Repeat purchase days (distinct purchase days after the first).
    pub frequency: f64,
    /// First to last purchase day, in periods.
    pub recency: f64,
    /// Age: first purchase day to the calibration end, in periods.
    #[napi(js_name = "T")]
    pub t: f64,
    /// Mean day total of the repeat purchase days, in currency units (0 without repeats).
    pub monetary_value: f64,
}

fn period(v: Option<Unknown<'_>>) -> BResult<Option<Period>> {
    let Some(v) = v else { return Ok(None) };
    match string(v, "period")?.as_str() {
        "day" => Ok(Some(Period::Day)),
        "week" => Ok(Some(Period::Week)),
        other => Err(invalid("period", format!("must be \"day\" or \"week\", got {other:?}"))),
    }
}

fn b_summary(orders: Unknown<'_>, end: Unknown<'_>, options: Option<Unknown<'_>>) -> BResult<Vec<CustomerSummary>> {
    let o = Options::new(options)?;
    let scale = scale_option(&o)?;
    let period = period(o.get("period")?)?.unwrap_or_default();
    let (until, day) = cutoff(end, "calibration_end")?;
    let orders = read_orders(orders, until, scale)?;
    let s = core::summarize(&orders, day, period)?;
    let mut rows: Vec<usize> = (0..s.len()).collect();
    orders.ids.sort_natural_by(&mut rows, |&i| s.member[i]);
    Ok(rows
        .into_iter()
        .map(|i| CustomerSummary {
            member_id: orders.ids.get(s.member[i]).to_string(),
            frequency: s.frequency[i],
            recency: s.recency[i],
            t: s.t[i],
            monetary_value: s.monetary[i],
        })
        .collect())
}

/// Per-customer (frequency, recency, T, monetaryValue) of the orders placed up
/// to `calibrationEnd` (an instant, or a `YYYY-MM-DD` date: the end of that
/// UTC day), as in the published CDNOW analyses: purchases are counted per
/// UTC day. `period` (`'day'`, the default, or `'week'`) is the unit of
/// recency and T. `orders` as for {@link rfm} (rows or the faster columns).
/// Rows are sorted by member id as in {@link rfm}.
#[napi(
    catch_unwind,
    ts_args_type = "orders: OrdersInput, calibrationEnd: Instant, options?: SummaryOptions",
    ts_return_type = "CustomerSummary[]"
)]
pub fn summary(
    env: Env,
    orders: Unknown<'_>,
    calibration_end: Unknown<'_>,
    options: Option<Unknown<'_>>,
) -> napi::Result<Vec<CustomerSummary>> {
    b_summary(orders, calibration_end, options).map_err(|f| into_napi(&env, f))
}

/// Summary input as columns; `monetary` per row when given.
struct SummaryData {
    frequency: Vec<f64>,
    recency: Vec<f64>,
    t: Vec<f64>,
    monetary: Vec<Option<f64>>,
}

fn read_summary(v: Unknown<'_>) -> BResult<SummaryData> {
    let what = "an array of {frequency, recency, T, monetaryValue?} or an object of columns";
    if v.get_type()? != ValueType::Object {
        return Err(invalid("summary", format!("must be {what}")));
    }
    let obj = unsafe { v.cast::<Object>() }?;
    let mut d = SummaryData { frequency: Vec::new(), recency: Vec::new(), t: Vec::new(), monetary: Vec::new() };
    const NAMES: [(&str, &str); 4] =
        [("frequency", "frequency"), ("recency", "recency"), ("T", "T"), ("monetaryValue", "monetary_value")];
    if obj.is_array()? {
        let rows = Column::array(v, "summary", what)?;
        for i in 0..rows.len {
            let row =
                object(rows.get(i)?, &format!("summary[{i}]"), "an object {frequency, recency, T, monetaryValue?}")?;
            let mut vals = [None; 4];
            for (k, (js, core)) in NAMES.iter().enumerate() {
                let path = format!("summary[{i}].{core}");
                vals[k] = match present(row.get::<Unknown>(js)?)? {
                    Some(x) => Some(number(x, &path)?),
                    None if k < 3 => return Err(invalid(&path, "is required")),
                    None => None,
                };
            }
            d.frequency.push(vals[0].unwrap_or_default());
            d.recency.push(vals[1].unwrap_or_default());
            d.t.push(vals[2].unwrap_or_default());
            d.monetary.push(vals[3]);
        }
    } else {
        let mut cols = Vec::with_capacity(4);
        for (k, (js, core)) in NAMES.iter().enumerate() {
            let path = format!("summary.{core}");
            cols.push(match present(obj.get::<Unknown>(js)?)? {
                Some(c) => Some(Column::new(c, &path)?),
                None if k < 3 => return Err(invalid(&path, "is required")),
                None => None,
            });
        }
        let n = cols[0].as_ref().map_or(0, |c| c.len);
        for (k, c) in cols.iter().enumerate() {
            if let Some(c) = c.as_ref().filter(|c| c.len != n) {
                return Err(invalid(
                    &format!("summary.{}", NAMES[k].1),
                    format!("has {} rows, frequency has {n}", c.len),
                ));
            }
        }
        for (k, c) in cols.iter().enumerate() {
            let Some(c) = c else {
                d.monetary = vec![None; n as usize];
                continue;
            };
            let mut out = Vec::with_capacity(n as usize);
            for i in 0..n {
                out.push(number(c.get(i)?, &format!("summary.{}[{i}]", NAMES[k].1))?);
            }
            match k {
                0 => d.frequency = out,
                1 => d.recency = out,
                2 => d.t = out,
                _ => d.monetary = out.into_iter().map(Some).collect(),
            }
        }
    }
    Ok(d)
}

// ---------------------------------------------------------------------------
// BG/NBD and Gamma-Gamma.

/// A fitted BG/NBD model.
#[napi(object)]
pub struct BgNbdFit {
    /// Shape of the purchase-rate gamma.
    pub r: f64,
    /// Scale of the purchase-rate gamma (in periods).
    pub alpha: f64,
    /// Dropout beta, first shape.
    pub a: f64,
    /// Dropout beta, second shape.
    pub b: f64,
    /// Total log-likelihood at the optimum.
    pub log_likelihood: f64,
    /// True when the optimiser's gradient vanished to its tolerance.
    pub converged: bool,
}

/// A fitted Gamma-Gamma spend model.
#[napi(object)]
pub struct GammaGammaFit {
    pub p: f64,
    pub q: f64,
    pub gamma: f64,
    /// Total log-likelihood at the optimum (customers with repeat purchases).
    pub log_likelihood: f64,
    /// True when the optimiser's gradient vanished to its tolerance.
    pub converged: bool,
}

fn b_fit_bg_nbd(summary: Unknown<'_>) -> BResult<BgNbdFit> {
    let d = read_summary(summary)?;
    let (m, report) = BgNbd::fit(&d.frequency, &d.recency, &d.t)?;
    Ok(BgNbdFit {
        r: m.r,
        alpha: m.alpha,
        a: m.a,
        b: m.b,
        log_likelihood: report.log_likelihood,
        converged: report.converged,
    })
}

/// Fit the BG/NBD repeat-purchase model by maximum likelihood on customer
/// summaries: an array of `{frequency, recency, T}` (e.g. from
/// {@link summary}) or columns `{frequency: number[], recency: number[],
/// T: number[]}` (arrays or `Float64Array`s). Synchronous: a fit over tens
/// of thousands of customers takes milliseconds.
#[napi(catch_unwind, ts_args_type = "summary: SummaryInput", ts_return_type = "BgNbdFit")]
pub fn fit_bg_nbd(env: Env, summary: Unknown<'_>) -> napi::Result<BgNbdFit> {
    b_fit_bg_nbd(summary).map_err(|f| into_napi(&env, f))
}

/// Gamma-Gamma input: frequency and mean value of every row.
fn spend_rows(d: &SummaryData) -> BResult<Vec<f64>> {
    d.monetary
        .iter()
        .enumerate()
        .map(|(i, m)| match m {
            Some(m) => Ok(*m),
            None if d.frequency[i] == 0.0 => Ok(0.0),
            None => {
                Err(invalid(&format!("summary[{i}].monetary_value"), "is required (the customer has repeat purchases)"))
            }
        })
        .collect()
}

fn b_fit_gamma_gamma(summary: Unknown<'_>) -> BResult<GammaGammaFit> {
    let d = read_summary(summary)?;
    let monetary = spend_rows(&d)?;
    let (m, report) = GammaGamma::fit(&d.frequency, &monetary)?;
    Ok(GammaGammaFit {
        p: m.p,
        q: m.q,
        gamma: m.gamma,
        log_likelihood: report.log_likelihood,
        converged: report.converged,
    })
}

/// Fit the Gamma-Gamma spend model on customer summaries with
/// `monetaryValue` (the mean value of the repeat purchases). Customers with
/// frequency 0 are skipped; the others need a positive `monetaryValue`
/// (leave out customers whose repeat purchases total 0).
#[napi(catch_unwind, ts_args_type = "summary: SummaryInput", ts_return_type = "GammaGammaFit")]
pub fn fit_gamma_gamma(env: Env, summary: Unknown<'_>) -> napi::Result<GammaGammaFit> {
    b_fit_gamma_gamma(summary).map_err(|f| into_napi(&env, f))
}

/// A positive finite parameter of a fitted model.
fn param(obj: &Object<'_>, name: &str, prefix: &str) -> BResult<f64> {
    let path = format!("{prefix}.{name}");
    let v = present(obj.get::<Unknown>(name)?)?.ok_or_else(|| invalid(&path, "is required"))?;
    let x = number(v, &path)?;
    if x <= 0.0 {
        return Err(invalid(&path, format!("must be positive, got {x}")));
    }
    Ok(x)
}

fn bg_params(v: Unknown<'_>, field: &str) -> BResult<BgNbd> {
    let o = object(v, field, "BG/NBD parameters {r, alpha, a, b}")?;
    Ok(BgNbd {
        r: param(&o, "r", field)?,
        alpha: param(&o, "alpha", field)?,
        a: param(&o, "a", field)?,
        b: param(&o, "b", field)?,
    })
}

fn gg_params(v: Unknown<'_>, field: &str) -> BResult<GammaGamma> {
    let o = object(v, field, "Gamma-Gamma parameters {p, q, gamma}")?;
    Ok(GammaGamma { p: param(&o, "p", field)?, q: param(&o, "q", field)?, gamma: param(&o, "gamma", field)? })
}

/// One customer's (x, t_x, T), checked as the core checks summary rows.
fn history(x: Unknown<'_>, t_x: Unknown<'_>, t: Unknown<'_>) -> BResult<(f64, f64, f64)> {
    let (x, t_x, t) = (number(x, "frequency")?, number(t_x, "recency")?, number(t, "T")?);
    if x < 0.0 || x.fract() != 0.0 {
        return Err(invalid("frequency", format!("{x} is not a whole number >= 0")));
    }
    if t < 0.0 {
        return Err(invalid("T", format!("{t} is not an age >= 0")));
    }
    if !(0.0..=t).contains(&t_x) {
        return Err(invalid("recency", format!("{t_x} is not between 0 and T = {t}")));
    }
    Ok((x, t_x, t))
}

/// Probability that a customer with `frequency` repeat purchases, the last
/// at `recency`, observed for `T` periods, is still alive (BG/NBD).
#[napi(
    catch_unwind,
    ts_args_type = "params: BgNbdParams, frequency: number, recency: number, T: number",
    ts_return_type = "number"
)]
pub fn p_alive(
    env: Env,
    params: Unknown<'_>,
    frequency: Unknown<'_>,
    recency: Unknown<'_>,
    t: Unknown<'_>,
) -> napi::Result<f64> {
    (|| -> BResult<f64> {
        let m = bg_params(params, "params")?;
        let (x, t_x, t) = history(frequency, recency, t)?;
        Ok(m.p_alive(x, t_x, t))
    })()
    .map_err(|f| into_napi(&env, f))
}

/// The age `T` (periods since the first purchase) at which the P(alive) of
/// a customer with `frequency` repeat purchases, the last at `recency`,
/// falls to `p` if no purchase comes; `null` for a customer with no repeat
/// purchase (the model keeps them alive). Lifecycle stages on P(alive) put
/// their thresholds here.
#[napi(
    catch_unwind,
    ts_args_type = "params: BgNbdParams, frequency: number, recency: number, p: number",
    ts_return_type = "number | null"
)]
pub fn alive_until(
    env: Env,
    params: Unknown<'_>,
    frequency: Unknown<'_>,
    recency: Unknown<'_>,
    p: Unknown<'_>,
) -> napi::Result<Option<f64>> {
    (|| -> BResult<Option<f64>> {
        let m = bg_params(params, "params")?;
        let (x, t_x, p) = (number(frequency, "frequency")?, number(recency, "recency")?, number(p, "p")?);
        Ok(m.alive_until(x, t_x, p)?)
    })()
    .map_err(|f| into_napi(&env, f))
}

/// Expected purchases in the next `t` periods of a customer with history
/// (`frequency`, `recency`, `T`); without a history (all three omitted), of
/// a new customer in their first `t` periods.
#[napi(
    catch_unwind,
    ts_args_type = "params: BgNbdParams, t: number, frequency?: number, recency?: number, T?: number",
    ts_return_type = "number"
)]
pub fn expected_purchases(
    env: Env,
    params: Unknown<'_>,
    t: Unknown<'_>,
    frequency: Option<Unknown<'_>>,
    recency: Option<Unknown<'_>>,
    age: Option<Unknown<'_>>,
) -> napi::Result<f64> {
    (|| -> BResult<f64> {
        let m = bg_params(params, "params")?;
        let t = number(t, "t")?;
        match (present(frequency)?, present(recency)?, present(age)?) {
            (None, None, None) => Ok(m.expected_purchases(t)?),
            (Some(x), Some(t_x), Some(age)) => {
                let (x, t_x, age) = history(x, t_x, age)?;
                Ok(m.conditional_expected_purchases(t, x, t_x, age)?)
            }
            _ => Err(invalid("frequency", "give frequency, recency and T together, or none of them")),
        }
    })()
    .map_err(|f| into_napi(&env, f))
}

fn b_clv(bg: Unknown<'_>, gg: Unknown<'_>, summary: Unknown<'_>, options: Unknown<'_>) -> BResult<Vec<f64>> {
    let bg = bg_params(bg, "bgnbd")?;
    let gg = gg_params(gg, "gamma_gamma")?;
    let o = Options::new(Some(options))?;
    let period = period(o.get("period")?)?
        .ok_or_else(|| invalid("period", "is required: the unit of the summary's recency and T ('day' or 'week')"))?;
    let mut opts = ClvOptions { periods_per_month: period.per_month(), ..ClvOptions::default() };
    if let Some(v) = o.get("months")? {
        opts.months = match integer(v, "months")? {
            m @ 0..=1200 => m as u32,
            _ => return Err(invalid("months", "must be between 0 and 1200")),
        };
    }
    if let Some(v) = o.get("discountRate")? {
        opts.monthly_discount_rate = number(v, "discount_rate")?;
        if opts.monthly_discount_rate <= -1.0 {
            return Err(invalid("discount_rate", "must be above -1"));
        }
    }
    if let Some(v) = o.get("margin")? {
        opts.margin = number(v, "margin")?;
    }
    let d = read_summary(summary)?;
    let monetary = spend_rows(&d)?;
    (0..d.frequency.len())
        .map(|i| {
            core::clv(&bg, &gg, d.frequency[i], d.recency[i], d.t[i], monetary[i], opts)
                .map_err(|e| Fail::from(rename_row(e, i)))
        })
        .collect()
}

/// A core error about "the" customer (`frequency[0]`, …) named by its row.
fn rename_row(e: CrmError, i: usize) -> CrmError {
    match e {
        CrmError::Validation { field, reason } => {
            let base = field.split('[').next().unwrap_or(&field).to_string();
            let field = match base.as_str() {
                "frequency" | "recency" | "T" | "monetary_value" => format!("summary[{i}].{base}"),
                _ => field,
            };
            CrmError::Validation { field, reason }
        }
        other => other,
    }
}

/// Customer lifetime value of every summary row: the BG/NBD expected
/// purchases month by month, valued at the Gamma-Gamma expected mean spend,
/// discounted monthly (`crm_core::analytics::clv`). Options: `period` (the
/// unit of the summary's recency and T, required), `months` (default 12),
/// `discountRate` per month (default 0.01) and `margin` (default 1: revenue).
#[napi(
    catch_unwind,
    ts_args_type = "bgnbd: BgNbdParams, gammaGamma: GammaGammaParams, summary: SummaryInput, options: ClvOptions",
    ts_return_type = "number[]"
)]
pub fn clv(
    env: Env,
    bgnbd: Unknown<'_>,
    gamma_gamma: Unknown<'_>,
    summary: Unknown<'_>,
    options: Unknown<'_>,
) -> napi::Result<Vec<f64>> {
    b_clv(bgnbd, gamma_gamma, summary, options).map_err(|f| into_napi(&env, f))
}

// ---------------------------------------------------------------------------
// Segment rules.

/// A segment rule (or earn-rule condition) in the core's rule language,
/// checked and normalised. Create it with `Rule.parse` (text form) or
/// `Rule.fromJson` (JSON form); a rule that cannot be read throws a
/// `CrmError` with code `rule_error`, `line`/`column` (1-based; 0 for the
/// JSON form), `excerpt` (the source line with a `^` under the column, or
/// the JSON path) and, for type errors, `field`.
#[napi]
pub struct Rule {
    inner: segment::Rule,
}

/// A rule argument of an engine query: a `Rule`, its text, or its JSON form.
pub(crate) fn rule_arg(v: Unknown<'_>, field: &str) -> BResult<segment::Rule> {
    match v.get_type()? {
        ValueType::String => segment::Rule::parse(&unsafe { v.cast::<String>() }?).map_err(rule_fail),
        ValueType::Object => {
            if let Ok(r) = unsafe { v.cast::<ClassInstance<Rule>>() } {
                return Ok(r.inner.clone());
            }
            let json: Value = Reader { currency: "" }.read(v, field, Mode::Verbatim)?;
            segment::Rule::from_json(&json).map_err(rule_fail)
        }
        _ => Err(invalid(field, "must be a Rule, its text or its JSON form")),
    }
}

fn rule_fail(e: segment::RuleError) -> Fail {
    Fail::from(CrmError::from(e))
}

fn rule_json(r: &segment::Rule) -> JsDocument {
    JsDocument(r.to_json())
}

/// The tier ladder option of `matches` / `evaluate`.
fn tier_ladder(o: &Options<'_>) -> BResult<Option<Vec<String>>> {
    let Some(v) = o.get("tierLadder")? else { return Ok(None) };
    let c = Column::array(v, "tier_ladder", "an array of tier ids, lowest first")?;
    (0..c.len).map(|i| string(c.get(i)?, &format!("tier_ladder[{i}]"))).collect::<BResult<Vec<_>>>().map(Some)
}

/// One value for `field`; `None` when missing (`undefined` / `null`).
fn field_value(field: &Field, v: Unknown<'_>, path: &str) -> BResult<Option<FieldValue<'static>>> {
    if matches!(v.get_type()?, ValueType::Undefined | ValueType::Null) {
        return Ok(None);
    }
    Ok(Some(match field.field_type() {
        FieldType::Number => FieldValue::Int(integer(v, path)?),
        FieldType::Money | FieldType::Decimal => FieldValue::Money(match v.get_type()? {
            ValueType::String => money::parse(&unsafe { v.cast::<String>() }?, path)?,
            ValueType::Number => {
                let x = number(v, path)?;
                if x.fract() == 0.0 && x.abs() > MAX_SAFE as f64 {
                    return Err(invalid(path, format!("{x} is not a safe integer; pass a decimal string")));
                }
                money::parse(&format!("{x}"), path)?
            }
            _ => return Err(invalid(path, "must be a decimal string or a number")),
        }),
        FieldType::Text => FieldValue::Text(Cow::Owned(string(v, path)?)),
        FieldType::Date => FieldValue::Date(calendar_date(v, path)?),
        FieldType::Bool => FieldValue::Bool(boolean(v, path)?),
        FieldType::TextSet => {
            let c = Column::array(v, path, "an array of strings")?;
            let mut set = BTreeSet::new();
            for i in 0..c.len {
                set.insert(string(c.get(i)?, &format!("{path}[{i}]"))?);
            }
            FieldValue::TextSet(Cow::Owned(set))
        }
        FieldType::Dynamic => FieldValue::Json(Cow::Owned(Reader { currency: "" }.read(v, path, Mode::Verbatim)?)),
        other => return Err(invalid(path, format!("has an unsupported type ({})", other.name()))),
    }))
}

/// Add one column of `n` values for `field` to `table`.
fn add_column(table: &mut MemberColumns, field: &Field, values: Vec<Option<FieldValue<'static>>>) -> BResult<()> {
    let f = field.clone();
    let it = values.into_iter();
    match field.field_type() {
        FieldType::Number => {
            table.add_int(f, it.map(|v| if let Some(FieldValue::Int(i)) = v { Some(i) } else { None }))
        }
        FieldType::Money => {
            table.add_money(f, it.map(|v| if let Some(FieldValue::Money(d)) = v { Some(d) } else { None }))
        }
        FieldType::Decimal => {
            table.add_decimal(f, it.map(|v| if let Some(FieldValue::Money(d)) = v { Some(d) } else { None }))
        }
        FieldType::Text => {
            table.add_text(f, it.map(|v| if let Some(FieldValue::Text(s)) = v { Some(s) } else { None }))
        }
        FieldType::Date => {
            table.add_date(f, it.map(|v| if let Some(FieldValue::Date(d)) = v { Some(d) } else { None }))
        }
        FieldType::Bool => {
            table.add_bool(f, it.map(|v| if let Some(FieldValue::Bool(b)) = v { Some(b) } else { None }))
        }
        FieldType::TextSet => table.add_text_set(
            f,
            it.map(|v| if let Some(FieldValue::TextSet(s)) = v { s.into_owned() } else { BTreeSet::new() }),
        ),
        _ => table.add_attr(f, it.map(|v| if let Some(FieldValue::Json(j)) = v { Some(j.into_owned()) } else { None })),
    }?;
    Ok(())
}

impl Rule {
    fn b_matches(&self, values: Unknown<'_>, options: Option<Unknown<'_>>) -> BResult<bool> {
        let obj = object(values, "values", "an object keyed by field (rule.fields)")?;
        let o = Options::new(options)?;
        let mut member = MemberValues::new();
        if let Some(ladder) = tier_ladder(&o)? {
            member = member.with_tier_ladder(ladder);
        }
        for field in self.inner.fields() {
            let key = field.to_string();
            if let Some(v) = present(obj.get::<Unknown>(&key)?)? {
                if let Some(value) = field_value(&field, v, &format!("values.{key}"))? {
                    member.set(field, value);
                }
            }
        }
        Ok(self.inner.matches(&member))
    }

    fn b_evaluate(&self, columns: Unknown<'_>, options: Option<Unknown<'_>>) -> BResult<Uint8Array> {
        let obj = object(columns, "columns", "an object of columns keyed by field (rule.fields)")?;
        let o = Options::new(options)?;
        let mut present_columns = Vec::new();
        for field in self.inner.fields() {
            let key = field.to_string();
            if let Some(v) = present(obj.get::<Unknown>(&key)?)? {
                let c = Column::new(v, &format!("columns.{key}"))?;
                present_columns.push((field, key, c));
            }
        }
        // Missing columns are reported by the core, naming the field.
        let n = present_columns.first().map_or(0, |(_, _, c)| c.len);
        let mut table = MemberColumns::new(vec![MemberId(String::new()); n as usize]);
        if let Some(ladder) = tier_ladder(&o)? {
            table.set_tier_ladder(ladder);
        }
        for (field, key, c) in present_columns {
            if c.len != n {
                return Err(invalid(
                    &format!("columns.{key}"),
                    format!("has {} values, the other columns have {n}", c.len),
                ));
            }
            let mut values = Vec::with_capacity(n as usize);
            for i in 0..n {
                values.push(field_value(&field, c.get(i)?, &format!("columns.{key}[{i}]"))?);
            }
            add_column(&mut table, &field, values)?;
        }
        let bits = eval_columns(&self.inner, &table)?;
        Ok(Uint8Array::new((0..bits.len()).map(|i| u8::from(bits.get(i))).collect()))
    }
}

#[napi]
impl Rule {
    /// Read the text form (`tier in ("gold", "platinum") and orders(90d) >= 2`).
    #[napi(catch_unwind, factory, ts_args_type = "text: string")]
    pub fn parse(env: Env, text: Unknown<'_>) -> napi::Result<Rule> {
        (|| -> BResult<Rule> {
            let text = string(text, "text")?;
            Ok(Rule { inner: segment::Rule::parse(&text).map_err(rule_fail)? })
        })()
        .map_err(|f| into_napi(&env, f))
    }

    /// Read the JSON form: an object (`{and: [...]}`, `{field, op, value}`,
    /// … with the core's snake_case keys such as `point_type`) or a string of
    /// JSON text. Errors carry the JSON path in `excerpt` (`and[1].op`).
    #[napi(catch_unwind, factory, ts_args_type = "json: RuleJson | string")]
    pub fn from_json(env: Env, json: Unknown<'_>) -> napi::Result<Rule> {
        (|| -> BResult<Rule> {
            let inner = match json.get_type()? {
                ValueType::String => {
                    segment::Rule::from_json_str(&unsafe { json.cast::<String>() }?).map_err(rule_fail)?
                }
                ValueType::Object => {
                    let v: Value = Reader { currency: "" }.read(json, "json", Mode::Verbatim)?;
                    segment::Rule::from_json(&v).map_err(rule_fail)?
                }
                _ => return Err(invalid("json", "must be a rule object or a string of JSON text")),
            };
            Ok(Rule { inner })
        })()
        .map_err(|f| into_napi(&env, f))
    }

    /// The JSON form (keys as in the core: `field`, `op`, `value`, `window`, `point_type`, …).
    #[napi(catch_unwind, ts_return_type = "RuleJson")]
    pub fn to_json(&self) -> JsDocument {
        rule_json(&self.inner)
    }

    /// The JSON form, so that `JSON.stringify(rule)` writes it.
    #[napi(catch_unwind, js_name = "toJSON", ts_return_type = "RuleJson")]
    pub fn to_json_hook(&self) -> JsDocument {
        rule_json(&self.inner)
    }

    /// The canonical text form: parsing it gives this rule back.
    #[napi(catch_unwind, js_name = "toString")]
    pub fn text(&self) -> String {
        self.inner.to_string()
    }

    /// Every field the rule reads, once each, in first-use order, in the text
    /// form (`tier`, `orders(90d)`, `spend(365d)`, `attr.vip_code`): the keys
    /// of `matches` values and `evaluate` columns.
    #[napi(catch_unwind, getter)]
    pub fn fields(&self) -> Vec<String> {
        self.inner.fields().iter().map(ToString::to_string).collect()
    }

    /// Whether one member matches. `values` is keyed by field text (see
    /// `fields`): numbers as safe integers, money as decimal strings (or
    /// numbers), dates as `YYYY-MM-DD` or `Date`, `tags`/`channels` as string
    /// arrays, custom attributes as stored. A missing (`undefined`/`null`)
    /// value makes its clauses false. `tierLadder` (lowest first) enables
    /// `tier >= "gold"`.
    #[napi(catch_unwind, ts_args_type = "values: FieldValues, options?: RuleOptions")]
    pub fn matches(&self, env: Env, values: Unknown<'_>, options: Option<Unknown<'_>>) -> napi::Result<bool> {
        self.b_matches(values, options).map_err(|f| into_napi(&env, f))
    }

    /// Evaluate for every row of `columns` at once: an object keyed by field
    /// text (see `fields`), one array (or typed array, for numbers) of the
    /// same length per field, values as for `matches`. Returns one byte per
    /// row, 1 where the row matches (`Array.from(bits, Boolean)` for
    /// booleans). A field without a column is a `validation_error` naming it.
    #[napi(catch_unwind, ts_args_type = "columns: RuleColumns, options?: RuleOptions", ts_return_type = "Uint8Array")]
    pub fn evaluate(&self, env: Env, columns: Unknown<'_>, options: Option<Unknown<'_>>) -> napi::Result<Uint8Array> {
        self.b_evaluate(columns, options).map_err(|f| into_napi(&env, f))
    }
}
