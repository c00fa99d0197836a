//! Entry points for the coverage-guided fuzz targets in `fuzz/` (feature `fuzzing`; also built
//! in tests, where `corpus_tests` replays the committed corpora through them), and the one
//! internal decoder the `lz4` benchmark measures ([`lz4_decompress_into`]).
//!
//! Each function takes arbitrary bytes, runs one decoder of network data on them and returns
//! nothing: errors are expected and ignored. What a fuzzer looks for is a panic, a hang or a
//! huge allocation; the functions also assert properties that must hold whatever the input
//! (output within its cap, the LZ4 decoder agreeing with `lz4_flex`'s, valid Arrow arrays,
//! no token left in a redacted message), so a violated property shows up as a crash too.
//!
//! Inputs that carry more than one piece (a schema and a batch...) use a little framing of
//! their own, described on each function: integers are little-endian, and a piece whose
//! declared length runs past the end of the input takes what is left.
//!
//! Not a stable API: hidden from the documentation, changed with the decoders.

use std::io::Read;

use arrow_array::{Array, RecordBatch};
use arrow_buffer::Buffer;
use thrift::protocol::{TBinaryInputProtocol, TSerializable};
use thrift::TConfiguration;

use crate::results::cloudfetch::{decode_stream, Chunk};
use crate::results::inline_rows::{ArrowBatchBytes, InlineRows};
use crate::results::{columnar, lz4, schema, ResultDecoder, ResultFormat};
use crate::thrift::framing;
use crate::thrift::tcli::{
    TCancelOperationReq, TCloseOperationReq, TCloseSessionReq, TExecuteStatementReq,
    TFetchResultsReq, TFetchResultsResp, TGetOperationStatusReq, TGetOperationStatusResp,
    TGetResultSetMetadataReq, TGetResultSetMetadataResp, TOpenSessionReq, TOpenSessionResp,
    TRowSet, TTableSchema,
};

/// The most any input may decompress or expand to: small, so that a fuzzer never runs out of
/// memory on a frame that announces gigabytes.
pub const MAX_OUTPUT: usize = 1 << 20;

/// The sequence id every Thrift reply of the corpus carries (and [`thrift_reply`] expects).
pub const REPLY_SEQ_ID: i32 = 1;

/// Flag bit of the first byte of [`arrow_inline`] and [`cloudfetch_file`] inputs: the data is
/// LZ4-framed.
pub const FLAG_LZ4: u8 = 1;

/// A cursor over fuzz input that never fails: past the end it yields zeros and empty slices.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn u8(&mut self) -> u8 {
        let (&first, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        first
    }

    fn u32(&mut self) -> u32 {
        let bytes = self.take(4);
        let mut le = [0u8; 4];
        le[..bytes.len()].copy_from_slice(bytes);
        u32::from_le_bytes(le)
    }

    /// The next `n` bytes, or what is left when fewer remain.
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    fn rest(self) -> &'a [u8] {
        self.0
    }
}

/// LZ4 frame decoding (`results::lz4`), differentially against `lz4_flex::frame::FrameDecoder`.
///
/// Input: one or more LZ4 frames, as a compressed Arrow batch or CloudFetch file.
/// Checks: [`decompressed_bound`](lz4::decompressed_bound) agrees with
/// [`decompress_frame`](lz4::decompress_frame) and bounds its output; decoding into a reused
/// buffer holding other bytes gives the same output; when `FrameDecoder` (run frame after
/// frame) also accepts the input, both outputs are equal.
pub fn lz4_frame(data: &[u8]) {
    let bound = lz4::decompressed_bound(data, MAX_OUTPUT);
    let mut out = Vec::new();
    let ours = lz4::decompress_frame(data, &mut out, MAX_OUTPUT);
    let mut reused = vec![0xA5u8; 3000];
    let again = lz4::decompress_frame(data, &mut reused, MAX_OUTPUT);
    assert_eq!(
        ours.is_ok(),
        again.is_ok(),
        "a reused buffer changed the outcome"
    );
    if ours.is_err() {
        assert!(
            out.is_empty() && reused.is_empty(),
            "output left after an error"
        );
        return;
    }
    assert_eq!(out, reused, "a reused buffer changed the output");
    let bound = bound.expect("decompress_frame accepted a frame decompressed_bound refused");
    assert!(out.len() <= bound, "{} bytes out, bound {bound}", out.len());
    assert!(bound <= MAX_OUTPUT);
    if let Some(theirs) = frame_decoder(data) {
        assert!(out == theirs, "the LZ4 decoders disagree");
    }
}

