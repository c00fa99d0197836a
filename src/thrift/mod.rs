//! The Thrift backend: the TCLIService types generated from `thrift/TCLIService.thrift`
//! ([`tcli`]), and the layers the driver builds on them.
//!
//! The generated code is checked in; `scripts/regen-thrift.sh` regenerates it (thrift-compiler
//! 0.17) and patches it so that decoding never panics on an unknown union variant and optional
//! fields default to unset.

/// The TCLIService types and enums, as generated (e.g. `crate::thrift::tcli::TRowSet`).
///
/// Rust names are the snake_case of the IDL's (`TRowSet::start_row_offset`); enums are
/// newtypes over `i32` with associated constants (`TStatusCode::ERROR_STATUS`), so a value this
/// IDL does not know still decodes. `double` fields are `thrift::OrderedFloat<f64>`.
#[rustfmt::skip]
#[allow(
    dead_code,
    missing_docs,
    missing_debug_implementations,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    unused_imports,
    unused_variables,
    unused_mut,
    unreachable_patterns,
    clippy::all,
    clippy::pedantic,
    clippy::nursery
)]
pub(crate) mod tcli;

pub(crate) mod cookies;
pub(crate) mod framing;
pub(crate) mod handles;
pub(crate) mod rpc;
pub(crate) mod status;

#[cfg(test)]
mod tcli_tests;
