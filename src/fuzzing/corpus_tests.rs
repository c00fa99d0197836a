//! The fuzz corpora as a normal test: every file under `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/` goes through its target's entry point. And the generator of the
//! seed corpora (ignored: run it on purpose), which captures real replies of the mock warehouse.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Once;

/// A fuzz target's entry point.
type Target = fn(&[u8]);

/// Every target: its directory name under `fuzz/corpus/` and its entry point.
const TARGETS: [(&str, Target); 9] = [
    ("lz4_frame", super::lz4_frame),
    ("thrift_reply", super::thrift_reply),
    ("thrift_call", super::thrift_call),
    ("arrow_inline", super::arrow_inline),
    ("cloudfetch_file", super::cloudfetch_file),
    ("columnar", super::columnar),
    ("redact", super::redact),
    ("oauth_response", super::oauth_response),
    ("proxy_connect_reply", super::proxy_connect_reply),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `dir`, sorted; none when it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

thread_local! {
    /// Whether this thread panicked since the flag was last cleared, caught or not.
    static PANICKED: Cell<bool> = const { Cell::new(false) };
}

/// Installs (once) a panic hook that sets [`PANICKED`] before the previous hook runs: the
/// decoders catch panics of the Arrow crates and turn them into errors, and a fuzzer counts
/// those as crashes (they would abort a program built with `panic = "abort"`), so the replay
/// does too.
fn watch_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.with(|p| p.set(true));
            previous(info);
        }));
    });
}

#[test]
fn every_corpus_and_regression_input_replays_without_a_panic() {
    watch_panics();
    for (target, run) in TARGETS {
        let corpus = files(&fuzz_dir().join("corpus").join(target));
        assert!(
            !corpus.is_empty(),
            "fuzz/corpus/{target} has no seed inputs"
        );
        let regressions = files(&fuzz_dir().join("regressions").join(target));
        for file in corpus.iter().chain(&regressions) {
            let data = std::fs::read(file).expect("a corpus file is readable");
            PANICKED.with(|p| p.set(false));
            let outcome = std::panic::catch_unwind(|| run(&data));
            let panicked = outcome.is_err() || PANICKED.with(Cell::get);
            assert!(!panicked, "{target} panicked on {}", file.display());
        }
    }
}

#[test]
fn every_target_has_a_fuzz_target_file() {
    for (target, _) in TARGETS {
        let file = fuzz_dir().join("fuzz_targets").join(format!("{target}.rs"));
        assert!(file.is_file(), "{} is missing", file.display());
    }
}

#[test]
fn short_and_empty_inputs_are_harmless() {
    for (_, run) in TARGETS {
        for data in [&[][..], &[0], &[1, 0, 0, 0], &[0xFF; 16]] {
            run(data);
        }
    }
}

#[cfg(feature = "mock")]
mod generate {
    //! `cargo test --lib generate_seed_corpora -- --ignored` rewrites the seed inputs the mock
    //! warehouse gives (files named `mock-*`); hand-written seeds (`seed-*`) are kept.

    use std::collections::BTreeMap;
    use std::path::Path;

    use bytes::Bytes;
    use http::{header, Method, Request};
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::{connect::HttpConnector, Client};
    use hyper_util::rt::TokioExecutor;
    use thrift::protocol::{TBinaryOutputProtocol, TSerializable};

    use super::fuzz_dir;
    use crate::fuzzing::{FLAG_LZ4, REPLY_SEQ_ID};
    use crate::mock::{MockWarehouse, DEFAULT_OAUTH_CLIENT_ID, DEFAULT_OAUTH_CLIENT_SECRET};
    use crate::thrift::framing;
    use crate::thrift::tcli::*;

    /// Raw Thrift-over-HTTP calls to the mock, every call with sequence id [`REPLY_SEQ_ID`].
    struct Conn {
        http: Client<HttpConnector, Full<Bytes>>,
        url: String,
        token: String,
    }

    impl Conn {
        async fn post(&self, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Bytes {
            let mut request = Request::builder().method(Method::POST).uri(url);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let response = self
                .http
                .request(request.body(Full::new(Bytes::from(body))).unwrap())
                .await
                .unwrap();
            response.into_body().collect().await.unwrap().to_bytes()
        }

        async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Bytes {
            let mut request = Request::builder().method(Method::GET).uri(url);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let response = self
                .http
                .request(request.body(Full::new(Bytes::new())).unwrap())
                .await
                .unwrap();
            response.into_body().collect().await.unwrap().to_bytes()
        }

        /// The call's body and the reply's body, and the reply decoded.
        async fn call<Req: TSerializable, Resp: TSerializable>(
            &self,
            method: &str,
            req: &Req,
        ) -> (Vec<u8>, Bytes, Option<Resp>) {
            let call = framing::encode_call(method, REPLY_SEQ_ID, req).unwrap();
            let bearer = format!("Bearer {}", self.token);
            let headers = [
                (header::CONTENT_TYPE.as_str(), "application/x-thrift"),
                (header::AUTHORIZATION.as_str(), bearer.as_str()),
            ];
            let reply = self.post(&self.url, &headers, call.clone()).await;
            let decoded = framing::decode_reply(method, REPLY_SEQ_ID, &reply).ok();
            (call, reply, decoded)
        }
    }

