//! (in progress)
pub(crate) mod cloudfetch;
