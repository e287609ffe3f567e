//! Integration tests, one binary so they link once.

mod conformance;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod durability;
mod engine;
#[cfg(feature = "postgres")]
mod postgres;
mod props;
mod scenarios;