    /// Collects seed inputs per target.
    #[derive(Default)]
    struct Seeds(BTreeMap<&'static str, Vec<(String, Vec<u8>)>>);

    impl Seeds {
        fn add(&mut self, target: &'static str, name: &str, data: impl Into<Vec<u8>>) {
            self.0
                .entry(target)
                .or_default()
                .push((name.to_string(), data.into()));
        }

        fn write(self, root: &Path) {
            for (target, seeds) in self.0 {
                let dir = root.join(target);
                std::fs::create_dir_all(&dir).unwrap();
                for old in super::files(&dir) {
                    let name = old.file_name().unwrap().to_string_lossy().into_owned();
                    if name.starts_with("mock-") {
                        std::fs::remove_file(old).unwrap();
                    }
                }
                for (name, data) in seeds {
                    std::fs::write(dir.join(format!("mock-{name}")), data).unwrap();
                }
            }
        }
    }

    fn thrift_bytes<T: TSerializable>(value: &T) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut o = TBinaryOutputProtocol::new(&mut buf, true);
        value.write_to_out_protocol(&mut o).unwrap();
        buf
    }

    /// An `arrow_inline` input: flags, the schema message, the batches.
    fn arrow_inline_input(lz4: bool, schema: &[u8], batches: &[TSparkArrowBatch]) -> Vec<u8> {
        let mut out = vec![if lz4 { FLAG_LZ4 } else { 0 }];
        out.extend_from_slice(&(schema.len() as u32).to_le_bytes());
        out.extend_from_slice(schema);
        for b in batches {
            out.extend_from_slice(&(b.row_count as u32).to_le_bytes());
            out.extend_from_slice(&(b.batch.len() as u32).to_le_bytes());
            out.extend_from_slice(&b.batch);
        }
        out
    }

    /// A `cloudfetch_file` input: flags, the schema message, the row count, the file.
    fn cloudfetch_input(lz4: bool, schema: &[u8], rows: i64, file: &[u8]) -> Vec<u8> {
        let mut out = vec![if lz4 { FLAG_LZ4 } else { 0 }];
        out.extend_from_slice(&(schema.len() as u32).to_le_bytes());
        out.extend_from_slice(schema);
        out.extend_from_slice(&(rows as u32).to_le_bytes());
        out.extend_from_slice(file);
        out
    }

    /// `data` in LZ4 frames of every option the format has (linked blocks, checksums, a
    /// declared content size, small blocks), and two frames back to back.
    fn lz4_variants(seeds: &mut Seeds, tag: &str, data: &[u8]) {
        use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
        use std::io::Write;

        let encode = |info: FrameInfo, data: &[u8]| {
            let mut encoder = FrameEncoder::with_frame_info(info, Vec::new());
            encoder.write_all(data).unwrap();
            encoder.finish().unwrap()
        };
        let doubled = [data, data].concat();
        let linked = FrameInfo::new()
            .block_size(BlockSize::Max64KB)
            .block_mode(BlockMode::Linked);
        let checked = FrameInfo::new()
            .block_checksums(true)
            .content_checksum(true)
            .content_size(Some(doubled.len() as u64));
        seeds.add(
            "lz4_frame",
            &format!("{tag}-linked"),
            encode(linked, &doubled),
        );
        seeds.add(
            "lz4_frame",
            &format!("{tag}-checksums-size"),
            encode(checked, &doubled),
        );
        let mut two = encode(FrameInfo::new(), data);
        two.extend_from_slice(&encode(FrameInfo::new(), b"second frame"));
        seeds.add("lz4_frame", &format!("{tag}-two-frames"), two);
    }

    fn open_req() -> TOpenSessionReq {
        TOpenSessionReq::new(
            TProtocolVersion(-7),
            None,
            None,
            None,
            None,
            i64::from(crate::mock::protocol_version::SPARK_V8),
            None,
            None,
            true,
        )
    }

    /// An execution with direct results; Arrow (native types) unless `arrow` is false.
    fn exec(session: &TSessionHandle, sql: &str, arrow: bool, lz4: bool) -> TExecuteStatementReq {
        let mut req = TExecuteStatementReq::new(
            session.clone(),
            sql.to_string(),
            None,
            true,
            None,
            None,
            arrow,
            None,
            None,
            None,
            TSparkArrowTypes::new(true, true, true, true, None),
            None,
            None,
            None,
            None,
        );
        req.get_direct_results = Some(TSparkGetDirectResults::new(100_000, None));
        req.can_decompress_l_z4_result = Some(lz4);
        req
    }