/// The driver's LZ4 frame decoder on `data`, into `out` (its memory reused): what the `lz4`
/// benchmark measures. False when the data is refused.
pub fn lz4_decompress_into(data: &[u8], out: &mut Vec<u8>) -> bool {
    lz4::decompress_frame(data, out, lz4::MAX_DECOMPRESSED).is_ok()
}

/// Every frame of `data` decoded by `lz4_flex`'s `FrameDecoder` (which reads one frame per
/// decoder), or `None` when it refuses the data or would produce more than our cap.
fn frame_decoder(data: &[u8]) -> Option<Vec<u8>> {
    let mut input = data;
    let mut out = Vec::new();
    while !input.is_empty() {
        let before = input.len();
        let mut decoder = lz4_flex::frame::FrameDecoder::new(&mut input);
        let limit = (MAX_OUTPUT + 1).saturating_sub(out.len()) as u64;
        (&mut decoder).take(limit).read_to_end(&mut out).ok()?;
        if out.len() > MAX_OUTPUT || input.len() == before {
            return None;
        }
    }
    Some(out)
}

/// Thrift reply decoding (`thrift::framing::decode_reply`) of the responses the driver reads
/// most: `FetchResults`, `GetResultSetMetadata`, `OpenSession` and `GetOperationStatus`.
///
/// Input: one reply body (a strict binary REPLY or EXCEPTION message), sequence id
/// [`REPLY_SEQ_ID`].
pub fn thrift_reply(data: &[u8]) {
    let _ = framing::decode_reply::<TFetchResultsResp>("FetchResults", REPLY_SEQ_ID, data);
    let _ = framing::decode_reply::<TGetResultSetMetadataResp>(
        "GetResultSetMetadata",
        REPLY_SEQ_ID,
        data,
    );
    let _ = framing::decode_reply::<TOpenSessionResp>("OpenSession", REPLY_SEQ_ID, data);
    let _ =
        framing::decode_reply::<TGetOperationStatusResp>("GetOperationStatus", REPLY_SEQ_ID, data);
}

/// Thrift call decoding on the mock warehouse's side (`thrift::framing::decode_call`), then
/// the arguments as the request type the method names.
///
/// Input: one call body (a strict binary CALL message).
pub fn thrift_call(data: &[u8]) {
    let Ok((method, _seq_id, args)) = framing::decode_call(data) else {
        return;
    };
    let _ = match method.as_str() {
        "OpenSession" => args.decode::<TOpenSessionReq>().map(drop),
        "CloseSession" => args.decode::<TCloseSessionReq>().map(drop),
        "GetOperationStatus" => args.decode::<TGetOperationStatusReq>().map(drop),
        "GetResultSetMetadata" => args.decode::<TGetResultSetMetadataReq>().map(drop),
        "FetchResults" => args.decode::<TFetchResultsReq>().map(drop),
        "CancelOperation" => args.decode::<TCancelOperationReq>().map(drop),
        "CloseOperation" => args.decode::<TCloseOperationReq>().map(drop),
        _ => args.decode::<TExecuteStatementReq>().map(drop),
    };
}

