//! `compareProgrammes`: the core's what-if replay (`crm_core::whatif::compare`)
//! over JavaScript inputs, run on the libuv thread pool (a replay of a large
//! history takes seconds), resolving to a plain object.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crm_core::whatif::{compare, Options, RecordedRedemption};
use crm_core::{Order, Refund};
use napi::bindgen_prelude::{AsyncTask, ClassInstance, JsObjectValue, JsValue, Object, Unknown};
use napi::{Env, Task, ValueType};
use napi_derive::napi;
use serde_json::{Map, Value};

use crate::convert::{instance, instant, snake_to_camel, JsDocument, Mode, Reader};
use crate::errors::{de_error, into_napi, invalid, to_napi, BResult, ErrorInfo, Fail};
use crate::program::Program;

/// Figures that are maps keyed by data (point types, tiers, stages,
/// triggers): their keys stay as they are.
const DATA_KEYED: &[&str] = &["issued_by_type", "outstanding", "tier_distribution", "stage_distribution", "outreach"];

/// The core's JSON with camelCase field names, data keys unchanged.
fn camel(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let v = if DATA_KEYED.contains(&k.as_str()) { v } else { camel(v) };
                    (snake_to_camel(&k).into_owned(), v)
                })
                .collect::<Map<_, _>>(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(camel).collect()),
        other => other,
    }
}

fn decode<T: serde::de::DeserializeOwned>(field: &str, v: Value) -> BResult<T> {
    serde_path_to_error::deserialize(v).map_err(|e| de_error(field, e, invalid))
}

struct Input {
    orders: Vec<Order>,
    refunds: Vec<Refund>,
    programs: Vec<(String, crm_core::Program)>,
    options: Options,
}

/// The replay on a worker thread; settles with the comparison.
pub struct CompareJob {
    /// The converted input, or the conversion error (the promise rejects with it).
    input: Option<Result<Input, ErrorInfo>>,
}

impl Task for CompareJob {
    type Output = Result<Value, ErrorInfo>;
    type JsValue = JsDocument;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let i = match self.input.take() {
            Some(Ok(i)) => i,
            Some(Err(e)) => return Ok(Err(e)),
            None => return Ok(Err(ErrorInfo::internal("task ran twice"))),
        };
        let run = catch_unwind(AssertUnwindSafe(|| compare(&i.orders, &i.refunds, &i.programs, &i.options)));
        Ok(match run {
            Err(_) => Err(ErrorInfo::internal("internal error: panic in compareProgrammes")),
            Ok(Err(e)) => Err(ErrorInfo::from(e)),
            Ok(Ok(c)) => serde_json::to_value(c).map(camel).map_err(|e| ErrorInfo::internal(e.to_string())),
        })
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<JsDocument> {
        output.map(JsDocument).map_err(|e| to_napi(&env, &e))
    }
}

/// Elements of an optional array option, each read as a core value.
fn array<T: serde::de::DeserializeOwned>(reader: &Reader, v: Option<Unknown<'_>>, field: &str) -> BResult<Vec<T>> {
    let Some(v) = v.filter(|v| !matches!(v.get_type(), Ok(ValueType::Undefined | ValueType::Null))) else {
        return Ok(Vec::new());
    };
    let obj = match v.get_type()? {
        ValueType::Object => unsafe { v.cast::<Object>() }?,
        _ => return Err(invalid(field, "must be an array")),
    };
    if !obj.is_array()? {
        return Err(invalid(field, "must be an array"));
    }
    (0..obj.get_array_length()?)
        .map(|i| {
            let f = format!("{field}[{i}]");
            decode(&f, reader.read(obj.get_element::<Unknown>(i)?, &f, Mode::Fields)?)
        })
        .collect()
}

