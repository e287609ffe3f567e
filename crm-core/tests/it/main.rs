//! Integration tests, one binary so they link once.

mod conformance;
mod engine;
mod props;
mod scenarios;
