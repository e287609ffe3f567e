//! `Engine`: the core's engine over an in-memory, SQLite or PostgreSQL store.
//!
//! Convention: every method returns a `Promise` and runs on the libuv thread
//! pool, so the event loop never waits on the store; each has a `…Sync`
//! twin that runs on the calling thread (use it with the in-memory engine
//! or in scripts). Both take the same arguments and give the same results.
//!
//! Each method converts its arguments on the JS thread into one unit of
//! [`Work`] (a closure over the core's `Engine`), then runs it now (`…Sync`)
//! or on a worker ([`Job`]). Results go back through [`Js`].

use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use crm_core::program::Action;
use crm_core::report::{comparison_from_json, render_html, Lang, PageOptions};
use crm_core::store::sqlite::SqliteSettings;
use crm_core::whatif::Comparison;
use crm_core::{Command, Identity, MemberId, Order, OrderStatus, Refund, Store};
use napi::bindgen_prelude::{AsyncTask, ClassInstance, JsValue, Object, Unknown};
use napi::{Env, Task, ValueType};
use napi_derive::napi;
use serde::Serialize;
use serde_json::{json, Value};

use crate::convert::{boolean, instance, instant, integer, string, Js, JsDocument, Mode, Reader, MAX_SAFE};
use crate::errors::{de_error, into_napi, invalid, to_napi, BResult, ErrorInfo, Fail};
use crate::program::Program;
use crate::store::PostgresTarget;

type CoreEngine = crm_core::Engine<Arc<dyn Store>>;

/// One call into the core, ready to run on any thread.
type Work = Box<dyn FnOnce(&CoreEngine) -> Result<Value, ErrorInfo> + Send>;

/// Runs [`Work`] on the libuv thread pool; the promise settles on the JS
/// thread. `W` says how the result reaches JavaScript: [`Js`] (camelCase
/// keys, the default) or [`JsDocument`] (keys unchanged: results that are
/// maps keyed by data, such as the tier and stage distributions).
pub struct Job<W = Js> {
    engine: Arc<CoreEngine>,
    pending: Option<Result<Work, ErrorInfo>>,
    out: PhantomData<fn() -> W>,
}

impl<W: From<Value> + napi::bindgen_prelude::ToNapiValue + napi::bindgen_prelude::TypeName> Task for Job<W> {
    type Output = Result<Value, ErrorInfo>;
    type JsValue = W;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        Ok(match self.pending.take() {
            Some(Ok(work)) => guard(&self.engine, work),
            Some(Err(e)) => Err(e),
            None => Err(ErrorInfo::internal("task ran twice")),
        })
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<W> {
        output.map(W::from).map_err(|e| to_napi(&env, &e))
    }
}

/// Run work, turning a panic into an `internal_error` instead of unwinding
/// across the FFI boundary.
fn guard(engine: &CoreEngine, work: Work) -> Result<Value, ErrorInfo> {
    let result = catch_unwind(AssertUnwindSafe(|| work(engine))).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        Err(ErrorInfo::internal(format!("internal error: {msg}")))
    });
    let value = result?;
    check_safe(&value)?;
    Ok(value)
}

/// A result JavaScript cannot hold exactly (an integer beyond 2^53) is an
/// `internal_error`, reported before any conversion starts.
fn check_safe(v: &Value) -> Result<(), ErrorInfo> {
    match v {
        Value::Number(n) if n.as_i64().map_or_else(|| n.as_u64().is_some(), |i| i.unsigned_abs() > MAX_SAFE as u64) => {
            Err(ErrorInfo::internal(format!("result holds {n}, outside the safe integer range of JavaScript numbers")))
        }
        Value::Array(items) => items.iter().try_for_each(check_safe),
        Value::Object(map) => map.values().try_for_each(check_safe),
        _ => Ok(()),
    }
}

fn to_json<T: Serialize>(r: crm_core::Result<T>) -> Result<Value, ErrorInfo> {
    let v = r.map_err(ErrorInfo::from)?;
    serde_json::to_value(v).map_err(|e| ErrorInfo::internal(e.to_string()))
}

fn submit(key: Option<String>, command: Command, now: DateTime<Utc>) -> BResult<Work> {
    Ok(Box::new(move |e: &CoreEngine| to_json(e.submit(key.as_deref(), command, now))))
}

fn query<T: Serialize + 'static>(f: impl FnOnce(&CoreEngine) -> crm_core::Result<T> + Send + 'static) -> BResult<Work> {
    Ok(Box::new(move |e: &CoreEngine| to_json(f(e))))
}

/// Deserialize a value read from JS into a core type, errors named by the
/// core's field path below `prefix`.
fn decode<T: serde::de::DeserializeOwned>(prefix: &str, v: Value) -> BResult<T> {
    // Fast path without path tracking; on failure, decode again to name the field.
    match T::deserialize(&v) {
        Ok(t) => Ok(t),
        Err(_) => serde_path_to_error::deserialize(v).map_err(|e| de_error(prefix, e, invalid)),
    }
}

/// A member id argument.
fn member_id(v: Unknown<'_>) -> BResult<MemberId> {
    Ok(MemberId::from(string(v, "member_id")?))
}

/// The options object of a call (`{ now, idempotencyKey, … }`).
struct Opts<'a> {
    obj: Option<Object<'a>>,
}

impl<'a> Opts<'a> {
    fn new(v: Option<Unknown<'a>>) -> BResult<Self> {
        let Some(v) = v else {
            return Ok(Opts { obj: None });
        };
        match v.get_type()? {
            ValueType::Undefined | ValueType::Null => Ok(Opts { obj: None }),
            ValueType::Object => Ok(Opts { obj: Some(unsafe { v.cast::<Object>() }?) }),
            _ => Err(invalid("options", "must be an object")),
        }
    }

    fn get(&self, name: &str) -> BResult<Option<Unknown<'a>>> {
        let Some(obj) = &self.obj else {
            return Ok(None);
        };
        let v: Option<Unknown<'a>> = obj.get(name)?;
        match v {
            Some(u) if matches!(u.get_type()?, ValueType::Null | ValueType::Undefined) => Ok(None),
            other => Ok(other),
        }
    }

    fn required(&self, name: &str, field: &str) -> BResult<Unknown<'a>> {
        self.get(name)?.ok_or_else(|| invalid(field, "is required"))
    }

    /// `now`, required for commands.
    fn now(&self) -> BResult<DateTime<Utc>> {
        instant(self.required("now", "now")?, "now")
    }

    /// An optional instant; the host's clock when absent (queries only).
    fn at_or_now(&self, name: &str) -> BResult<DateTime<Utc>> {
        match self.get(name)? {
            Some(v) => instant(v, name),
            None => Ok(Utc::now()),
        }
    }

    fn key(&self) -> BResult<Option<String>> {
        self.get("idempotencyKey")?.map(|v| string(v, "idempotency_key")).transpose()
    }

    fn string(&self, name: &str, field: &str) -> BResult<Option<String>> {
        self.get(name)?.map(|v| string(v, field)).transpose()
    }

    fn req_string(&self, name: &str, field: &str) -> BResult<String> {
        string(self.required(name, field)?, field)
    }

    fn count(&self, name: &str, default: u64, max: u64) -> BResult<u64> {
        match self.get(name)? {
            None => Ok(default),
            Some(v) => {
                let n = integer(v, name)?;
                if n < 0 || n as u64 > max {
                    return Err(invalid(name, format!("must be between 0 and {max}")));
                }
                Ok(n as u64)
            }
        }
    }

    /// An optional structured option, decoded into a core type.
    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        reader: &Reader,
        name: &str,
        field: &str,
        mode: Mode,
    ) -> BResult<Option<T>> {
        match self.get(name)? {
            Some(v) => Ok(Some(decode(field, reader.read(v, field, mode)?)?)),
            None => Ok(None),
        }
    }
}

/// The loyalty engine over a store. Every method returns a `Promise` and
/// runs off the JavaScript thread; each has a `…Sync` twin that runs on the
/// calling thread (fine for the in-memory engine and for scripts). Failures
/// throw / reject with a `CrmError` (`code`, `field`, `message`).
#[napi]
pub struct Engine {
    inner: Arc<CoreEngine>,
    /// Set for engines opened with `openPostgres` (for `dropStoreSchema`).
    postgres: Option<Arc<PostgresTarget>>,
}

// ---------------------------------------------------------------------------
// Argument conversion: one builder per method, shared by both variants.

