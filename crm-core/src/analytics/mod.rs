//! Customer analytics over order histories: RFM scores and groups, value
//! clusters, and the BG/NBD and Gamma-Gamma customer-value models.
//!
//! Everything here works on columns ([`orders::Orders`]: member index, day,
//! amount in minor units) so that a million members and ten million orders
//! need no per-member objects. Money stays exact (integer minor units, shown
//! as `Decimal`); the models work in `f64`, which is fine for parameters.
//!
//! - [`csv`]: streaming readers for the order CSV and for customer summaries;
//! - [`mod@rfm`]: recency, frequency, monetary, their 1..=5 rank scores, RFM groups;
//! - [`cluster`]: k-means++ value clusters on log-scaled RFM;
//! - [`summary`]: (frequency, recency, T, mean repeat value) per customer;
//! - [`bgnbd`], [`gamma_gamma`], [`mod@clv`]: the value models and lifetime value;
//! - [`special`], [`optimize`]: ln Γ, ψ, ₂F₁ and the BFGS optimiser behind the fits.

pub mod bgnbd;
pub mod cluster;
pub mod clv;
pub mod csv;
mod fit_data;
pub mod gamma_gamma;
pub mod optimize;
pub mod orders;
pub mod rfm;
pub mod special;
pub mod summary;

pub use bgnbd::{BgNbd, FitReport};
pub use cluster::{kmeans, value_clusters, Clusters};
pub use clv::{clv, ClvOptions};
pub use gamma_gamma::GammaGamma;
pub use orders::{Day, MemberIds, Orders};
pub use rfm::{rfm, rfm_orders, RfmGroup, RfmTable};
pub use summary::{summarize, Period, Summary};