/// Inline Arrow batches of an `ARROW_BASED_SET` (`results::arrow_inline`, through
/// `ResultDecoder` as a page's Arrow batches are decoded): the `arrowSchema` IPC message of the
/// metadata, then the batches.
///
/// Input: `flags: u8` ([`FLAG_LZ4`]), `schema_len: u32`, the schema message, then batches,
/// each `row_count: u32, len: u32` and `len` bytes (an LZ4 frame when flagged).
pub fn arrow_inline(data: &[u8]) {
    let mut input = Input(data);
    let lz4 = input.u8() & FLAG_LZ4 != 0;
    let schema_len = input.u32() as usize;
    let schema_message = input.take(schema_len);
    let mut batches = Vec::new();
    while !input.0.is_empty() {
        let row_count = i64::from(input.u32());
        let len = input.u32() as usize;
        batches.push(ArrowBatchBytes {
            bytes: input.take(len).to_vec(),
            rows: row_count,
        });
    }
    let Ok(decoder) =
        ResultDecoder::new(Some(schema_message), None, lz4, ResultFormat::ArrowInline)
    else {
        return;
    };
    if let Ok(decoded) = decoder.decode(InlineRows::Arrow(batches)) {
        check_batches(&decoded, &decoder.schema());
    }
}

/// One CloudFetch file (`results::cloudfetch::decode`): LZ4 decompression as the decode
/// threads do it (bound, then decompress), then the Arrow IPC stream against the result's
/// schema, with the row count of the file's link.
///
/// Input: `flags: u8` ([`FLAG_LZ4`]), `schema_len: u32`, the result's schema message,
/// `row_count: u32`, then the file.
pub fn cloudfetch_file(data: &[u8]) {
    let mut input = Input(data);
    let lz4 = input.u8() & FLAG_LZ4 != 0;
    let schema_len = input.u32() as usize;
    let schema_message = input.take(schema_len);
    let row_count = i64::from(input.u32());
    let file = input.rest();
    let Ok(schema) = schema::arrow_schema_from_ipc(schema_message) else {
        return;
    };
    let data = if lz4 {
        if lz4::decompressed_bound(file, MAX_OUTPUT).is_err() {
            return;
        }
        let mut out = Vec::new();
        if lz4::decompress_frame(file, &mut out, MAX_OUTPUT).is_err() {
            return;
        }
        out
    } else {
        file.to_vec()
    };
    let chunk = Chunk {
        index: 0,
        start_row_offset: 0,
        row_count,
        bytes_num: file.len() as i64,
    };
    if let Ok(batches) = decode_stream(&chunk, &schema, Buffer::from_vec(data)) {
        let batches: Vec<RecordBatch> = batches.into();
        check_batches(&batches, &schema);
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(
            rows as i64, row_count,
            "the row count check let a mismatch through"
        );
    }
}

/// Column-based row sets to Arrow (`results::columnar::columns_to_batch`), with the Arrow
/// schema derived from a Hive table schema as for a `COLUMN_BASED_SET`.
///
/// Input: a `TTableSchema` then a `TRowSet`, each a Thrift struct in the binary protocol (as
/// inside `GetResultSetMetadata` and `FetchResults` replies).
pub fn columnar(data: &[u8]) {
    let mut input = data;
    let Some(mut protocol) = thrift_input(&mut input, data.len()) else {
        return;
    };
    let Ok(table) = TTableSchema::read_from_in_protocol(&mut protocol) else {
        return;
    };
    let Ok(row_set) = TRowSet::read_from_in_protocol(&mut protocol) else {
        return;
    };
    let Ok(schema) = schema::arrow_schema_from_table_schema(&table) else {
        return;
    };
    let Ok(InlineRows::Columns(columns)) = InlineRows::try_from(row_set) else {
        return;
    };
    if let Ok(Some(batch)) = columnar::columns_to_batch(&schema, columns) {
        assert!(batch.num_rows() > 0, "a batch without rows");
        check_batches(&[batch], &schema);
    }
}