impl Engine {
    fn reader(&self) -> Reader<'_> {
        Reader { currency: &self.inner.program().currency }
    }

    fn spawn<W>(&self, built: BResult<Work>) -> napi::Result<AsyncTask<Job<W>>>
    where
        Job<W>: Task,
    {
        let pending = match built {
            Ok(w) => Ok(w),
            Err(Fail::Info(i)) => Err(i),
            Err(Fail::Js(e)) => return Err(e),
        };
        Ok(AsyncTask::new(Job { engine: self.inner.clone(), pending: Some(pending), out: PhantomData }))
    }

    fn run<W: From<Value>>(&self, env: &Env, built: BResult<Work>) -> napi::Result<W> {
        let work = built.map_err(|f| into_napi(env, f))?;
        guard(&self.inner, work).map(W::from).map_err(|e| to_napi(env, &e))
    }

    fn b_create_member(&self, member: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let o = Opts::new(options)?;
        let r = self.reader();
        let member_id = member_id(member)?;
        let profile = o.decode(&r, "profile", "profile", Mode::Fields)?.unwrap_or_default();
        let identities = o.decode(&r, "identities", "identities", Mode::Fields)?.unwrap_or_default();
        let tags = o.decode(&r, "tags", "tags", Mode::Fields)?.unwrap_or_default();
        let consents = o.decode(&r, "consents", "consents", Mode::Keyed)?.unwrap_or_default();
        let cmd = Command::CreateMember { member_id, profile, identities, tags, consents };
        submit(o.key()?, cmd, o.now()?)
    }

    fn b_update_profile(&self, member: Unknown, patch: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let o = Opts::new(options)?;
        let member_id = member_id(member)?;
        let patch = decode("patch", self.reader().read(patch, "patch", Mode::Fields)?)?;
        submit(o.key()?, Command::UpdateProfile { member_id, patch }, o.now()?)
    }

    fn b_identity(&self, link: bool, member: Unknown, identity: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let o = Opts::new(options)?;
        let member_id = member_id(member)?;
        let identity: Identity = decode("identity", self.reader().read(identity, "identity", Mode::Fields)?)?;
        let cmd = if link {
            Command::LinkIdentity { member_id, identity }
        } else {
            Command::UnlinkIdentity { member_id, identity }
        };
        submit(o.key()?, cmd, o.now()?)
    }

    fn b_tag(&self, add: bool, member: Unknown, tag: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let o = Opts::new(options)?;
        let member_id = member_id(member)?;
        let tag = string(tag, "tag")?;
        let cmd = if add { Command::AddTag { member_id, tag } } else { Command::RemoveTag { member_id, tag } };
        submit(o.key()?, cmd, o.now()?)
    }

    fn b_set_consent(
        &self,
        member: Unknown,
        channel: Unknown,
        granted: Unknown,
        options: Option<Unknown>,
    ) -> BResult<Work> {
        let o = Opts::new(options)?;
        let cmd = Command::SetConsent {
            member_id: member_id(member)?,
            channel: string(channel, "channel")?,
            granted: boolean(granted, "granted")?,
        };
        submit(o.key()?, cmd, o.now()?)
    }

    fn b_record_order(&self, order: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let o = Opts::new(options)?;
        let order: Order = decode("order", self.reader().read(order, "order", Mode::Fields)?)?;
        submit(o.key()?, Command::RecordOrder { order }, o.now()?)
    }

    fn b_record_orders(&self, orders: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let o = Opts::new(options)?;
        let now = o.now()?;
        if o.get("idempotencyKey")?.is_some() {
            return Err(invalid("idempotency_key", "is not accepted by recordOrders: each order is keyed by its id"));
        }
        let arr = match orders.get_type()? {
            ValueType::Object => {
                let obj = unsafe { orders.cast::<Object>() }?;
                if !obj.is_array()? {
                    return Err(invalid("orders", "must be an array"));
                }
                unsafe { orders.cast::<napi::bindgen_prelude::Array>() }?
            }
            _ => return Err(invalid("orders", "must be an array")),
        };
        let reader = self.reader();
        // A bad order does not stop the others: conversion errors become
        // that order's result, like the core's own validation errors.
        let mut parsed: Vec<Result<Order, ErrorInfo>> = Vec::with_capacity(arr.len() as usize);
        for i in 0..arr.len() {
            let item = arr.get::<Unknown>(i)?;
            let r = match item {
                Some(v) => reader.read(v, "order", Mode::Fields).and_then(|v| decode::<Order>("order", v)),
                None => Err(invalid("order", "is required")),
            };
            parsed.push(match r {
                Ok(order) => Ok(order),
                Err(Fail::Info(e)) => Err(e),
                Err(Fail::Js(e)) => return Err(Fail::Js(e)),
            });
        }
        Ok(Box::new(move |e: &CoreEngine| {
            let mut good: Vec<Order> = Vec::with_capacity(parsed.len());
            let mut slots: Vec<Result<(), ErrorInfo>> = Vec::with_capacity(parsed.len());
            for p in parsed {
                slots.push(p.map(|order| good.push(order)));
            }
            let mut results = e.record_orders(&good, now).map_err(ErrorInfo::from)?.into_iter();
            let mut out = Vec::with_capacity(slots.len());
            for p in slots {
                let r = match p {
                    Ok(()) => results
                        .next()
                        .unwrap_or_else(|| Err(crm_core::CrmError::Store("missing batch result".into())))
                        .map_err(ErrorInfo::from),
                    Err(err) => Err(err),
                };
                out.push(match r {
                    Ok(outcome) => json!({
                        "ok": true,
                        "outcome": serde_json::to_value(outcome)
                            .map_err(|e| ErrorInfo::internal(e.to_string()))?,
                    }),
                    Err(err) => json!({ "ok": false, "error": err.to_value() }),
                });
            }
            Ok(Value::Array(out))
        }))
    }

    fn b_set_order_status(&self, order_id: Unknown, status: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let o = Opts::new(options)?;
        let at = o.get("at")?.map(|v| instant(v, "at")).transpose()?;
        let order_id = string(order_id, "order_id")?;
        let status: OrderStatus = decode("status", Value::String(string(status, "status")?))?;
        submit(o.key()?, Command::SetOrderStatus { order_id, status, at }, o.now()?)
    }

    fn b_record_refund(&self, refund: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let o = Opts::new(options)?;
        let refund: Refund = decode("refund", self.reader().read(refund, "refund", Mode::Fields)?)?;
        submit(o.key()?, Command::RecordRefund { refund }, o.now()?)
    }

    fn b_record_action(
        &self,
        member: Unknown,
        action: Unknown,
        reference: Unknown,
        options: Option<Unknown>,
    ) -> BResult<Work> {
        let o = Opts::new(options)?;
        let member_id = member_id(member)?;
        let action: Action = decode("action", Value::String(string(action, "action")?))?;
        let reference = string(reference, "reference")?;
        submit(o.key()?, Command::RecordAction { member_id, action, reference }, o.now()?)
    }

    fn b_redeem(&self, member: Unknown, points: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let o = Opts::new(options)?;
        let cmd = Command::Redeem {
            member_id: member_id(member)?,
            point_type: o.req_string("pointType", "point_type")?,
            points: integer(points, "points")?,
            reason: o.string("reason", "reason")?,
        };
        submit(o.key()?, cmd, o.now()?)
    }

    fn b_reverse_redemption(&self, member: Unknown, redemption_id: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let o = Opts::new(options)?;
        let cmd = Command::ReverseRedemption {
            member_id: member_id(member)?,
            redemption_id: string(redemption_id, "redemption_id")?,
        };
        submit(o.key()?, cmd, o.now()?)
    }

    fn b_adjust(&self, member: Unknown, delta: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let o = Opts::new(options)?;
        let cmd = Command::Adjust {
            member_id: member_id(member)?,
            point_type: o.req_string("pointType", "point_type")?,
            delta: integer(delta, "delta")?,
            reason: o.req_string("reason", "reason")?,
            actor: o.req_string("actor", "actor")?,
        };
        submit(o.key()?, cmd, o.now()?)
    }

    fn b_merge(&self, survivor: Unknown, merged: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let o = Opts::new(options)?;
        let cmd = Command::Merge {
            survivor: MemberId::from(string(survivor, "survivor")?),
            merged: MemberId::from(string(merged, "merged")?),
        };
        submit(o.key()?, cmd, o.now()?)
    }

    fn b_erase(&self, member: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let o = Opts::new(options)?;
        submit(o.key()?, Command::Erase { member_id: member_id(member)? }, o.now()?)
    }

    fn b_run_due(&self, now: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let now = instant(now, "now")?;
        let key = Opts::new(options)?.key()?;
        submit(key, Command::run_due(), now)
    }

    fn b_reschedule(&self, now: Unknown) -> BResult<Work> {
        let now = instant(now, "now")?;
        query(move |e| e.reschedule(now))
    }

    fn b_execute(&self, key: Unknown, cmd: Unknown, now: Unknown) -> BResult<Work> {
        let key = string(key, "idempotency_key")?;
        let cmd: Command = decode("", self.reader().read(cmd, "", Mode::Fields)?)?;
        let now = instant(now, "now")?;
        query(move |e| e.execute(&key, cmd, now))
    }

    fn b_member(&self, member: Unknown) -> BResult<Work> {
        let id = MemberId::from(string(member, "member_id")?);
        query(move |e| e.member(&id))
    }

    fn b_resolve(&self, member: Unknown) -> BResult<Work> {
        let id = MemberId::from(string(member, "member_id")?);
        query(move |e| e.resolve(&id))
    }

    fn b_balance(&self, member: Unknown, point_type: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let id = MemberId::from(string(member, "member_id")?);
        let pt = string(point_type, "point_type")?;
        let at = Opts::new(options)?.at_or_now("at")?;
        query(move |e| e.balance(&id, &pt, at))
    }

    fn b_lots(&self, member: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let id = MemberId::from(string(member, "member_id")?);
        let at = Opts::new(options)?.get("at")?.map(|v| instant(v, "at")).transpose()?;
        query(move |e| match at {
            Some(at) => e.lots_at(&id, at),
            None => e.lots(&id),
        })
    }

    fn b_statement(&self, member: Unknown, point_type: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let id = MemberId::from(string(member, "member_id")?);
        let pt = string(point_type, "point_type")?;
        let o = Opts::new(options)?;
        let offset = o.count("offset", 0, crate::convert::MAX_SAFE as u64)? as usize;
        let limit = o.count("limit", 100, crate::convert::MAX_SAFE as u64)? as usize;
        query(move |e| e.statement(&id, &pt, offset, limit))
    }

    fn b_expiring(&self, member: Unknown, point_type: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let id = MemberId::from(string(member, "member_id")?);
        let pt = string(point_type, "point_type")?;
        let o = Opts::new(options)?;
        let at = o.at_or_now("at")?;
        let days = o.count("days", 30, u64::from(u32::MAX))? as u32;
        query(move |e| e.expiring(&id, &pt, at, days))
    }

    fn b_liability(&self, options: Option<Unknown>) -> BResult<Work> {
        let at = Opts::new(options)?.at_or_now("at")?;
        query(move |e| e.liability(at))
    }

    fn b_find_by_identity(&self, channel: Unknown, external_id: Unknown) -> BResult<Work> {
        let identity =
            Identity { channel: string(channel, "channel")?, external_id: string(external_id, "external_id")? };
        query(move |e| e.find_by_identity(&identity))
    }

    fn b_member_as_of(&self, member: Unknown, at: Unknown) -> BResult<Work> {
        let id = MemberId::from(string(member, "member_id")?);
        let at = instant(at, "at")?;
        query(move |e| e.member_as_of(&id, at))
    }

    // ----- tiers, lifecycle stages, outreach ------------------------------

    fn b_assign_tier(&self, member: Unknown, tier: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let o = Opts::new(options)?;
        let cmd = Command::AssignTier {
            member_id: member_id(member)?,
            tier: string(tier, "tier")?,
            until: instant(o.required("until", "until")?, "until")?,
            reason: o.req_string("reason", "reason")?,
            actor: o.req_string("actor", "actor")?,
        };
        submit(o.key()?, cmd, o.now()?)
    }

    fn b_record_engagement(&self, member: Unknown, kind: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let o = Opts::new(options)?;
        let cmd = Command::RecordEngagement {
            member_id: member_id(member)?,
            kind: string(kind, "kind")?,
            at: o.get("at")?.map(|v| instant(v, "at")).transpose()?,
            sku: o.string("sku", "sku")?,
            reference: o.string("reference", "reference")?,
        };
        submit(o.key()?, cmd, o.now()?)
    }

    fn b_issue_coupon(&self, member: Unknown, template: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let o = Opts::new(options)?;
        let id = member_id(member)?;
        let template = string(template, "template")?;
        let for_points = o.get("forPoints")?.map(|v| boolean(v, "for_points")).transpose()?.unwrap_or(false);
        let reason = o.string("reason", "reason")?;
        let (key, now) = (o.key()?, o.now()?);
        Ok(Box::new(move |e: &CoreEngine| {
            to_json(e.issue_coupon(key.as_deref(), &id, &template, for_points, reason, now))
        }))
    }

    fn b_redeem_coupon(
        &self,
        member: Unknown,
        code: Unknown,
        order: Unknown,
        options: Option<Unknown>,
    ) -> BResult<Work> {
        let o = Opts::new(options)?;
        let cmd = Command::RedeemCoupon {
            member_id: member_id(member)?,
            code: string(code, "code")?,
            order_id: string(order, "order_id")?,
        };
        submit(o.key()?, cmd, o.now()?)
    }

    fn b_revoke_coupon(&self, member: Unknown, code: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let o = Opts::new(options)?;
        let cmd = Command::RevokeCoupon {
            member_id: member_id(member)?,
            code: string(code, "code")?,
            reason: o.req_string("reason", "reason")?,
        };
        submit(o.key()?, cmd, o.now()?)
    }

    fn b_coupons(&self, member: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let id = member_id(member)?;
        let now = Opts::new(options)?.at_or_now("now")?;
        query(move |e| e.coupons(&id, now))
    }

    fn b_quote(&self, member: Unknown, cart: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let id = member_id(member)?;
        let cart: crm_core::coupon::Cart = decode("cart", self.reader().read(cart, "cart", Mode::Fields)?)?;
        let now = Opts::new(options)?.at_or_now("now")?;
        query(move |e| e.quote(&id, &cart, now))
    }

    fn b_issue_coupons_to_segment(
        &self,
        batch: Unknown,
        rule: Unknown,
        template: Unknown,
        options: Option<Unknown>,
    ) -> BResult<Work> {
        let batch = string(batch, "batch")?;
        let rule = crate::analytics::rule_arg(rule, "rule")?;
        let template = string(template, "template")?;
        let now = Opts::new(options)?.now()?;
        query(move |e| e.issue_coupons_to_segment(&batch, &rule, &template, now))
    }

    fn b_coupon_usage(&self, template: Unknown) -> BResult<Work> {
        let template = string(template, "template")?;
        query(move |e| e.coupon_usage(&template))
    }

    // ----- service and feedback records ----------------------------------

    fn b_record_contact(&self, member: Unknown, contact: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let o = Opts::new(options)?;
        let cmd = Command::RecordContact {
            member_id: member_id(member)?,
            contact_id: string(contact, "contact_id")?,
            channel: o.req_string("channel", "channel")?,
            topic: o.req_string("topic", "topic")?,
            started_at: instant(o.required("startedAt", "started_at")?, "started_at")?,
            ended_at: o.get("endedAt")?.map(|v| instant(v, "ended_at")).transpose()?,
        };
        submit(o.key()?, cmd, o.now()?)
    }

    fn b_open_ticket(
        &self,
        member: Unknown,
        ticket: Unknown,
        kind: Unknown,
        options: Option<Unknown>,
    ) -> BResult<Work> {
        let o = Opts::new(options)?;
        let cmd = Command::OpenTicket {
            member_id: member_id(member)?,
            ticket_id: string(ticket, "ticket_id")?,
            kind: string(kind, "kind")?,
            at: o.get("at")?.map(|v| instant(v, "at")).transpose()?,
            order_id: o.string("orderId", "order_id")?,
            subject: o.string("subject", "subject")?,
        };
        submit(o.key()?, cmd, o.now()?)
    }

    fn b_update_ticket(
        &self,
        member: Unknown,
        ticket: Unknown,
        status: Unknown,
        options: Option<Unknown>,
    ) -> BResult<Work> {
        let o = Opts::new(options)?;
        let cmd = Command::UpdateTicket {
            member_id: member_id(member)?,
            ticket_id: string(ticket, "ticket_id")?,
            status: decode("status", Value::String(string(status, "status")?))?,
            at: o.get("at")?.map(|v| instant(v, "at")).transpose()?,
        };
        submit(o.key()?, cmd, o.now()?)
    }

    fn b_record_review(
        &self,
        member: Unknown,
        review: Unknown,
        rating: Unknown,
        options: Option<Unknown>,
    ) -> BResult<Work> {
        let o = Opts::new(options)?;
        let cmd = Command::RecordReview {
            member_id: member_id(member)?,
            review_id: string(review, "review_id")?,
            rating: integer(rating, "rating")?,
            text: o.string("text", "text")?,
            sku: o.string("sku", "sku")?,
            order_id: o.string("orderId", "order_id")?,
            at: o.get("at")?.map(|v| instant(v, "at")).transpose()?,
        };
        submit(o.key()?, cmd, o.now()?)
    }

    fn b_record_survey(
        &self,
        member: Unknown,
        survey: Unknown,
        kind: Unknown,
        score: Unknown,
        options: Option<Unknown>,
    ) -> BResult<Work> {
        let o = Opts::new(options)?;
        let cmd = Command::RecordSurvey {
            member_id: member_id(member)?,
            survey_id: string(survey, "survey_id")?,
            kind: decode("kind", Value::String(string(kind, "kind")?))?,
            score: integer(score, "score")?,
            at: o.get("at")?.map(|v| instant(v, "at")).transpose()?,
            ticket_id: o.string("ticketId", "ticket_id")?,
            comment: o.string("comment", "comment")?,
        };
        submit(o.key()?, cmd, o.now()?)
    }

    fn b_feedback(&self, member: Unknown) -> BResult<Work> {
        let id = member_id(member)?;
        query(move |e| e.feedback(&id))
    }

    fn b_feedback_report(&self, options: Option<Unknown>) -> BResult<Work> {
        let o = Opts::new(options)?;
        let at = o.at_or_now("at")?;
        let from = o.get("from")?.map(|v| instant(v, "from")).transpose()?;
        let mut segments = Vec::new();
        if let Some(v) = o.get("segments")? {
            if v.get_type()? != ValueType::Object {
                return Err(invalid("segments", "must be an object of name -> rule"));
            }
            let obj = unsafe { v.cast::<Object>() }?;
            for name in Object::keys(&obj)? {
                let Some(rule) = obj.get::<Unknown>(&name)? else { continue };
                segments.push((name.clone(), crate::analytics::rule_arg(rule, &format!("segments.{name}"))?));
            }
        }
        query(move |e| e.feedback_report(from, at, &segments))
    }

    fn b_tier(&self, member: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let id = member_id(member)?;
        let at = Opts::new(options)?.at_or_now("at")?;
        query(move |e| e.tier(&id, at))
    }

    fn b_tier_history(&self, member: Unknown) -> BResult<Work> {
        let id = member_id(member)?;
        query(move |e| e.tier_history(&id))
    }

    fn b_tier_distribution(&self, options: Option<Unknown>) -> BResult<Work> {
        let at = Opts::new(options)?.at_or_now("at")?;
        query(move |e| e.tier_distribution(at))
    }

    fn b_stage(&self, member: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let id = member_id(member)?;
        let at = Opts::new(options)?.at_or_now("at")?;
        query(move |e| e.stage(&id, at))
    }

    fn b_stage_history(&self, member: Unknown) -> BResult<Work> {
        let id = member_id(member)?;
        query(move |e| e.stage_history(&id))
    }

    fn b_stage_distribution(&self, options: Option<Unknown>) -> BResult<Work> {
        let at = Opts::new(options)?.at_or_now("at")?;
        query(move |e| e.stage_distribution(at))
    }

    fn b_stage_transitions(&self, from: Unknown, to: Unknown) -> BResult<Work> {
        let from = instant(from, "from")?;
        let to = instant(to, "to")?;
        query(move |e| e.stage_transitions(from, to))
    }

    fn b_segment(&self, rule: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let rule = crate::analytics::rule_arg(rule, "rule")?;
        let at = Opts::new(options)?.at_or_now("at")?;
        query(move |e| e.segment(&rule, at))
    }

    fn b_matches(&self, member: Unknown, rule: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let id = member_id(member)?;
        let rule = crate::analytics::rule_arg(rule, "rule")?;
        let at = Opts::new(options)?.at_or_now("at")?;
        query(move |e| e.matches(&id, &rule, at))
    }

    fn b_refresh_segment(&self, segment: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let mut seg: crm_core::segment::SavedSegment =
            decode("segment", self.reader().read(segment, "segment", Mode::Fields)?)?;
        let at = Opts::new(options)?.at_or_now("at")?;
        query(move |e| {
            let changes = e.refresh_segment(&mut seg, at)?;
            Ok(serde_json::json!({ "segment": seg, "changes": changes }))
        })
    }

    fn b_report(&self, options: Option<Unknown>) -> BResult<Work> {
        let at = Opts::new(options)?.at_or_now("at")?;
        query(move |e| e.report(at))
    }

    /// The options of `reportHtml` / `writeReport`: the page's instants,
    /// the language and the optional what-if comparison.
    fn b_report_page(&self, options: Option<Unknown>) -> BResult<(PageOptions, Lang, Option<Comparison>)> {
        let o = Opts::new(options)?;
        let at = o.at_or_now("at")?;
        let instant_opt = |name: &str, field: &str| o.get(name)?.map(|v| instant(v, field)).transpose();
        let page = PageOptions {
            at,
            flows_from: instant_opt("flowsFrom", "flows_from")?,
            flows_to: instant_opt("flowsTo", "flows_to")?,
        };
        let lang = match o.string("lang", "lang")? {
            Some(l) => l.parse::<Lang>().map_err(|e| Fail::Info(e.into()))?,
            None => Lang::En,
        };
        let whatif = match o.get("whatif")? {
            None => None,
            Some(v) if v.get_type()? == ValueType::String => {
                Some(comparison_from_json(&string(v, "whatif")?).map_err(|e| Fail::Info(e.into()))?)
            }
            Some(v) => Some(decode("whatif", self.reader().read(v, "whatif", Mode::Verbatim)?)?),
        };
        Ok((page, lang, whatif))
    }

    fn b_report_html(&self, options: Option<Unknown>) -> BResult<Work> {
        let (page, lang, whatif) = self.b_report_page(options)?;
        Ok(Box::new(move |e: &CoreEngine| {
            let data = e.report_page(&page)?;
            Ok(Value::String(render_html(&data, lang, whatif.as_ref())))
        }))
    }

    fn b_write_report(&self, path: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let path = string(path, "path")?;
        let (page, lang, whatif) = self.b_report_page(options)?;
        Ok(Box::new(move |e: &CoreEngine| {
            let data = e.report_page(&page)?;
            std::fs::write(&path, render_html(&data, lang, whatif.as_ref())).map_err(|err| ErrorInfo {
                code: "io_error".into(),
                field: Some("path".into()),
                message: format!("cannot write {path}: {err}"),
                rule: None,
            })?;
            Ok(Value::Null)
        }))
    }

    fn b_campaign_report(&self, campaign: Unknown, options: Option<Unknown>) -> BResult<Work> {
        let campaign: crm_core::campaign::Campaign =
            decode("campaign", self.reader().read(campaign, "campaign", Mode::Fields)?)?;
        let at = Opts::new(options)?.at_or_now("at")?;
        query(move |e| e.campaign_report(&campaign, at))
    }

    fn b_campaign_members(&self, campaign: Unknown) -> BResult<Work> {
        let campaign: crm_core::campaign::Campaign =
            decode("campaign", self.reader().read(campaign, "campaign", Mode::Fields)?)?;
        query(move |e| e.campaign_members(&campaign))
    }

    fn b_outreach_of_run(&self, now: Unknown) -> BResult<Work> {
        let now = instant(now, "now")?;
        query(move |e| e.outreach_of_run(now))
    }
}