    #[tokio::test(flavor = "multi_thread")]
    #[ignore = "rewrites fuzz/corpus: run on purpose"]
    async fn generate_seed_corpora() {
        let mock = MockWarehouse::builder()
            .arrow_batch_rows(16)
            .cloudfetch_threshold_rows(40)
            .cloudfetch_rows_per_file(30)
            .cloudfetch_links_per_page(2)
            .start()
            .await
            .unwrap();
        let c = Conn {
            http: Client::builder(TokioExecutor::new()).build_http(),
            url: mock.url(),
            token: mock.token().to_string(),
        };
        let mut seeds = Seeds::default();

        let (call, reply, open) = c
            .call::<_, TOpenSessionResp>("OpenSession", &open_req())
            .await;
        seeds.add("thrift_call", "open-session", call);
        seeds.add("thrift_reply", "open-session", reply.to_vec());
        let session = open.unwrap().session_handle.unwrap();

        let queries = [
            ("all-types", "SELECT * FROM mock.all_types"),
            ("rows-20", "SELECT * FROM mock.rows(20)"),
            ("range-3", "SELECT * FROM range(3)"),
            ("select-1", "SELECT 1"),
            ("params", "SELECT 'x' AS a"),
        ];
        for (name, sql) in queries {
            for (arrow, lz4) in [(true, false), (true, true), (false, false)] {
                let tag = format!(
                    "{name}-{}{}",
                    if arrow { "arrow" } else { "columns" },
                    if lz4 { "-lz4" } else { "" }
                );
                let (call, _, resp) = c
                    .call::<_, TExecuteStatementResp>(
                        "ExecuteStatement",
                        &exec(&session, sql, arrow, lz4),
                    )
                    .await;
                seeds.add("thrift_call", &format!("execute-{tag}"), call);
                let resp = resp.unwrap();
                let op = resp.operation_handle.clone().unwrap();
                let (_, status, _) = c
                    .call::<_, TGetOperationStatusResp>(
                        "GetOperationStatus",
                        &TGetOperationStatusReq::new(op.clone(), None),
                    )
                    .await;
                seeds.add("thrift_reply", &format!("status-{tag}"), status.to_vec());
                let (call, meta_reply, meta) = c
                    .call::<_, TGetResultSetMetadataResp>(
                        "GetResultSetMetadata",
                        &TGetResultSetMetadataReq::new(op.clone()),
                    )
                    .await;
                if name == "all-types" {
                    seeds.add("thrift_call", &format!("metadata-{tag}"), call);
                }
                seeds.add(
                    "thrift_reply",
                    &format!("metadata-{tag}"),
                    meta_reply.to_vec(),
                );
                let meta = resp
                    .direct_results
                    .as_ref()
                    .and_then(|d| d.result_set_metadata.as_deref().cloned())
                    .or(meta)
                    .unwrap();
                let fetch = TFetchResultsReq::new(
                    op.clone(),
                    TFetchOrientation::FETCH_FIRST,
                    1000,
                    None,
                    None,
                    None,
                    None,
                );
                let (call, fetch_reply, rows) =
                    c.call::<_, TFetchResultsResp>("FetchResults", &fetch).await;
                if name == "all-types" {
                    seeds.add("thrift_call", &format!("fetch-{tag}"), call);
                }
                seeds.add(
                    "thrift_reply",
                    &format!("fetch-{tag}"),
                    fetch_reply.to_vec(),
                );
                let has_rows = |r: &TRowSet| {
                    r.arrow_batches.as_ref().is_some_and(|b| !b.is_empty())
                        || r.columns.as_ref().is_some_and(|c| !c.is_empty())
                };
                let direct = resp
                    .direct_results
                    .and_then(|d| d.result_set)
                    .and_then(|r| r.results);
                let fetched = rows.and_then(|r| r.results);
                let Some(rows) = direct.filter(has_rows).or(fetched.filter(has_rows)) else {
                    continue;
                };
                if let (Some(schema), Some(batches)) = (&meta.arrow_schema, &rows.arrow_batches) {
                    seeds.add(
                        "arrow_inline",
                        &tag,
                        arrow_inline_input(lz4, schema, batches),
                    );
                    if lz4 {
                        for (i, b) in batches.iter().enumerate().take(2) {
                            seeds.add("lz4_frame", &format!("{tag}-batch{i}"), b.batch.clone());
                        }
                    } else if name == "all-types" {
                        lz4_variants(&mut seeds, &tag, &batches[0].batch);
                    }
                }
                if let (Some(table), Some(_)) = (&meta.schema, &rows.columns) {
                    let mut input = thrift_bytes(table);
                    input.extend_from_slice(&thrift_bytes(&rows));
                    seeds.add("columnar", &tag, input);
                }
                let (call, _, _) = c
                    .call::<_, TCloseOperationResp>("CloseOperation", &TCloseOperationReq::new(op))
                    .await;
                if name == "all-types" {
                    seeds.add("thrift_call", &format!("close-operation-{tag}"), call);
                }
            }
        }

        // CloudFetch: links to files, LZ4-framed or not.
        for lz4 in [true, false] {
            let mut req = exec(&session, "SELECT * FROM mock.rows(70)", true, lz4);
            req.can_download_result = Some(true);
            req.get_direct_results = None;
            let (_, _, resp) = c
                .call::<_, TExecuteStatementResp>("ExecuteStatement", &req)
                .await;
            let op = resp.unwrap().operation_handle.unwrap();
            let (_, _, meta) = c
                .call::<_, TGetResultSetMetadataResp>(
                    "GetResultSetMetadata",
                    &TGetResultSetMetadataReq::new(op.clone()),
                )
                .await;
            let schema = meta.unwrap().arrow_schema.unwrap();
            let fetch = TFetchResultsReq::new(
                op,
                TFetchOrientation::FETCH_NEXT,
                1000,
                None,
                None,
                None,
                None,
            );
            let (_, reply, rows) = c.call::<_, TFetchResultsResp>("FetchResults", &fetch).await;
            let tag = if lz4 { "rows-70-lz4" } else { "rows-70" };
            seeds.add(
                "thrift_reply",
                &format!("fetch-links-{tag}"),
                reply.to_vec(),
            );
            let links = rows.unwrap().results.unwrap().result_links.unwrap();
            for (i, link) in links.iter().enumerate() {
                let headers: Vec<(&str, &str)> = link
                    .http_headers
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let file = c.get(&link.file_link, &headers).await;
                seeds.add(
                    "cloudfetch_file",
                    &format!("{tag}-file{i}"),
                    cloudfetch_input(lz4, &schema, link.row_count, &file),
                );
                if lz4 {
                    seeds.add("lz4_frame", &format!("{tag}-file{i}"), file.to_vec());
                }
            }
        }

        // Errors: the server's messages go through the telemetry redactor.
        for sql in ["SELECT * FROM nowhere.t", "SELEC oops", "SELECT :a AS x"] {
            let (_, _, resp) = c
                .call::<_, TExecuteStatementResp>(
                    "ExecuteStatement",
                    &exec(&session, sql, true, false),
                )
                .await;
            let Some(resp) = resp else { continue };
            let messages = [
                resp.status.error_message.clone(),
                resp.direct_results
                    .and_then(|d| d.operation_status)
                    .and_then(|s| s.error_message),
            ];
            for (i, message) in messages.into_iter().flatten().enumerate() {
                seeds.add("redact", &format!("error-{}-{i}", sql.len()), message);
            }
        }
        let (call, reply, _) = c
            .call::<_, TCloseSessionResp>("CloseSession", &TCloseSessionReq::new(session))
            .await;
        seeds.add("thrift_call", "close-session", call);
        seeds.add("thrift_reply", "close-session", reply.to_vec());
        let (_, exception, _) = c
            .call::<_, TOpenSessionResp>("NoSuchMethod", &open_req())
            .await;
        seeds.add("thrift_reply", "exception", exception.to_vec());

        // OAuth: the discovery document, a token, refusals.
        let base = mock.base_url();
        let discovery = c
            .get(
                &format!("{base}/oidc/.well-known/oauth-authorization-server"),
                &[],
            )
            .await;
        seeds.add("oauth_response", "discovery", discovery.to_vec());
        let form = [("Content-Type", "application/x-www-form-urlencoded")];
        for (name, body) in [
            (
                "token",
                format!(
                    "grant_type=client_credentials&client_id={DEFAULT_OAUTH_CLIENT_ID}\
                     &client_secret={DEFAULT_OAUTH_CLIENT_SECRET}&scope=all-apis"
                ),
            ),
            (
                "invalid-client",
                format!("grant_type=client_credentials&client_id={DEFAULT_OAUTH_CLIENT_ID}&client_secret=x"),
            ),
            ("unsupported-grant", "grant_type=password".to_string()),
            ("invalid-grant", "grant_type=refresh_token&refresh_token=nope".to_string()),
        ] {
            let answer = c
                .post(&format!("{base}/oidc/v1/token"), &form, body.into_bytes())
                .await;
            seeds.add("oauth_response", name, answer.to_vec());
        }

        seeds.write(&fuzz_dir().join("corpus"));
    }
}
