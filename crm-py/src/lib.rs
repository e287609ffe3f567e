//! Python bindings for the crm loyalty engine.
//!
//! The compiled extension is importable as `crm._crm`; the pure-Python package
//! in `python/crm/` re-exports its public names. This crate only converts
//! types and maps errors: every rule lives in `crm-core`.

use pyo3::prelude::*;

mod analytics;
mod campaign;
mod convert;
mod engine;
mod errors;
mod frames;
mod program;
mod recommend;
mod report;
mod results;
mod whatif;

/// mimalloc for every allocation the extension makes: the engine allocates
/// many small strings and maps per member, where the system allocator costs
/// about half the time of bulk imports and daily runs (README "Allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[pymodule]
fn _crm(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    analytics::register(m)?;
    recommend::register(m)?;
    m.add_class::<program::PyProgram>()?;
    m.add_class::<engine::PyEngine>()?;
    m.add_class::<engine::StatementIterator>()?;
    m.add_class::<results::PyOutcome>()?;
    m.add_class::<results::PyBalance>()?;
    m.add_class::<results::PyLot>()?;
    m.add_class::<results::PyAllocation>()?;
    m.add_class::<results::PyClawback>()?;
    m.add_class::<results::PyStatementEntry>()?;
    m.add_class::<results::PyStatementPage>()?;
    m.add_class::<results::PyExpiring>()?;
    m.add_class::<results::PyPointTypeLiability>()?;
    m.add_class::<results::PyLiability>()?;
    m.add_class::<results::PyMember>()?;
    m.add_class::<results::PyTierMetric>()?;
    m.add_class::<results::PyTierGap>()?;
    m.add_class::<results::PyTierProgress>()?;
    m.add_class::<results::PyManualTier>()?;
    m.add_class::<results::PyTierBenefits>()?;
    m.add_class::<results::PyTierView>()?;
    m.add_class::<results::PyTierChange>()?;
    m.add_class::<results::PyStageView>()?;
    m.add_class::<results::PyStageChange>()?;
    m.add_class::<results::PyTransitionMatrix>()?;
    m.add_class::<results::PyOutreachItem>()?;
    m.add_class::<report::PyReportPage>()?;
    m.add_class::<campaign::PyCampaignReport>()?;
    m.add_class::<whatif::PyComparison>()?;
    m.add_function(wrap_pyfunction!(whatif::compare_programmes, m)?)?;
    m.add_class::<frames::PyImportResult>()?;
    m.add_class::<frames::PyRejectedRow>()?;
    m.add_function(wrap_pyfunction!(generate_coupon_codes, m)?)?;
    m.add_function(wrap_pyfunction!(check_coupon_code, m)?)?;
    Ok(())
}

/// `n` distinct coupon codes from the operating system's random source:
/// 12 characters without look-alikes (no 0, O, 1, I, L) and a check character.
#[pyfunction]
fn generate_coupon_codes(py: Python<'_>, n: usize) -> PyResult<Vec<String>> {
    errors::detached(py, move || crm_core::coupon::generate_codes(n))
}

/// A code as typed (any case, spaces and dashes ignored) in its canonical
/// form; `ValidationError` (field `code`) when a character or the check
/// character is wrong.
#[pyfunction]
fn check_coupon_code(py: Python<'_>, code: &str) -> PyResult<String> {
    crm_core::coupon::check_code(code).map_err(|e| errors::to_py(py, &e))
}