/// Read the arguments of `openPostgres` / `openPostgresSync`.
fn postgres_target(url: Unknown, options: Option<Unknown>) -> BResult<PostgresTarget> {
    let url = string(url, "url")?;
    let o = Opts::new(options)?;
    let defaults = crm_core::store::postgres::PostgresOptions::new();
    let schema = o.string("schema", "schema")?.unwrap_or(defaults.schema);
    let pool_size = match o.get("poolSize")? {
        Some(v) => match integer(v, "pool_size")? {
            n @ 1..=1024 => n as usize,
            _ => return Err(invalid("pool_size", "must be 1-1024")),
        },
        None => defaults.pool_size,
    };
    let connect_timeout = match o.get("connectTimeoutMs")? {
        Some(v) => match integer(v, "connect_timeout_ms")? {
            ms @ 1..=86_400_000 => Some(std::time::Duration::from_millis(ms as u64)),
            _ => return Err(invalid("connect_timeout_ms", "must be 1-86400000")),
        },
        None => None,
    };
    Ok(PostgresTarget { url, schema, pool_size, connect_timeout })
}

/// Connect a PostgreSQL engine, turning a panic into an `internal_error`.
fn connect_postgres(program: crm_core::Program, target: PostgresTarget) -> Result<Engine, ErrorInfo> {
    let connected = catch_unwind(AssertUnwindSafe(|| target.connect()))
        .map_err(|_| ErrorInfo::internal("internal error: panic while connecting to PostgreSQL"))?;
    let store: Arc<dyn Store> = Arc::new(connected?);
    Ok(Engine { inner: Arc::new(crm_core::Engine::new(program, store)), postgres: Some(Arc::new(target)) })
}

