//! Node bindings of `crm_core::recommend`: a `Recommender` fitted on order lines
//! (`{memberId, sku, category?, qty?}`) and engagement events (`{memberId, sku, kind}`).
//! `Recommender.fit` and `recommendAll` return Promises (the work runs on the libuv
//! pool: fitting millions of lines takes seconds); `fitSync` and `recommend` (one
//! member, microseconds) are synchronous. Errors are `CrmError`s naming the row
//! (`lines[3].qty`) or the option.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crm_core::recommend::{
    InteractionOptions, Interactions, PurchaseWeight, RecommendOptions, Recommender as CoreRecommender,
};
use crm_core::CrmError;
use napi::bindgen_prelude::AsyncTask;
use napi::{Env, Task};
use napi_derive::napi;

use crate::errors::{to_napi, ErrorInfo};

/// One order line.
#[napi(object)]
pub struct PurchaseLine {
    pub member_id: String,
    pub sku: String,
    pub category: Option<String>,
    /// Positive; 1 when absent.
    pub qty: Option<u32>,
}

/// One engagement event; `kind` must have a weight (`engagementWeights`).
#[napi(object)]
pub struct EngagementEvent {
    pub member_id: String,
    pub sku: String,
    pub kind: String,
}

/// Options of `Recommender.fit`.
#[napi(object)]
pub struct RecommenderOptions {
    /// `"binary"` (default: a bought sku counts 1) or `"quantity"`.
    pub purchase_weight: Option<String>,
    /// Weight per engagement kind (default `{browse: 0.1, favourite: 0.3, add_to_cart: 0.5}`).
    pub engagement_weights: Option<HashMap<String, f64>>,
    /// Similar skus kept per sku (default 20).
    pub neighbours: Option<u32>,
    /// Leave out skus the member bought (default true).
    pub exclude_bought: Option<bool>,
    /// At most one sku per category (default false).
    pub one_per_category: Option<bool>,
    /// Similarities are raised to this power when scoring (1-4, default 2).
    pub power: Option<u32>,
    /// Threads (default 0: every core).
    pub threads: Option<u32>,
}

/// A recommended sku; `score` 0 marks a popular sku filling the list.
#[napi(object)]
pub struct ScoredSku {
    pub sku: String,
    pub score: f64,
}

/// One row of `recommendAll`.
#[napi(object)]
pub struct MemberRecommendation {
    pub member_id: String,
    /// 1-based.
    pub rank: u32,
    pub sku: String,
    pub score: f64,
}

type Input = (Vec<PurchaseLine>, Vec<EngagementEvent>, Option<RecommenderOptions>);

/// Add the row to a core validation error's field.
fn at(e: CrmError, list: &str, row: usize) -> CrmError {
    match e {
        CrmError::Validation { field, reason } => {
            CrmError::Validation { field: format!("{list}[{row}].{}", camel(&field)), reason }
        }
        other => other,
    }
}

fn camel(field: &str) -> String {
    match field {
        "member_id" => "memberId".into(),
        other => other.into(),
    }
}

fn fit_core((lines, engagements, options): Input) -> Result<CoreRecommender, ErrorInfo> {
    let o = options.unwrap_or(RecommenderOptions {
        purchase_weight: None,
        engagement_weights: None,
        neighbours: None,
        exclude_bought: None,
        one_per_category: None,
        power: None,
        threads: None,
    });
    let purchase = PurchaseWeight::parse(o.purchase_weight.as_deref().unwrap_or("binary")).map_err(|e| match e {
        CrmError::Validation { reason, .. } => CrmError::Validation { field: "purchaseWeight".into(), reason },
        other => other,
    })?;
    let mut weights = InteractionOptions { purchase, ..InteractionOptions::default() };
    if let Some(w) = o.engagement_weights {
        weights.engagement_weights = w.into_iter().collect();
    }
    let mut x = Interactions::new(weights).map_err(|e| match e {
        CrmError::Validation { field, reason } => {
            CrmError::Validation { field: field.replace("engagement_weights", "engagementWeights"), reason }
        }
        other => other,
    })?;
    for (row, l) in lines.iter().enumerate() {
        x.add_purchase(&l.member_id, &l.sku, l.category.as_deref(), l.qty.unwrap_or(1))
            .map_err(|e| at(e, "lines", row))?;
    }
    for (row, e) in engagements.iter().enumerate() {
        x.add_engagement(&e.member_id, &e.sku, &e.kind).map_err(|err| at(err, "engagements", row))?;
    }
    let defaults = RecommendOptions::default();
    let fit = RecommendOptions {
        neighbours: o.neighbours.map_or(defaults.neighbours, |n| n as usize),
        exclude_bought: o.exclude_bought.unwrap_or(defaults.exclude_bought),
        one_per_category: o.one_per_category.unwrap_or(defaults.one_per_category),
        power: o.power.unwrap_or(defaults.power),
        threads: o.threads.map_or(defaults.threads, |n| n as usize),
    };
    Ok(CoreRecommender::fit(&x, fit)?)
}

