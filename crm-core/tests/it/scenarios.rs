//! Runs every shared JSON scenario in `../scenarios` against the memory and
//! SQLite stores. Python and Node run the same files through their bindings.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use crm_core::{Command, CrmError, Engine, Identity, MemberId, MemoryStore, Program, Store};
use rust_decimal::Decimal;
use serde_json::{json, Value};

fn scenario_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

pub(crate) fn files() -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(scenario_dir())
        .expect("scenarios folder")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    v
}

fn error_json(e: &CrmError) -> Value {
    json!({ "code": e.code(), "field": e.field(), "message": e.to_string() })
}

/// Subset match with decimal-aware string comparison.
pub fn matches(expected: &Value, actual: &Value, path: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let av = a.get(k).unwrap_or(&Value::Null);
                matches(ev, av, &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Err(format!("{path}: expected {} elements, got {}: {actual}", e.len(), a.len()));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                matches(ev, av, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (Value::String(e), Value::String(a)) if e != a => match (e.parse::<Decimal>(), a.parse::<Decimal>()) {
            (Ok(x), Ok(y)) if x == y => Ok(()),
            _ => Err(format!("{path}: expected {e:?}, got {a:?}")),
        },
        (e, a) if e == a => Ok(()),
        (e, a) => Err(format!("{path}: expected {e}, got {a}")),
    }
}

fn ts(v: &Value, field: &str) -> DateTime<Utc> {
    serde_json::from_value(v.get(field).cloned().unwrap_or(Value::Null)).unwrap_or_else(|e| panic!("{field}: {e}"))
}

/// The query's `at`, or the step's `now`.
fn at_or(q: &Value, now: DateTime<Utc>) -> DateTime<Utc> {
    if q.get("at").is_some() {
        ts(q, "at")
    } else {
        now
    }
}

fn s(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap_or_else(|| panic!("query needs {field}")).to_string()
}

fn query<S: Store>(engine: &Engine<S>, q: &Value, now: DateTime<Utc>) -> Result<Value, CrmError> {
    let member = || MemberId::from(s(q, "member_id"));
    let to = |v: &dyn erased::Ser| v.json();
    Ok(match q["type"].as_str().unwrap_or_default() {
        "balance" => to(&engine.balance(&member(), &s(q, "point_type"), at_or(q, now))?),
        "lots" if q.get("at").is_some() => to(&engine.lots_at(&member(), ts(q, "at"))?),
        "lots" => to(&engine.lots(&member())?),
        "statement" => to(&engine.statement(
            &member(),
            &s(q, "point_type"),
            q["offset"].as_u64().unwrap_or(0) as usize,
            q["limit"].as_u64().unwrap_or(100) as usize,
        )?),
        "expiring" => {
            to(&engine.expiring(&member(), &s(q, "point_type"), now, q["days"].as_u64().unwrap_or(30) as u32)?)
        }
        "liability" => to(&engine.liability(now)?),
        "member" => to(&engine.member(&member())?),
        "find_by_identity" => {
            let identity = Identity { channel: s(q, "channel"), external_id: s(q, "external_id") };
            to(&engine.find_by_identity(&identity)?)
        }
        "tier" => to(&engine.tier(&member(), at_or(q, now))?),
        "tier_history" => to(&engine.tier_history(&member())?),
        "tier_distribution" => to(&engine.tier_distribution(at_or(q, now))?),
        "stage" => to(&engine.stage(&member(), at_or(q, now))?),
        "stage_history" => to(&engine.stage_history(&member())?),
        "stage_distribution" => to(&engine.stage_distribution(at_or(q, now))?),
        "stage_transitions" => to(&engine.stage_transitions(ts(q, "from"), ts(q, "to"))?),
        "report" => to(&engine.report(at_or(q, now))?),
        "segment" => to(&engine.segment(&crm_core::segment::parse(&s(q, "rule"))?, at_or(q, now))?),
        "coupons" => to(&engine.coupons(&member(), at_or(q, now))?),
        "coupon_usage" => to(&engine.coupon_usage(&s(q, "template"))?),
        "quote" => {
            let cart: crm_core::coupon::Cart = serde_json::from_value(q["cart"].clone())
                .map_err(|e| CrmError::Validation { field: "cart".into(), reason: e.to_string() })?;
            to(&engine.quote(&member(), &cart, at_or(q, now))?)
        }
        "refresh_segment" => {
            let mut seg: crm_core::segment::SavedSegment = serde_json::from_value(q["segment"].clone())
                .map_err(|e| CrmError::Validation { field: "segment".into(), reason: e.to_string() })?;
            let changes = engine.refresh_segment(&mut seg, at_or(q, now))?;
            json!({ "segment": seg, "changes": changes })
        }
        "campaign_members" => to(&engine.campaign_members(&campaign(q)?)?),
        "campaign_report" => to(&engine.campaign_report(&campaign(q)?, at_or(q, now))?),
        "feedback" => to(&engine.feedback(&member())?),
        "feedback_report" => {
            let segments = match q.get("segments") {
                Some(Value::Array(list)) => list
                    .iter()
                    .map(|s| {
                        Ok((
                            s["name"].as_str().unwrap_or_default().to_string(),
                            crm_core::segment::parse(s["rule"].as_str().unwrap_or_default())?,
                        ))
                    })
                    .collect::<Result<Vec<_>, CrmError>>()?,
                _ => Vec::new(),
            };
            let from = q.get("from").map(|_| ts(q, "from"));
            to(&engine.feedback_report(from, at_or(q, now), &segments)?)
        }
        "reschedule" => to(&engine.reschedule(now)?),
        "matches" => to(&engine.matches(&member(), &crm_core::segment::parse(&s(q, "rule"))?, at_or(q, now))?),
        other => panic!("unknown query type {other:?}"),
    })
}

fn campaign(q: &Value) -> Result<crm_core::campaign::Campaign, CrmError> {
    serde_json::from_value(q["campaign"].clone())
        .map_err(|e| CrmError::Validation { field: "campaign".into(), reason: e.to_string() })
}

mod erased {
    pub trait Ser {
        fn json(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Ser for T {
        fn json(&self) -> serde_json::Value {
            serde_json::to_value(self).expect("serialisable")
        }
    }
}

/// Run one scenario on `store` (shared: a programme step opens another
/// engine on it).
pub(crate) fn run<S: Store>(path: &PathBuf, store: S) -> Result<usize, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let sc: Value = serde_json::from_str(&text).map_err(|e| format!("bad scenario JSON: {e}"))?;
    let program = Program::from_value(sc["program"].clone()).map_err(|e| format!("program: {e}"))?;
    let mut engine = Engine::new(program, std::sync::Arc::new(store));
    let steps = sc["steps"].as_array().ok_or("steps must be an array")?;
    for (i, step) in steps.iter().enumerate() {
        let now = ts(step, "now");
        if let Some(p) = step.get("program") {
            // The same store under a changed programme, as a host restarted with it.
            let program = Program::from_value(p.clone()).map_err(|e| format!("step {i}: program: {e}"))?;
            engine = engine.with_program(program);
            continue;
        }
        let result: Result<Value, CrmError> = if let Some(c) = step.get("command") {
            let key = step["key"].as_str().ok_or(format!("step {i}: command steps need a key"))?;
            let command: Command =
                serde_json::from_value(c.clone()).map_err(|e| format!("step {i}: bad command: {e}"))?;
            engine.execute(key, command, now).map(|o| serde_json::to_value(o).unwrap())
        } else if let Some(q) = step.get("query") {
            query(&engine, q, now)
        } else {
            return Err(format!("step {i}: needs command or query"));
        };
        if std::env::var_os("SCENARIO_SHOW").is_some() {
            // `SCENARIO_SHOW=1` with `one_scenario`: every result, to write expectations from.
            eprintln!("step {i}: {}", result.as_ref().map_or_else(error_json, Value::clone));
        }
        match (result, step.get("error")) {
            (Ok(v), None) => {
                if let Some(e) = step.get("expect") {
                    matches(e, &v, "$").map_err(|m| format!("step {i}: {m}"))?;
                }
            }
            (Err(err), Some(e)) => {
                matches(e, &error_json(&err), "error").map_err(|m| format!("step {i}: {m}"))?;
            }
            (Ok(v), Some(e)) => return Err(format!("step {i}: expected error {e}, got {v}")),
            (Err(err), None) => return Err(format!("step {i}: unexpected error {err} ({})", err.code())),
        }
    }
    Ok(steps.len())
}

#[test]
fn every_scenario_passes_on_every_store() {
    let files = files();
    assert!(!files.is_empty(), "no scenarios found in {}", scenario_dir().display());
    let mut failures = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        if let Err(e) = run(f, MemoryStore::new()) {
            failures.push(format!("{name} [memory]: {e}"));
        }
        #[cfg(feature = "sqlite")]
        if let Err(e) = run(f, crm_core::SqliteStore::open_in_memory().expect("sqlite")) {
            failures.push(format!("{name} [sqlite]: {e}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} scenarios failed:\n{}", failures.len(), files.len(), failures.join("\n"));
    eprintln!("{} scenarios passed", files.len());
}

/// One scenario by file-name prefix, on the memory store (`SCENARIO=38 cargo test … one_scenario`;
/// with `SCENARIO_SHOW=1` it prints every step's result).
#[test]
fn one_scenario() {
    let Ok(prefix) = std::env::var("SCENARIO") else { return };
    for f in files().iter().filter(|f| f.file_name().unwrap().to_string_lossy().starts_with(&prefix)) {
        let n = run(f, MemoryStore::new()).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        eprintln!("{}: {n} steps passed", f.display());
    }
}