fn build(orders: Unknown<'_>, programs: Unknown<'_>, options: Option<Unknown<'_>>) -> BResult<Input> {
    let mut labelled = Vec::new();
    let bad = || invalid("programs", "must be an object of label -> Program or an array of [label, Program] pairs");
    if programs.get_type()? != ValueType::Object {
        return Err(bad());
    }
    let obj = unsafe { programs.cast::<Object>() }?;
    if obj.is_array()? {
        for i in 0..obj.get_array_length()? {
            let f = format!("programs[{i}]");
            let pair = obj.get_element::<Unknown>(i)?;
            let pair = match pair.get_type()? {
                ValueType::Object => unsafe { pair.cast::<Object>() }?,
                _ => return Err(invalid(&f, "must be a [label, Program] pair")),
            };
            if !pair.is_array()? || pair.get_array_length()? != 2 {
                return Err(invalid(&f, "must be a [label, Program] pair"));
            }
            let label = crate::convert::string(pair.get_element::<Unknown>(0)?, &f)?;
            let p = instance::<ClassInstance<Program>>(pair.get_element::<Unknown>(1)?, &f, "Program")?;
            labelled.push((label, p.inner.clone()));
        }
    } else {
        let names = obj.get_property_names()?;
        for i in 0..names.get_array_length()? {
            let label: String = names.get_element(i)?;
            let f = format!("programs.{label}");
            let p = instance::<ClassInstance<Program>>(obj.get_named_property::<Unknown>(&label)?, &f, "Program")?;
            labelled.push((label, p.inner.clone()));
        }
    }
    let currency = labelled.first().map(|(_, p)| p.currency.clone()).unwrap_or_default();
    let reader = Reader { currency: &currency };
    let orders: Vec<Order> = decode("orders", reader.read(orders, "orders", Mode::Fields)?)?;
    let (mut refunds, mut redemptions, mut until) = (Vec::new(), Vec::new(), None);
    if let Some(o) = options.filter(|v| !matches!(v.get_type(), Ok(ValueType::Undefined | ValueType::Null))) {
        if o.get_type()? != ValueType::Object {
            return Err(invalid("options", "must be an object"));
        }
        let o = unsafe { o.cast::<Object>() }?;
        refunds = array(&reader, o.get::<Unknown>("refunds")?, "refunds")?;
        redemptions = array::<RecordedRedemption>(&reader, o.get::<Unknown>("redemptions")?, "redemptions")?;
        if let Some(u) = o.get::<Unknown>("until")? {
            if !matches!(u.get_type()?, ValueType::Undefined | ValueType::Null) {
                until = Some(instant(u, "until")?);
            }
        }
    }
    Ok(Input { orders, refunds, programs: labelled, options: Options { until, redemptions, ..Options::default() } })
}

/// Replay one order history under several programmes and compare them side
/// by side (sharded by member, on all cores; deterministic). `orders` are
/// order objects as `recordOrders` takes them; `programs` an object of label
/// → `Program` (or `[label, Program]` pairs); options: `refunds` (refund
/// objects as `recordRefund` takes them), `redemptions` (`{memberId, points,
/// at}`, replayed where the balance allows), `until` (default: the last
/// event). Resolves to the comparison: `until`, `history`, `programmes`
/// (points issued, redeemed, expired, outstanding, liability, tier and stage
/// distributions, outreach per trigger …), `movers`, `notes`.
#[napi(
    catch_unwind,
    ts_args_type = "orders: OrderInput[], programs: Record<string, Program> | [string, Program][], options?: CompareOptions",
    ts_return_type = "Promise<Comparison>"
)]
pub fn compare_programmes(
    env: Env,
    orders: Unknown<'_>,
    programs: Unknown<'_>,
    options: Option<Unknown<'_>>,
) -> napi::Result<AsyncTask<CompareJob>> {
    let input = match build(orders, programs, options) {
        Ok(i) => Ok(i),
        Err(Fail::Info(e)) => Err(e),
        Err(f @ Fail::Js(_)) => return Err(into_napi(&env, f)),
    };
    Ok(AsyncTask::new(CompareJob { input: Some(input) }))
}
