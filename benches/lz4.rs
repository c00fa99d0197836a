//! `lz4`: the driver's LZ4 frame decoder (the frame checked and its output bounded first, the
//! output allocated once, blocks decoded in place) against `lz4_flex::frame::FrameDecoder`
//! reading into a reused buffer, side by side on the same input: the ten LZ4 CloudFetch files
//! of `SELECT * FROM mock.rows(1000000)` as the mock serves them (100,000 rows each).
//!
//! Needs the hidden `fuzzing` feature for the driver's decoder:
//! `cargo bench --bench lz4 --features fuzzing`. Both sides use `lz4_flex`'s block decoder, so
//! turning its `safe-decode` feature on changes both (see `src/results/lz4.rs` for the figures
//! and the choice).

use std::io::Read;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use databricks_sql::mock::MockWarehouse;

fn lz4(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let files = rt.block_on(async {
        let mock = MockWarehouse::start().await.expect("mock starts");
        mock.cloudfetch_files("SELECT * FROM mock.rows(1000000)", true)
            .expect("files")
    });
    let mut out = Vec::new();
    let decompressed: usize = files
        .iter()
        .map(|f| {
            assert!(databricks_sql::fuzzing::lz4_decompress_into(f, &mut out));
            out.len()
        })
        .sum();
    let mut group = c.benchmark_group("lz4");
    group.throughput(Throughput::Bytes(decompressed as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("driver_frame_decoder", |b| {
        let mut out = Vec::new();
        b.iter(|| {
            let mut total = 0;
            for file in &files {
                assert!(databricks_sql::fuzzing::lz4_decompress_into(file, &mut out));
                total += out.len();
            }
            assert_eq!(total, decompressed);
        })
    });
    group.bench_function("lz4_flex_frame_decoder", |b| {
        let mut out = Vec::new();
        b.iter(|| {
            let mut total = 0;
            for file in &files {
                out.clear();
                lz4_flex::frame::FrameDecoder::new(&file[..])
                    .read_to_end(&mut out)
                    .expect("valid frame");
                total += out.len();
            }
            assert_eq!(total, decompressed);
        })
    });
    group.finish();
}

criterion_group!(benches, lz4);
criterion_main!(benches);