/// Run `f`, turning a panic into an `internal_error`.
fn guarded<T>(f: impl FnOnce() -> Result<T, ErrorInfo>) -> Result<T, ErrorInfo> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| Err(ErrorInfo::internal("recommender panicked")))
}

/// An item-to-item recommender (cosine similarity over co-purchases); see
/// `crm_core::recommend` for the model.
#[napi]
pub struct Recommender {
    inner: Arc<CoreRecommender>,
}

pub struct FitTask {
    input: Option<Input>,
}

impl Task for FitTask {
    type Output = Result<CoreRecommender, ErrorInfo>;
    type JsValue = Recommender;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        Ok(match self.input.take() {
            Some(input) => guarded(|| fit_core(input)),
            None => Err(ErrorInfo::internal("task ran twice")),
        })
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Recommender> {
        output.map(|r| Recommender { inner: Arc::new(r) }).map_err(|e| to_napi(&env, &e))
    }
}

pub struct AllTask {
    model: Arc<CoreRecommender>,
    k: usize,
}

impl Task for AllTask {
    type Output = Result<Vec<MemberRecommendation>, ErrorInfo>;
    type JsValue = Vec<MemberRecommendation>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let (model, k) = (&self.model, self.k);
        Ok(guarded(|| {
            let top = model.recommend_all(k);
            let mut order: Vec<u32> = (0..model.members() as u32).collect();
            model.member_ids().sort_natural_by(&mut order, |&m| m);
            let mut out = Vec::with_capacity(top.items.len());
            for &m in &order {
                for (r, (item, score)) in top.of(m as usize).enumerate() {
                    out.push(MemberRecommendation {
                        member_id: model.member_ids().get(m).to_owned(),
                        rank: r as u32 + 1,
                        sku: model.item_sku(item).to_owned(),
                        score: f64::from(score),
                    });
                }
            }
            Ok(out)
        }))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Vec<MemberRecommendation>> {
        output.map_err(|e| to_napi(&env, &e))
    }
}

#[napi]
impl Recommender {
    /// Fit on the libuv pool; resolves to a `Recommender`.
    #[napi(ts_return_type = "Promise<Recommender>")]
    pub fn fit(
        lines: Vec<PurchaseLine>,
        engagements: Option<Vec<EngagementEvent>>,
        options: Option<RecommenderOptions>,
    ) -> AsyncTask<FitTask> {
        AsyncTask::new(FitTask { input: Some((lines, engagements.unwrap_or_default(), options)) })
    }

    /// `fit`, synchronously (small histories, scripts).
    #[napi(factory)]
    pub fn fit_sync(
        env: Env,
        lines: Vec<PurchaseLine>,
        engagements: Option<Vec<EngagementEvent>>,
        options: Option<RecommenderOptions>,
    ) -> napi::Result<Recommender> {
        guarded(|| fit_core((lines, engagements.unwrap_or_default(), options)))
            .map(|r| Recommender { inner: Arc::new(r) })
            .map_err(|e| to_napi(&env, &e))
    }

    /// Members the model knows.
    #[napi(getter)]
    pub fn members(&self) -> u32 {
        self.inner.members() as u32
    }

    /// Skus the model knows.
    #[napi(getter)]
    pub fn skus(&self) -> u32 {
        self.inner.skus() as u32
    }

    /// The top `k` (default 10) skus for a member; an unknown member gets the
    /// most popular skus.
    #[napi]
    pub fn recommend(&self, member_id: String, k: Option<u32>) -> Vec<ScoredSku> {
        self.inner
            .recommend(&member_id, k.unwrap_or(10) as usize)
            .into_iter()
            .map(|r| ScoredSku { sku: r.sku, score: r.score })
            .collect()
    }

    /// The `n` (default 10) most similar skus of `sku`, with their cosine similarity.
    #[napi]
    pub fn similar(&self, sku: String, n: Option<u32>) -> Vec<ScoredSku> {
        self.inner
            .similar(&sku, n.unwrap_or(10) as usize)
            .into_iter()
            .map(|(sku, score)| ScoredSku { sku, score })
            .collect()
    }

    /// The top `k` (default 10) of every member, members in natural id order.
    #[napi(ts_return_type = "Promise<Array<MemberRecommendation>>")]
    pub fn recommend_all(&self, k: Option<u32>) -> AsyncTask<AllTask> {
        AsyncTask::new(AllTask { model: self.inner.clone(), k: k.unwrap_or(10) as usize })
    }
}