/// The telemetry redactor (`telemetry::redact`) and the URL redaction of error messages.
///
/// Input: a message (invalid UTF-8 replaced). Checks: the result is within the length cap and
/// holds no word shaped like a personal access token or a JWT (but for the word a
/// truncation cut, which was not one whole).
pub fn redact(data: &[u8]) {
    let message = String::from_utf8_lossy(data);
    let _ = crate::redact_url(&message);
    let redacted = crate::telemetry::redact_message(&message);
    assert!(redacted.chars().count() <= crate::telemetry::MAX_MESSAGE_CHARS);
    let kept = redacted.strip_suffix("…[truncated]");
    let mut words: Vec<&str> = kept
        .unwrap_or(&redacted)
        .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        .collect();
    if kept.is_some() {
        // The word the cap cut is a prefix of a word, which may look like a token on its own.
        words.pop();
    }
    for word in words {
        let pat = word.strip_prefix("dapi").is_some_and(|rest| {
            rest.len() >= 16 && rest.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
        });
        let jwt = word.starts_with("eyJ") && word.len() > 20 && word.matches('.').count() >= 2;
        assert!(!pat && !jwt, "a token-shaped word survived redaction");
    }
}

/// OAuth answers (`auth::oauth`): the workspace's discovery document, a token endpoint's
/// token answer (then the token's header value and its refresh and expiry instants, as the
/// token cache computes them) and its refusal.
///
/// Input: one response body (JSON, or not).
pub fn oauth_response(data: &[u8]) {
    let url = "https://adb-1.2.azuredatabricks.net/oidc/.well-known/oauth-authorization-server";
    if let Ok(endpoints) = crate::auth::parse_discovery_document(data, url) {
        assert!(!endpoints.token_endpoint.is_empty());
    }
    if let Ok(answer) = crate::auth::read_token_answer(data, "https://h/oidc/v1/token") {
        let token = answer.access_token();
        let _ = token.bearer();
        if let Some(lifetime) = token.expires_in() {
            let now = tokio::time::Instant::now();
            let margin = crate::auth::DEFAULT_REFRESH_MARGIN.min(lifetime / 4);
            let _refresh_at = crate::time::after(now, lifetime - margin);
            let _expires_at = crate::time::after(now, lifetime);
        }
    }
    for status in [400, 401, 429, 503] {
        let status = http::StatusCode::from_u16(status).unwrap_or_default();
        let _ = crate::auth::read_refusal(status, data);
    }
}

/// A proxy's reply to `CONNECT` (`http::proxy::connector`): the reply heads up to the final
/// one, interim (1xx) heads skipped.
///
/// Input: the bytes the proxy sent.
pub fn proxy_connect_reply(data: &[u8]) {
    if let crate::http::ConnectReply::Final {
        status,
        reason,
        head_end,
    } = crate::http::scan_connect_reply(data)
    {
        assert!(head_end <= data.len());
        assert!((200..600).contains(&status), "status {status}");
        assert!(reason.len() <= 101, "reason of {} bytes", reason.len());
    }
}

/// Every array of `batches` has `schema`'s type and passes Arrow's full validation (offsets,
/// UTF-8, null counts): what later readers of the arrays rely on.
fn check_batches(batches: &[RecordBatch], schema: &arrow_schema::SchemaRef) {
    for batch in batches {
        assert_eq!(batch.num_columns(), schema.fields().len());
        for (column, field) in batch.columns().iter().zip(schema.fields()) {
            assert_eq!(column.data_type(), field.data_type());
            assert_eq!(column.len(), batch.num_rows());
            if let Err(e) = column.to_data().validate_full() {
                panic!("an invalid Arrow array was produced: {e}");
            }
        }
    }
}

/// A binary protocol over `input` with the limits the driver's replies are read with.
fn thrift_input<'a, 'b>(
    input: &'a mut &'b [u8],
    len: usize,
) -> Option<TBinaryInputProtocol<&'a mut &'b [u8]>> {
    let config = TConfiguration::builder()
        .max_message_size(Some(len))
        .max_frame_size(None)
        .max_string_size(Some(len))
        .max_container_size(Some(len))
        .max_recursion_depth(Some(64))
        .build()
        .ok()?;
    Some(TBinaryInputProtocol::with_config(input, true, config))
}

#[cfg(test)]
mod corpus_tests;
