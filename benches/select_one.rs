//! Benchmark placeholder (lands with the mock warehouse).
fn main() {}
