#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| databricks_sql::fuzzing::lz4_frame(data));