/// Connects to PostgreSQL on the libuv thread pool; resolves to the `Engine`.
pub struct OpenPostgres {
    pending: Option<Result<(crm_core::Program, PostgresTarget), ErrorInfo>>,
}

impl Task for OpenPostgres {
    type Output = Result<Engine, ErrorInfo>;
    type JsValue = Engine;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        Ok(match self.pending.take() {
            Some(Ok((program, target))) => connect_postgres(program, target),
            Some(Err(e)) => Err(e),
            None => Err(ErrorInfo::internal("task ran twice")),
        })
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Engine> {
        output.map_err(|e| to_napi(&env, &e))
    }
}

/// `dropStoreSchema`: drops the schema over a connection of its own.
fn b_drop_store_schema(postgres: &Option<Arc<PostgresTarget>>) -> BResult<Work> {
    let Some(target) = postgres.clone() else {
        return Err(Fail::Info(
            crm_core::CrmError::Conflict {
                reason: "dropStoreSchema needs an engine opened with Engine.openPostgres".into(),
            }
            .into(),
        ));
    };
    Ok(Box::new(move |_: &CoreEngine| target.drop_schema().map(|()| Value::Null).map_err(ErrorInfo::from)))
}

fn program_arg(env: &Env, program: Unknown<'_>) -> napi::Result<crm_core::Program> {
    instance::<ClassInstance<Program>>(program, "program", "Program")
        .map(|p| p.inner.clone())
        .map_err(|f| into_napi(env, f))
}

// ---------------------------------------------------------------------------
// The JavaScript surface.

#[napi]
impl Engine {
    /// An engine over a fresh in-memory store (state lives as long as the
    /// object; ideal for tests, imports and what-if runs).
    #[napi(catch_unwind, factory, ts_args_type = "program: Program")]
    pub fn in_memory(env: Env, program: Unknown<'_>) -> napi::Result<Engine> {
        let program = program_arg(&env, program)?;
        let store: Arc<dyn Store> = Arc::new(crm_core::MemoryStore::new());
        Ok(Engine { inner: Arc::new(crm_core::Engine::new(program, store)), postgres: None })
    }

    /// An engine over a SQLite database file (created when missing;
    /// `":memory:"` for a private in-memory database). Options:
    /// `synchronous` (`"full"`, the default: every acknowledged command
    /// survives power loss; `"normal"`: survives a process crash),
    /// `busyTimeoutMs` (wait for another writer's lock, default 5000),
    /// `memberCache` (decoded members kept in memory, default 10000; 0:
    /// none), `snapshotEvery` (a member's stored snapshot is rewritten every
    /// so many events, default 16) and `checkpointBytes` (WAL bytes between
    /// background checkpoints, default 4 MB; larger for bulk imports). Use
    /// the Promise methods in servers so the event loop never waits on disk.
    #[napi(catch_unwind, factory, ts_args_type = "program: Program, path: string, options?: SqliteOptions")]
    pub fn open_sqlite(
        env: Env,
        program: Unknown<'_>,
        path: Unknown<'_>,
        options: Option<Unknown<'_>>,
    ) -> napi::Result<Engine> {
        let program = program_arg(&env, program)?;
        let opened = (|| -> BResult<Arc<dyn Store>> {
            let path = string(path, "path")?;
            let o = Opts::new(options)?;
            let int = |name: &str, field: &str| -> BResult<Option<i64>> {
                o.get(name)?.map(|v| integer(v, field)).transpose()
            };
            let settings = SqliteSettings {
                synchronous: o.string("synchronous", "synchronous")?,
                busy_timeout_ms: int("busyTimeoutMs", "busy_timeout_ms")?,
                member_cache: int("memberCache", "member_cache")?,
                snapshot_every: int("snapshotEvery", "snapshot_every")?,
                checkpoint_bytes: int("checkpointBytes", "checkpoint_bytes")?,
            };
            Ok(crate::store::open_sqlite(&path, &settings)?)
        })();
        let store = opened.map_err(|f| into_napi(&env, f))?;
        Ok(Engine { inner: Arc::new(crm_core::Engine::new(program, store)), postgres: None })
    }

    /// An engine over PostgreSQL at `url` (libpq style:
    /// `postgresql://user:password@host:port/dbname`, or `key=value` pairs).
    /// Connecting is I/O, so this returns a `Promise` (see
    /// {@link Engine.openPostgresSync}). Options: `schema` (default `"crm"`;
    /// letters, digits and `_`, created and migrated as needed; several
    /// engines and processes may share one), `poolSize` (at most this many
    /// connections, default 8: Promise calls run in parallel up to that
    /// many) and `connectTimeoutMs` (default 10000 unless the URL sets one).
    /// TLS follows the URL's `sslmode` (`disable`, `prefer` by default,
    /// `require`, `verify-ca`, `verify-full`), `sslrootcert` (a PEM file,
    /// or `system`) and `sslcert`/`sslkey` (a client certificate) as in
    /// libpq; when every host is a Unix-domain socket
    /// (`host=/var/run/postgresql`) the connection is plain whatever
    /// `sslmode` says, as libpq's. Rejects with `store_error` when the database cannot be
    /// reached (a refused certificate included) and `validation_error`
    /// (with `field`) for a bad option or TLS setting.
    #[napi(
        catch_unwind,
        ts_args_type = "program: Program, url: string, options?: PostgresOptions",
        ts_return_type = "Promise<Engine>"
    )]
    pub fn open_postgres(
        env: Env,
        program: Unknown<'_>,
        url: Unknown<'_>,
        options: Option<Unknown<'_>>,
    ) -> napi::Result<AsyncTask<OpenPostgres>> {
        let program = program_arg(&env, program)?;
        let pending = match postgres_target(url, options) {
            Ok(target) => Ok((program, target)),
            Err(Fail::Info(i)) => Err(i),
            Err(Fail::Js(e)) => return Err(e),
        };
        Ok(AsyncTask::new(OpenPostgres { pending: Some(pending) }))
    }

    /// Synchronous {@link Engine.openPostgres} (blocks the calling thread
    /// while connecting; fine in scripts).
    #[napi(
        catch_unwind,
        factory,
        ts_args_type = "program: Program, url: string, options?: PostgresOptions",
        ts_return_type = "Engine"
    )]
    pub fn open_postgres_sync(
        env: Env,
        program: Unknown<'_>,
        url: Unknown<'_>,
        options: Option<Unknown<'_>>,
    ) -> napi::Result<Engine> {
        let program = program_arg(&env, program)?;
        let target = postgres_target(url, options).map_err(|f| into_napi(&env, f))?;
        connect_postgres(program, target).map_err(|e| to_napi(&env, &e))
    }

    /// PostgreSQL engines only: drop the engine's schema with all its data
    /// (for tests and tear-downs). The engine is unusable afterwards, and so
    /// is any other engine on that schema. Rejects with `conflict` on an
    /// engine not opened with {@link Engine.openPostgres}.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn drop_store_schema(&self) -> napi::Result<AsyncTask<Job>> {
        self.spawn(b_drop_store_schema(&self.postgres))
    }

    /// Synchronous {@link Engine.dropStoreSchema}.
    #[napi(catch_unwind, ts_return_type = "void")]
    pub fn drop_store_schema_sync(&self, env: Env) -> napi::Result<()> {
        self.run::<Js>(&env, b_drop_store_schema(&self.postgres)).map(|_| ())
    }

    /// The engine's programme.
    #[napi(catch_unwind, getter)]
    pub fn program(&self) -> Program {
        Program { inner: self.inner.program().clone() }
    }

    /// An engine over this engine's store under another programme, as a
    /// host gets by opening the store again with a changed programme (an
    /// in-memory store cannot be opened again). Its first `runDue` derives
    /// every member's wake-up again under `program` (see
    /// {@link Engine.reschedule}). Stop running `runDue` on this engine
    /// afterwards: two engines under different programmes on one store would
    /// each derive them again at every run.
    #[napi(catch_unwind, ts_args_type = "program: Program")]
    pub fn with_program(&self, env: Env, program: Unknown<'_>) -> napi::Result<Engine> {
        let program = program_arg(&env, program)?;
        Ok(Engine { inner: Arc::new(self.inner.with_program(program)), postgres: self.postgres.clone() })
    }

    // ----- commands --------------------------------------------------------

    /// Create a member (default idempotency key `member:<id>`).
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, options: CreateMemberOptions",
        ts_return_type = "Promise<MemberOutcome>"
    )]
    pub fn create_member(&self, member_id: Unknown, options: Option<Unknown>) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_create_member(member_id, options))
    }

    /// Synchronous {@link Engine.createMember}.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, options: CreateMemberOptions",
        ts_return_type = "MemberOutcome"
    )]
    pub fn create_member_sync(&self, env: Env, member_id: Unknown, options: Option<Unknown>) -> napi::Result<Js> {
        self.run(&env, self.b_create_member(member_id, options))
    }

    /// Apply a profile patch (set fields, `attributes`, `clear`).
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, patch: ProfilePatch, options: CommandOptions",
        ts_return_type = "Promise<MemberOutcome>"
    )]
    pub fn update_profile(
        &self,
        member_id: Unknown,
        patch: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_update_profile(member_id, patch, options))
    }

    /// Synchronous {@link Engine.updateProfile}.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, patch: ProfilePatch, options: CommandOptions",
        ts_return_type = "MemberOutcome"
    )]
    pub fn update_profile_sync(
        &self,
        env: Env,
        member_id: Unknown,
        patch: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Js> {
        self.run(&env, self.b_update_profile(member_id, patch, options))
    }

    /// Link a channel identity (WeChat openid, app account, store card, …).
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, identity: Identity, options: CommandOptions",
        ts_return_type = "Promise<MemberOutcome>"
    )]
    pub fn link_identity(
        &self,
        member_id: Unknown,
        identity: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_identity(true, member_id, identity, options))
    }

    /// Synchronous {@link Engine.linkIdentity}.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, identity: Identity, options: CommandOptions",
        ts_return_type = "MemberOutcome"
    )]
    pub fn link_identity_sync(
        &self,
        env: Env,
        member_id: Unknown,
        identity: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Js> {
        self.run(&env, self.b_identity(true, member_id, identity, options))
    }

    /// Unlink a channel identity.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, identity: Identity, options: CommandOptions",
        ts_return_type = "Promise<MemberOutcome>"
    )]
    pub fn unlink_identity(
        &self,
        member_id: Unknown,
        identity: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_identity(false, member_id, identity, options))
    }

    /// Synchronous {@link Engine.unlinkIdentity}.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, identity: Identity, options: CommandOptions",
        ts_return_type = "MemberOutcome"
    )]
    pub fn unlink_identity_sync(
        &self,
        env: Env,
        member_id: Unknown,
        identity: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Js> {
        self.run(&env, self.b_identity(false, member_id, identity, options))
    }

    /// Add a tag.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, tag: string, options: CommandOptions",
        ts_return_type = "Promise<MemberOutcome>"
    )]
    pub fn add_tag(&self, member_id: Unknown, tag: Unknown, options: Option<Unknown>) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_tag(true, member_id, tag, options))
    }

    /// Synchronous {@link Engine.addTag}.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, tag: string, options: CommandOptions",
        ts_return_type = "MemberOutcome"
    )]
    pub fn add_tag_sync(
        &self,
        env: Env,
        member_id: Unknown,
        tag: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Js> {
        self.run(&env, self.b_tag(true, member_id, tag, options))
    }

    /// Remove a tag.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, tag: string, options: CommandOptions",
        ts_return_type = "Promise<MemberOutcome>"
    )]
    pub fn remove_tag(
        &self,
        member_id: Unknown,
        tag: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_tag(false, member_id, tag, options))
    }

    /// Synchronous {@link Engine.removeTag}.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, tag: string, options: CommandOptions",
        ts_return_type = "MemberOutcome"
    )]
    pub fn remove_tag_sync(
        &self,
        env: Env,
        member_id: Unknown,
        tag: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Js> {
        self.run(&env, self.b_tag(false, member_id, tag, options))
    }

    /// Grant or withdraw marketing consent on a channel.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, channel: string, granted: boolean, options: CommandOptions",
        ts_return_type = "Promise<MemberOutcome>"
    )]
    pub fn set_consent(
        &self,
        member_id: Unknown,
        channel: Unknown,
        granted: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_set_consent(member_id, channel, granted, options))
    }

    /// Synchronous {@link Engine.setConsent}.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, channel: string, granted: boolean, options: CommandOptions",
        ts_return_type = "MemberOutcome"
    )]
    pub fn set_consent_sync(
        &self,
        env: Env,
        member_id: Unknown,
        channel: Unknown,
        granted: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Js> {
        self.run(&env, self.b_set_consent(member_id, channel, granted, options))
    }

    /// Record an order (default idempotency key `order:<id>`).
    #[napi(
        catch_unwind,
        ts_args_type = "order: OrderInput, options: CommandOptions",
        ts_return_type = "Promise<OrderOutcome>"
    )]
    pub fn record_order(&self, order: Unknown, options: Option<Unknown>) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_record_order(order, options))
    }

    /// Synchronous {@link Engine.recordOrder}.
    #[napi(catch_unwind, ts_args_type = "order: OrderInput, options: CommandOptions", ts_return_type = "OrderOutcome")]
    pub fn record_order_sync(&self, env: Env, order: Unknown, options: Option<Unknown>) -> napi::Result<Js> {
        self.run(&env, self.b_record_order(order, options))
    }

    /// Import many orders in one atomic commit; one result per order, in
    /// order. A bad order does not stop the others. Idempotent per order id.
    #[napi(
        catch_unwind,
        ts_args_type = "orders: OrderInput[], options: BatchOptions",
        ts_return_type = "Promise<BatchResult[]>"
    )]
    pub fn record_orders(&self, orders: Unknown, options: Option<Unknown>) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_record_orders(orders, options))
    }

    /// Synchronous {@link Engine.recordOrders}.
    #[napi(
        catch_unwind,
        ts_args_type = "orders: OrderInput[], options: BatchOptions",
        ts_return_type = "BatchResult[]"
    )]
    pub fn record_orders_sync(&self, env: Env, orders: Unknown, options: Option<Unknown>) -> napi::Result<Js> {
        self.run(&env, self.b_record_orders(orders, options))
    }

    /// Move an order to another status (`paid` earns, `cancelled` claws back).
    #[napi(
        catch_unwind,
        ts_args_type = "orderId: string, status: OrderStatus, options: SetOrderStatusOptions",
        ts_return_type = "Promise<OrderOutcome | RefundOutcome>"
    )]
    pub fn set_order_status(
        &self,
        order_id: Unknown,
        status: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_set_order_status(order_id, status, options))
    }

    /// Synchronous {@link Engine.setOrderStatus}.
    #[napi(
        catch_unwind,
        ts_args_type = "orderId: string, status: OrderStatus, options: SetOrderStatusOptions",
        ts_return_type = "OrderOutcome | RefundOutcome"
    )]
    pub fn set_order_status_sync(
        &self,
        env: Env,
        order_id: Unknown,
        status: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Js> {
        self.run(&env, self.b_set_order_status(order_id, status, options))
    }

    /// Record a refund or return (default idempotency key `refund:<id>`).
    #[napi(
        catch_unwind,
        ts_args_type = "refund: RefundInput, options: CommandOptions",
        ts_return_type = "Promise<RefundOutcome>"
    )]
    pub fn record_refund(&self, refund: Unknown, options: Option<Unknown>) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_record_refund(refund, options))
    }

    /// Synchronous {@link Engine.recordRefund}.
    #[napi(
        catch_unwind,
        ts_args_type = "refund: RefundInput, options: CommandOptions",
        ts_return_type = "RefundOutcome"
    )]
    pub fn record_refund_sync(&self, env: Env, refund: Unknown, options: Option<Unknown>) -> napi::Result<Js> {
        self.run(&env, self.b_record_refund(refund, options))
    }

    /// Report an action that may earn a bonus (review, custom actions).
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, action: Action, reference: string, options: CommandOptions",
        ts_return_type = "Promise<ActionOutcome>"
    )]
    pub fn record_action(
        &self,
        member_id: Unknown,
        action: Unknown,
        reference: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_record_action(member_id, action, reference, options))
    }

    /// Synchronous {@link Engine.recordAction}.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, action: Action, reference: string, options: CommandOptions",
        ts_return_type = "ActionOutcome"
    )]
    pub fn record_action_sync(
        &self,
        env: Env,
        member_id: Unknown,
        action: Unknown,
        reference: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Js> {
        self.run(&env, self.b_record_action(member_id, action, reference, options))
    }

    /// Spend points, soonest-expiring lots first. The idempotency key is
    /// required and is also the redemption id.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, points: number, options: RedeemOptions",
        ts_return_type = "Promise<RedemptionOutcome>"
    )]
    pub fn redeem(
        &self,
        member_id: Unknown,
        points: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_redeem(member_id, points, options))
    }

    /// Synchronous {@link Engine.redeem}.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, points: number, options: RedeemOptions",
        ts_return_type = "RedemptionOutcome"
    )]
    pub fn redeem_sync(
        &self,
        env: Env,
        member_id: Unknown,
        points: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Js> {
        self.run(&env, self.b_redeem(member_id, points, options))
    }

    /// Put a redemption's points back (idempotency key required).
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, redemptionId: string, options: KeyedCommandOptions",
        ts_return_type = "Promise<ReversalOutcome>"
    )]
    pub fn reverse_redemption(
        &self,
        member_id: Unknown,
        redemption_id: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_reverse_redemption(member_id, redemption_id, options))
    }

    /// Synchronous {@link Engine.reverseRedemption}.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, redemptionId: string, options: KeyedCommandOptions",
        ts_return_type = "ReversalOutcome"
    )]
    pub fn reverse_redemption_sync(
        &self,
        env: Env,
        member_id: Unknown,
        redemption_id: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Js> {
        self.run(&env, self.b_reverse_redemption(member_id, redemption_id, options))
    }

    /// Manual adjustment with a reason and an actor (idempotency key required).
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, delta: number, options: AdjustOptions",
        ts_return_type = "Promise<AdjustmentOutcome>"
    )]
    pub fn adjust(&self, member_id: Unknown, delta: Unknown, options: Option<Unknown>) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_adjust(member_id, delta, options))
    }

    /// Synchronous {@link Engine.adjust}.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, delta: number, options: AdjustOptions",
        ts_return_type = "AdjustmentOutcome"
    )]
    pub fn adjust_sync(
        &self,
        env: Env,
        member_id: Unknown,
        delta: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Js> {
        self.run(&env, self.b_adjust(member_id, delta, options))
    }

    /// Merge the duplicate `merged` into `survivor` (points, identities, orders, feedback, and the
    /// messages it was sent: not sent again, counted by frequency caps).
    #[napi(
        catch_unwind,
        ts_args_type = "survivor: string, merged: string, options: CommandOptions",
        ts_return_type = "Promise<MergeOutcome>"
    )]
    pub fn merge(&self, survivor: Unknown, merged: Unknown, options: Option<Unknown>) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_merge(survivor, merged, options))
    }

    /// Synchronous {@link Engine.merge}.
    #[napi(
        catch_unwind,
        ts_args_type = "survivor: string, merged: string, options: CommandOptions",
        ts_return_type = "MergeOutcome"
    )]
    pub fn merge_sync(
        &self,
        env: Env,
        survivor: Unknown,
        merged: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Js> {
        self.run(&env, self.b_merge(survivor, merged, options))
    }

    /// Erase a member's personal data (the anonymised ledger stays).
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, options: CommandOptions",
        ts_return_type = "Promise<ErasureOutcome>"
    )]
    pub fn erase(&self, member_id: Unknown, options: Option<Unknown>) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_erase(member_id, options))
    }

    /// Synchronous {@link Engine.erase}.
    #[napi(catch_unwind, ts_args_type = "memberId: string, options: CommandOptions", ts_return_type = "ErasureOutcome")]
    pub fn erase_sync(&self, env: Env, member_id: Unknown, options: Option<Unknown>) -> napi::Result<Js> {
        self.run(&env, self.b_erase(member_id, options))
    }

    /// Activate pending lots and expire lots due at `now`, for every member;
    /// run due tier reviews and stage changes, and hand out the outreach
    /// that is due (`outreach`: the messages to send). Idempotent per `now`:
    /// a repeat returns the first outcome without the items (`outreachCount`
    /// still says how many there were), so nothing is handed out twice. The
    /// first run under a changed programme first derives every member's next
    /// wake-up again under it (see {@link Engine.reschedule}).
    #[napi(
        catch_unwind,
        ts_args_type = "now: Instant, options?: RunDueOptions",
        ts_return_type = "Promise<DueOutcome>"
    )]
    pub fn run_due(&self, now: Unknown, options: Option<Unknown>) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_run_due(now, options))
    }

    /// Synchronous {@link Engine.runDue}.
    #[napi(catch_unwind, ts_args_type = "now: Instant, options?: RunDueOptions", ts_return_type = "DueOutcome")]
    pub fn run_due_sync(&self, env: Env, now: Unknown, options: Option<Unknown>) -> napi::Result<Js> {
        self.run(&env, self.b_run_due(now, options))
    }

    /// Derive every member's next wake-up again under this engine's
    /// programme and write the members whose next due instant changes;
    /// resolves to how many were written. The store does not keep the
    /// programme, so after a change (a trigger added, other stage
    /// thresholds) its wake-ups were derived under the old one: `runDue`
    /// does this by itself at its first run under a changed programme. Call
    /// it right after a deploy so that run does not pay for the scan.
    /// Under a changed tier ladder, members who qualify for a higher tier
    /// move up now, and those in a tier the ladder no longer has go to the
    /// one they qualify for (downgrades wait for the review).
    #[napi(catch_unwind, ts_args_type = "now: Instant", ts_return_type = "Promise<number>")]
    pub fn reschedule(&self, now: Unknown) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_reschedule(now))
    }

    /// Synchronous {@link Engine.reschedule}.
    #[napi(catch_unwind, ts_args_type = "now: Instant", ts_return_type = "number")]
    pub fn reschedule_sync(&self, env: Env, now: Unknown) -> napi::Result<Js> {
        self.run(&env, self.b_reschedule(now))
    }

    /// Execute any command under an explicit idempotency key. `command` is
    /// the core's command form with camelCase keys (`type` values as in the
    /// core: `record_order`, `redeem`, …).
    #[napi(
        catch_unwind,
        ts_args_type = "key: string, command: Command, now: Instant",
        ts_return_type = "Promise<Outcome>"
    )]
    pub fn execute(&self, key: Unknown, command: Unknown, now: Unknown) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_execute(key, command, now))
    }

    /// Synchronous {@link Engine.execute}.
    #[napi(catch_unwind, ts_args_type = "key: string, command: Command, now: Instant", ts_return_type = "Outcome")]
    pub fn execute_sync(&self, env: Env, key: Unknown, command: Unknown, now: Unknown) -> napi::Result<Js> {
        self.run(&env, self.b_execute(key, command, now))
    }

    /// Put a member in a tier by hand until `until` (then the qualifying
    /// metric decides again at the next review). Upgrades above it still
    /// apply. Default idempotency key: built from the content and `now`.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, tier: string, options: AssignTierOptions",
        ts_return_type = "Promise<TierOutcome>"
    )]
    pub fn assign_tier(
        &self,
        member_id: Unknown,
        tier: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_assign_tier(member_id, tier, options))
    }

    /// Synchronous {@link Engine.assignTier}.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, tier: string, options: AssignTierOptions",
        ts_return_type = "TierOutcome"
    )]
    pub fn assign_tier_sync(
        &self,
        env: Env,
        member_id: Unknown,
        tier: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Js> {
        self.run(&env, self.b_assign_tier(member_id, tier, options))
    }

    /// Record a browse, favourite, add-to-cart or host-defined engagement
    /// (cart-abandonment outreach). `at` defaults to `now`. Default
    /// idempotency key: built from the content and `now`.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, kind: EngagementKind, options: RecordEngagementOptions",
        ts_return_type = "Promise<MemberOutcome>"
    )]
    pub fn record_engagement(
        &self,
        member_id: Unknown,
        kind: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_record_engagement(member_id, kind, options))
    }

    /// Synchronous {@link Engine.recordEngagement}.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, kind: EngagementKind, options: RecordEngagementOptions",
        ts_return_type = "MemberOutcome"
    )]
    pub fn record_engagement_sync(
        &self,
        env: Env,
        member_id: Unknown,
        kind: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Js> {
        self.run(&env, self.b_record_engagement(member_id, kind, options))
    }

    // ----- coupons ---------------------------------------------------------

    /// Issue a coupon of the programme's template to a member under a fresh
    /// code from the operating system's random source; with `forPoints` the
    /// template's points price is redeemed in the same atomic command.
    /// Default idempotency key `coupon:<code>`; a retry under the same
    /// `idempotencyKey` returns the first coupon.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, template: string, options: IssueCouponOptions",
        ts_return_type = "Promise<CouponIssuedOutcome>"
    )]
    pub fn issue_coupon(
        &self,
        member_id: Unknown,
        template: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_issue_coupon(member_id, template, options))
    }

    /// Synchronous {@link Engine.issueCoupon}.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, template: string, options: IssueCouponOptions",
        ts_return_type = "CouponIssuedOutcome"
    )]
    pub fn issue_coupon_sync(
        &self,
        env: Env,
        member_id: Unknown,
        template: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Js> {
        self.run(&env, self.b_issue_coupon(member_id, template, options))
    }

    /// Use a member's coupon (as typed: case, spaces and dashes do not matter)
    /// on one of their recorded orders: checks validity, channel, categories
    /// and minimum spend, computes the discount. One coupon per order; the
    /// same coupon on the same order again returns the first result.
    /// Default idempotency key `coupon_order:<orderId>`.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, code: string, orderId: string, options: CommandOptions",
        ts_return_type = "Promise<CouponRedeemedOutcome>"
    )]
    pub fn redeem_coupon(
        &self,
        member_id: Unknown,
        code: Unknown,
        order_id: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_redeem_coupon(member_id, code, order_id, options))
    }

    /// Synchronous {@link Engine.redeemCoupon}.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, code: string, orderId: string, options: CommandOptions",
        ts_return_type = "CouponRedeemedOutcome"
    )]
    pub fn redeem_coupon_sync(
        &self,
        env: Env,
        member_id: Unknown,
        code: Unknown,
        order_id: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Js> {
        self.run(&env, self.b_redeem_coupon(member_id, code, order_id, options))
    }

    /// Withdraw an unused coupon; points paid for it go back to the member.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, code: string, options: RevokeCouponOptions",
        ts_return_type = "Promise<CouponRevokedOutcome>"
    )]
    pub fn revoke_coupon(
        &self,
        member_id: Unknown,
        code: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_revoke_coupon(member_id, code, options))
    }

    /// Synchronous {@link Engine.revokeCoupon}.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, code: string, options: RevokeCouponOptions",
        ts_return_type = "CouponRevokedOutcome"
    )]
    pub fn revoke_coupon_sync(
        &self,
        env: Env,
        member_id: Unknown,
        code: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Js> {
        self.run(&env, self.b_revoke_coupon(member_id, code, options))
    }

    /// Record a contact with customer service (`channel`, the host's `topic`
    /// code, `startedAt`, optional `endedAt`). Idempotent by `contactId`: the
    /// same contact again is the first result, other content a conflict.
    /// Default idempotency key `contact:<contactId>`.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, contactId: string, options: RecordContactOptions",
        ts_return_type = "Promise<ContactRecordedOutcome>"
    )]
    pub fn record_contact(
        &self,
        member_id: Unknown,
        contact_id: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_record_contact(member_id, contact_id, options))
    }

    /// Synchronous {@link Engine.recordContact}.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, contactId: string, options: RecordContactOptions",
        ts_return_type = "ContactRecordedOutcome"
    )]
    pub fn record_contact_sync(
        &self,
        env: Env,
        member_id: Unknown,
        contact_id: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Js> {
        self.run(&env, self.b_record_contact(member_id, contact_id, options))
    }

    /// Open an after-sales ticket of `kind` (the host's code) at `at`
    /// (default `now`). Default idempotency key `ticket:<ticketId>`.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, ticketId: string, kind: string, options: OpenTicketOptions",
        ts_return_type = "Promise<TicketOutcome>"
    )]
    pub fn open_ticket(
        &self,
        member_id: Unknown,
        ticket_id: Unknown,
        kind: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_open_ticket(member_id, ticket_id, kind, options))
    }

    /// Synchronous {@link Engine.openTicket}.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, ticketId: string, kind: string, options: OpenTicketOptions",
        ts_return_type = "TicketOutcome"
    )]
    pub fn open_ticket_sync(
        &self,
        env: Env,
        member_id: Unknown,
        ticket_id: Unknown,
        kind: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Js> {
        self.run(&env, self.b_open_ticket(member_id, ticket_id, kind, options))
    }

    /// Move a ticket to `status` at `at` (default `now`): a move the status
    /// table does not allow fails on `status`, a time before the last change
    /// on `at`; the status it already has changes nothing; reopening clears
    /// the resolution.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, ticketId: string, status: TicketStatus, options: UpdateTicketOptions",
        ts_return_type = "Promise<TicketOutcome>"
    )]
    pub fn update_ticket(
        &self,
        member_id: Unknown,
        ticket_id: Unknown,
        status: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_update_ticket(member_id, ticket_id, status, options))
    }

    /// Synchronous {@link Engine.updateTicket}.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, ticketId: string, status: TicketStatus, options: UpdateTicketOptions",
        ts_return_type = "TicketOutcome"
    )]
    pub fn update_ticket_sync(
        &self,
        env: Env,
        member_id: Unknown,
        ticket_id: Unknown,
        status: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Js> {
        self.run(&env, self.b_update_ticket(member_id, ticket_id, status, options))
    }

    /// Record a review rated 1-5; it earns the programme's `review` bonuses
    /// (`awarded`). Idempotent by `reviewId`. Default idempotency key
    /// `review:<reviewId>`.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, reviewId: string, rating: number, options: RecordReviewOptions",
        ts_return_type = "Promise<ReviewRecordedOutcome>"
    )]
    pub fn record_review(
        &self,
        member_id: Unknown,
        review_id: Unknown,
        rating: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_record_review(member_id, review_id, rating, options))
    }

    /// Synchronous {@link Engine.recordReview}.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, reviewId: string, rating: number, options: RecordReviewOptions",
        ts_return_type = "ReviewRecordedOutcome"
    )]
    pub fn record_review_sync(
        &self,
        env: Env,
        member_id: Unknown,
        review_id: Unknown,
        rating: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Js> {
        self.run(&env, self.b_record_review(member_id, review_id, rating, options))
    }

    /// Record a survey answer: `csat` 1-5 or `nps` 0-10, optionally for a
    /// ticket. Idempotent by `surveyId`. Default idempotency key `survey:<surveyId>`.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, surveyId: string, kind: SurveyKind, score: number, options: RecordSurveyOptions",
        ts_return_type = "Promise<SurveyRecordedOutcome>"
    )]
    pub fn record_survey(
        &self,
        member_id: Unknown,
        survey_id: Unknown,
        kind: Unknown,
        score: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_record_survey(member_id, survey_id, kind, score, options))
    }

    /// Synchronous {@link Engine.recordSurvey}.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, surveyId: string, kind: SurveyKind, score: number, options: RecordSurveyOptions",
        ts_return_type = "SurveyRecordedOutcome"
    )]
    pub fn record_survey_sync(
        &self,
        env: Env,
        member_id: Unknown,
        survey_id: Unknown,
        kind: Unknown,
        score: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Js> {
        self.run(&env, self.b_record_survey(member_id, survey_id, kind, score, options))
    }

    /// The member's contacts, tickets, reviews and surveys, each keyed by id
    /// (following merges).
    #[napi(catch_unwind, ts_args_type = "memberId: string", ts_return_type = "Promise<Feedback>")]
    pub fn feedback(&self, member_id: Unknown) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_feedback(member_id))
    }

    /// Synchronous {@link Engine.feedback}.
    #[napi(catch_unwind, ts_args_type = "memberId: string", ts_return_type = "Feedback")]
    pub fn feedback_sync(&self, env: Env, member_id: Unknown) -> napi::Result<Js> {
        self.run(&env, self.b_feedback(member_id))
    }

    /// CSAT, NPS and ratings overall, by tier, stage and each named segment
    /// rule, and ticket resolution times overall and by kind, from the facts
    /// up to `at` (default: the host's clock); answers, reviews and
    /// resolutions count in `(from, at]`. Figures are decimal strings.
    #[napi(catch_unwind, ts_args_type = "options?: FeedbackReportOptions", ts_return_type = "Promise<FeedbackReport>")]
    pub fn feedback_report(&self, options: Option<Unknown>) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_feedback_report(options))
    }

    /// Synchronous {@link Engine.feedbackReport}.
    #[napi(catch_unwind, ts_args_type = "options?: FeedbackReportOptions", ts_return_type = "FeedbackReport")]
    pub fn feedback_report_sync(&self, env: Env, options: Option<Unknown>) -> napi::Result<Js> {
        self.run(&env, self.b_feedback_report(options))
    }

    /// The member's coupons with their status at `now` (default: the host's
    /// clock), soonest expiry first.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, options?: { now?: Instant }",
        ts_return_type = "Promise<Coupon[]>"
    )]
    pub fn coupons(&self, member_id: Unknown, options: Option<Unknown>) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_coupons(member_id, options))
    }

    /// Synchronous {@link Engine.coupons}.
    #[napi(catch_unwind, ts_args_type = "memberId: string, options?: { now?: Instant }", ts_return_type = "Coupon[]")]
    pub fn coupons_sync(&self, env: Env, member_id: Unknown, options: Option<Unknown>) -> napi::Result<Js> {
        self.run(&env, self.b_coupons(member_id, options))
    }

    /// What checkout can offer for a cart: the coupons that apply (best first)
    /// and why the others do not, and the points payable on what is left
    /// after the best coupon (the programme's share at `valuePerPoint`).
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, cart: Cart, options?: { now?: Instant }",
        ts_return_type = "Promise<Quote>"
    )]
    pub fn quote(&self, member_id: Unknown, cart: Unknown, options: Option<Unknown>) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_quote(member_id, cart, options))
    }

    /// Synchronous {@link Engine.quote}.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, cart: Cart, options?: { now?: Instant }",
        ts_return_type = "Quote"
    )]
    pub fn quote_sync(
        &self,
        env: Env,
        member_id: Unknown,
        cart: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Js> {
        self.run(&env, self.b_quote(member_id, cart, options))
    }

    /// One coupon of `template` to every member matching `rule` at `now`; each
    /// member's issue is keyed by `batch`, so a re-run issues nothing twice.
    #[napi(
        catch_unwind,
        ts_args_type = "batch: string, rule: string | Rule | RuleJson, template: string, options: { now: Instant }",
        ts_return_type = "Promise<BatchIssue>"
    )]
    pub fn issue_coupons_to_segment(
        &self,
        batch: Unknown,
        rule: Unknown,
        template: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_issue_coupons_to_segment(batch, rule, template, options))
    }

    /// Synchronous {@link Engine.issueCouponsToSegment}.
    #[napi(
        catch_unwind,
        ts_args_type = "batch: string, rule: string | Rule | RuleJson, template: string, options: { now: Instant }",
        ts_return_type = "BatchIssue"
    )]
    pub fn issue_coupons_to_segment_sync(
        &self,
        env: Env,
        batch: Unknown,
        rule: Unknown,
        template: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Js> {
        self.run(&env, self.b_issue_coupons_to_segment(batch, rule, template, options))
    }

    /// How much of a coupon template's programme-wide stock (`totalLimit`)
    /// and budget is taken.
    #[napi(catch_unwind, ts_args_type = "template: string", ts_return_type = "Promise<CouponUsage>")]
    pub fn coupon_usage(&self, template: Unknown) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_coupon_usage(template))
    }

    /// Synchronous {@link Engine.couponUsage}.
    #[napi(catch_unwind, ts_args_type = "template: string", ts_return_type = "CouponUsage")]
    pub fn coupon_usage_sync(&self, env: Env, template: Unknown) -> napi::Result<Js> {
        self.run(&env, self.b_coupon_usage(template))
    }

    // ----- queries ---------------------------------------------------------

    /// The stored member record (merged and erased members included).
    #[napi(catch_unwind, ts_args_type = "memberId: string", ts_return_type = "Promise<Member>")]
    pub fn member(&self, member_id: Unknown) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_member(member_id))
    }

    /// Synchronous {@link Engine.member}.
    #[napi(catch_unwind, ts_args_type = "memberId: string", ts_return_type = "Member")]
    pub fn member_sync(&self, env: Env, member_id: Unknown) -> napi::Result<Js> {
        self.run(&env, self.b_member(member_id))
    }

    /// The member that now owns `memberId` (following merges).
    #[napi(catch_unwind, ts_args_type = "memberId: string", ts_return_type = "Promise<Member>")]
    pub fn resolve(&self, member_id: Unknown) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_resolve(member_id))
    }

    /// Synchronous {@link Engine.resolve}.
    #[napi(catch_unwind, ts_args_type = "memberId: string", ts_return_type = "Member")]
    pub fn resolve_sync(&self, env: Env, member_id: Unknown) -> napi::Result<Js> {
        self.run(&env, self.b_resolve(member_id))
    }

    /// Balance of a point type at `at` (default: now). Follows merges.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, pointType: string, options?: AtOptions",
        ts_return_type = "Promise<Balance>"
    )]
    pub fn balance(
        &self,
        member_id: Unknown,
        point_type: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_balance(member_id, point_type, options))
    }

    /// Synchronous {@link Engine.balance}.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, pointType: string, options?: AtOptions",
        ts_return_type = "Balance"
    )]
    pub fn balance_sync(
        &self,
        env: Env,
        member_id: Unknown,
        point_type: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Js> {
        self.run(&env, self.b_balance(member_id, point_type, options))
    }

    /// Open lots of a member (all point types), soonest expiry first; with
    /// `at`, as of that instant (from the events up to it).
    #[napi(catch_unwind, ts_args_type = "memberId: string, options?: AtOptions", ts_return_type = "Promise<Lot[]>")]
    pub fn lots(&self, member_id: Unknown, options: Option<Unknown>) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_lots(member_id, options))
    }

    /// Synchronous {@link Engine.lots}.
    #[napi(catch_unwind, ts_args_type = "memberId: string, options?: AtOptions", ts_return_type = "Lot[]")]
    pub fn lots_sync(&self, env: Env, member_id: Unknown, options: Option<Unknown>) -> napi::Result<Js> {
        self.run(&env, self.b_lots(member_id, options))
    }

    /// A page of the member's statement (default offset 0, limit 100).
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, pointType: string, options?: PageOptions",
        ts_return_type = "Promise<StatementPage>"
    )]
    pub fn statement(
        &self,
        member_id: Unknown,
        point_type: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_statement(member_id, point_type, options))
    }

    /// Synchronous {@link Engine.statement}.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, pointType: string, options?: PageOptions",
        ts_return_type = "StatementPage"
    )]
    pub fn statement_sync(
        &self,
        env: Env,
        member_id: Unknown,
        point_type: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Js> {
        self.run(&env, self.b_statement(member_id, point_type, options))
    }

    /// Points that expire in `(at, at + days]` (defaults: now, 30 days).
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, pointType: string, options?: ExpiringOptions",
        ts_return_type = "Promise<Expiring>"
    )]
    pub fn expiring(
        &self,
        member_id: Unknown,
        point_type: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_expiring(member_id, point_type, options))
    }

    /// Synchronous {@link Engine.expiring}.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, pointType: string, options?: ExpiringOptions",
        ts_return_type = "Expiring"
    )]
    pub fn expiring_sync(
        &self,
        env: Env,
        member_id: Unknown,
        point_type: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Js> {
        self.run(&env, self.b_expiring(member_id, point_type, options))
    }

    /// Programme-wide outstanding points and their money value at `at`.
    #[napi(catch_unwind, ts_args_type = "options?: AtOptions", ts_return_type = "Promise<Liability>")]
    pub fn liability(&self, options: Option<Unknown>) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_liability(options))
    }

    /// Synchronous {@link Engine.liability}.
    #[napi(catch_unwind, ts_args_type = "options?: AtOptions", ts_return_type = "Liability")]
    pub fn liability_sync(&self, env: Env, options: Option<Unknown>) -> napi::Result<Js> {
        self.run(&env, self.b_liability(options))
    }

    /// The member an identity belongs to, or `null`.
    #[napi(
        catch_unwind,
        ts_args_type = "channel: string, externalId: string",
        ts_return_type = "Promise<string | null>"
    )]
    pub fn find_by_identity(&self, channel: Unknown, external_id: Unknown) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_find_by_identity(channel, external_id))
    }

    /// Synchronous {@link Engine.findByIdentity}.
    #[napi(catch_unwind, ts_args_type = "channel: string, externalId: string", ts_return_type = "string | null")]
    pub fn find_by_identity_sync(&self, env: Env, channel: Unknown, external_id: Unknown) -> napi::Result<Js> {
        self.run(&env, self.b_find_by_identity(channel, external_id))
    }

    /// The member's state as of `at`, rebuilt from its events.
    #[napi(catch_unwind, ts_args_type = "memberId: string, at: Instant", ts_return_type = "Promise<Member>")]
    pub fn member_as_of(&self, member_id: Unknown, at: Unknown) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_member_as_of(member_id, at))
    }

    /// Synchronous {@link Engine.memberAsOf}.
    #[napi(catch_unwind, ts_args_type = "memberId: string, at: Instant", ts_return_type = "Member")]
    pub fn member_as_of_sync(&self, env: Env, member_id: Unknown, at: Unknown) -> napi::Result<Js> {
        self.run(&env, self.b_member_as_of(member_id, at))
    }

    /// The member's tier at `at` (default: now) with its benefits, progress
    /// to the next tier and to keeping this one. Follows merges.
    /// `validation_error` on `tiers` when the programme has no tier ladder.
    #[napi(catch_unwind, ts_args_type = "memberId: string, options?: AtOptions", ts_return_type = "Promise<TierView>")]
    pub fn tier(&self, member_id: Unknown, options: Option<Unknown>) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_tier(member_id, options))
    }

    /// Synchronous {@link Engine.tier}.
    #[napi(catch_unwind, ts_args_type = "memberId: string, options?: AtOptions", ts_return_type = "TierView")]
    pub fn tier_sync(&self, env: Env, member_id: Unknown, options: Option<Unknown>) -> napi::Result<Js> {
        self.run(&env, self.b_tier(member_id, options))
    }

    /// Every tier change (and confirmation at a review) of the member,
    /// oldest first. Follows merges.
    #[napi(catch_unwind, ts_args_type = "memberId: string", ts_return_type = "Promise<TierChange[]>")]
    pub fn tier_history(&self, member_id: Unknown) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_tier_history(member_id))
    }

    /// Synchronous {@link Engine.tierHistory}.
    #[napi(catch_unwind, ts_args_type = "memberId: string", ts_return_type = "TierChange[]")]
    pub fn tier_history_sync(&self, env: Env, member_id: Unknown) -> napi::Result<Js> {
        self.run(&env, self.b_tier_history(member_id))
    }

    /// Members per tier at `at` (default: now), keyed by tier id; every tier
    /// of the ladder is listed.
    #[napi(catch_unwind, ts_args_type = "options?: AtOptions", ts_return_type = "Promise<TierDistribution>")]
    pub fn tier_distribution(&self, options: Option<Unknown>) -> napi::Result<AsyncTask<Job<JsDocument>>> {
        self.spawn(self.b_tier_distribution(options))
    }

    /// Synchronous {@link Engine.tierDistribution}.
    #[napi(catch_unwind, ts_args_type = "options?: AtOptions", ts_return_type = "TierDistribution")]
    pub fn tier_distribution_sync(&self, env: Env, options: Option<Unknown>) -> napi::Result<JsDocument> {
        self.run(&env, self.b_tier_distribution(options))
    }

    /// The member's lifecycle stage at `at` (default: now). Follows merges.
    #[napi(catch_unwind, ts_args_type = "memberId: string, options?: AtOptions", ts_return_type = "Promise<StageView>")]
    pub fn stage(&self, member_id: Unknown, options: Option<Unknown>) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_stage(member_id, options))
    }

    /// Synchronous {@link Engine.stage}.
    #[napi(catch_unwind, ts_args_type = "memberId: string, options?: AtOptions", ts_return_type = "StageView")]
    pub fn stage_sync(&self, env: Env, member_id: Unknown, options: Option<Unknown>) -> napi::Result<Js> {
        self.run(&env, self.b_stage(member_id, options))
    }

    /// Every recorded stage transition of the member, oldest first.
    #[napi(catch_unwind, ts_args_type = "memberId: string", ts_return_type = "Promise<StageChange[]>")]
    pub fn stage_history(&self, member_id: Unknown) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_stage_history(member_id))
    }

    /// The members matching a segment rule (a `Rule`, its text or its JSON
    /// form) at `at` (default: now), sorted by id.
    #[napi(
        catch_unwind,
        ts_args_type = "rule: Rule | string | RuleJson, options?: AtOptions",
        ts_return_type = "Promise<string[]>"
    )]
    pub fn segment(&self, rule: Unknown, options: Option<Unknown>) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_segment(rule, options))
    }

    /// Synchronous {@link Engine.segment}.
    #[napi(
        catch_unwind,
        ts_args_type = "rule: Rule | string | RuleJson, options?: AtOptions",
        ts_return_type = "string[]"
    )]
    pub fn segment_sync(&self, env: Env, rule: Unknown, options: Option<Unknown>) -> napi::Result<Js> {
        self.run(&env, self.b_segment(rule, options))
    }

    /// Does the member match the rule at `at` (default: now)? Call it after
    /// a fact to react in real time.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, rule: Rule | string | RuleJson, options?: AtOptions",
        ts_return_type = "Promise<boolean>"
    )]
    pub fn matches(&self, member_id: Unknown, rule: Unknown, options: Option<Unknown>) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_matches(member_id, rule, options))
    }

    /// Synchronous {@link Engine.matches}.
    #[napi(
        catch_unwind,
        ts_args_type = "memberId: string, rule: Rule | string | RuleJson, options?: AtOptions",
        ts_return_type = "boolean"
    )]
    pub fn matches_sync(
        &self,
        env: Env,
        member_id: Unknown,
        rule: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Js> {
        self.run(&env, self.b_matches(member_id, rule, options))
    }

    /// Re-evaluate a saved segment (`{id, rule, members, evaluatedAt}`, as a
    /// previous call returned it; `members: []` the first time) at `at`
    /// (default: now): returns the new `segment` to keep and the `changes`
    /// (`{segmentId, memberId, entered, at}`), each also recorded on the
    /// member for the `segment_entered` outreach trigger. Safe to repeat.
    #[napi(
        catch_unwind,
        ts_args_type = "segment: SavedSegment, options?: AtOptions",
        ts_return_type = "Promise<SegmentRefresh>"
    )]
    pub fn refresh_segment(&self, segment: Unknown, options: Option<Unknown>) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_refresh_segment(segment, options))
    }

    /// Synchronous {@link Engine.refreshSegment}.
    #[napi(
        catch_unwind,
        ts_args_type = "segment: SavedSegment, options?: AtOptions",
        ts_return_type = "SegmentRefresh"
    )]
    pub fn refresh_segment_sync(&self, env: Env, segment: Unknown, options: Option<Unknown>) -> napi::Result<Js> {
        self.run(&env, self.b_refresh_segment(segment, options))
    }

    /// Programme reports at `at` (default: now): members, buyers,
    /// repurchaseRate, liability (outstanding, value, expiring within
    /// 30/60/90 days, lifetime earned/redeemed/expired, breakage), cohorts
    /// (retention by first-order month) and channels (single- vs
    /// multi-channel buyers and their spend). Money and rates are strings.
    #[napi(catch_unwind, ts_args_type = "options?: AtOptions", ts_return_type = "Promise<Report>")]
    pub fn report(&self, options: Option<Unknown>) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_report(options))
    }

    /// Synchronous {@link Engine.report}.
    #[napi(catch_unwind, ts_args_type = "options?: AtOptions", ts_return_type = "Report")]
    pub fn report_sync(&self, env: Env, options: Option<Unknown>) -> napi::Result<Js> {
        self.run(&env, self.b_report(options))
    }

    /// The visual report at `at` (default: now) as one self-contained HTML
    /// document: headline figures, tiers, lifecycle stages and their flows
    /// (from `flowsFrom`, default 12 months before `flowsTo`, to `flowsTo`,
    /// default `at`), points liability, cohorts, the RFM grid, channels and,
    /// with `whatif` (a comparison object or its JSON text), the what-if
    /// section. Charts are inline SVG; the page loads nothing. `lang`: `en`
    /// (default) or `zh`.
    #[napi(catch_unwind, ts_args_type = "options?: ReportHtmlOptions", ts_return_type = "Promise<string>")]
    pub fn report_html(&self, options: Option<Unknown>) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_report_html(options))
    }

    /// Synchronous {@link Engine.reportHtml}.
    #[napi(catch_unwind, ts_args_type = "options?: ReportHtmlOptions", ts_return_type = "string")]
    pub fn report_html_sync(&self, env: Env, options: Option<Unknown>) -> napi::Result<Js> {
        self.run(&env, self.b_report_html(options))
    }

    /// Write {@link Engine.reportHtml} to `path` (UTF-8). A failed write is
    /// an `Error` with code `io_error` and field `path`.
    #[napi(catch_unwind, ts_args_type = "path: string, options?: ReportHtmlOptions", ts_return_type = "Promise<void>")]
    pub fn write_report(&self, path: Unknown, options: Option<Unknown>) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_write_report(path, options))
    }

    /// Synchronous {@link Engine.writeReport}.
    #[napi(catch_unwind, ts_args_type = "path: string, options?: ReportHtmlOptions", ts_return_type = "void")]
    pub fn write_report_sync(&self, env: Env, path: Unknown, options: Option<Unknown>) -> napi::Result<()> {
        self.run::<Js>(&env, self.b_write_report(path, options)).map(|_| ())
    }

    /// The outreach items the `runDue` at `now` emitted, again (with channel
    /// and payload): for a host that crashed after the run but before sending.
    /// A repeated `runDue` for the same `now` hands nothing out; this does.
    #[napi(catch_unwind, ts_args_type = "now: Date | string", ts_return_type = "Promise<OutreachItem[]>")]
    pub fn outreach_of_run(&self, now: Unknown) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_outreach_of_run(now))
    }

    /// Synchronous {@link Engine.outreachOfRun}.
    #[napi(catch_unwind, ts_args_type = "now: Date | string", ts_return_type = "OutreachItem[]")]
    pub fn outreach_of_run_sync(&self, env: Env, now: Unknown) -> napi::Result<Js> {
        self.run(&env, self.b_outreach_of_run(now))
    }

    /// Synchronous {@link Engine.stageHistory}.
    #[napi(catch_unwind, ts_args_type = "memberId: string", ts_return_type = "StageChange[]")]
    pub fn stage_history_sync(&self, env: Env, member_id: Unknown) -> napi::Result<Js> {
        self.run(&env, self.b_stage_history(member_id))
    }

    /// Members per lifecycle stage at `at` (default: now), keyed by stage
    /// (`at_risk` …, as the stage values); every stage is listed.
    #[napi(catch_unwind, ts_args_type = "options?: AtOptions", ts_return_type = "Promise<StageDistribution>")]
    pub fn stage_distribution(&self, options: Option<Unknown>) -> napi::Result<AsyncTask<Job<JsDocument>>> {
        self.spawn(self.b_stage_distribution(options))
    }

    /// Synchronous {@link Engine.stageDistribution}.
    #[napi(catch_unwind, ts_args_type = "options?: AtOptions", ts_return_type = "StageDistribution")]
    pub fn stage_distribution_sync(&self, env: Env, options: Option<Unknown>) -> napi::Result<JsDocument> {
        self.run(&env, self.b_stage_distribution(options))
    }

    /// How members moved between stages from `from` to `to`:
    /// `counts[stageAtFrom][stageAtTo]` (stage keys as the stage values).
    #[napi(catch_unwind, ts_args_type = "from: Instant, to: Instant", ts_return_type = "Promise<StageTransitions>")]
    pub fn stage_transitions(&self, from: Unknown, to: Unknown) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_stage_transitions(from, to))
    }

    /// Synchronous {@link Engine.stageTransitions}.
    #[napi(catch_unwind, ts_args_type = "from: Instant, to: Instant", ts_return_type = "StageTransitions")]
    pub fn stage_transitions_sync(&self, env: Env, from: Unknown, to: Unknown) -> napi::Result<Js> {
        self.run(&env, self.b_stage_transitions(from, to))
    }

    /// Measure a campaign from the facts known at `at` (default: now): the
    /// audience at the start split by the seeded hold-out, conversion,
    /// revenue per member and repurchase per group, uplifts with 95 %
    /// intervals (Newcombe for conversion, Welch for revenue), incremental
    /// revenue, cost and ROI. Money and rates are decimal strings.
    #[napi(
        catch_unwind,
        ts_args_type = "campaign: Campaign, options?: AtOptions",
        ts_return_type = "Promise<CampaignReport>"
    )]
    pub fn campaign_report(&self, campaign: Unknown, options: Option<Unknown>) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_campaign_report(campaign, options))
    }

    /// Synchronous {@link Engine.campaignReport}.
    #[napi(catch_unwind, ts_args_type = "campaign: Campaign, options?: AtOptions", ts_return_type = "CampaignReport")]
    pub fn campaign_report_sync(&self, env: Env, campaign: Unknown, options: Option<Unknown>) -> napi::Result<Js> {
        self.run(&env, self.b_campaign_report(campaign, options))
    }

    /// The campaign's audience at its start split into `treatment` (send to
    /// them) and `control` (hold them out), each sorted: the split
    /// {@link Engine.campaignReport} measures.
    #[napi(catch_unwind, ts_args_type = "campaign: Campaign", ts_return_type = "Promise<CampaignMembers>")]
    pub fn campaign_members(&self, campaign: Unknown) -> napi::Result<AsyncTask<Job>> {
        self.spawn(self.b_campaign_members(campaign))
    }

    /// Synchronous {@link Engine.campaignMembers}.
    #[napi(catch_unwind, ts_args_type = "campaign: Campaign", ts_return_type = "CampaignMembers")]
    pub fn campaign_members_sync(&self, env: Env, campaign: Unknown) -> napi::Result<Js> {
        self.run(&env, self.b_campaign_members(campaign))
    }
}
