//! CloudFetch in the mock warehouse: a large result split into files of a fixed row count, each
//! generated once (a whole Arrow IPC stream, LZ4-framed when granted) and held in memory while
//! its operation is open; signed, expiring links to the files, issued in pages; and the checks a
//! file GET must pass (signature, expiry, the link's own header, no workspace token) before the
//! file, or a damaged variant of it that a fault asked for, is served.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::OnceCell;

use super::fault::{FaultKind, Occasion};
use super::rowset;
use super::source::RowSource;
use super::state::{Id, Shared, WireFormat};
use super::{endpoint, CLOUDFETCH_HEADER};
use crate::error::{Error, Result};
use crate::thrift::handles::guid_to_string;
use crate::thrift::tcli::TSparkArrowResultLink;

/// The path prefix of CloudFetch files: `/cloudfetch/<statement id>/<file index>`.
pub(crate) const FILE_PATH_PREFIX: &str = "/cloudfetch/";

/// How the mock answers with CloudFetch; set on the builder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CloudFetchSettings {
    /// Results with more rows than this go out as links (when the client allows it).
    pub(crate) threshold_rows: u64,
    /// Rows per file (the last file of a result may hold fewer).
    pub(crate) rows_per_file: u64,
    /// Links per FetchResults (or direct results) page.
    pub(crate) links_per_page: usize,
    /// How long a link is valid after it is issued.
    pub(crate) link_lifetime: Duration,
    /// Keep each result's files after its operation closes (by SQL text and format).
    pub(crate) keep_files: bool,
}

/// Signs links, and holds the header value every file GET must carry. Random per mock.
#[derive(Debug, Clone)]
pub(crate) struct LinkSigner {
    /// SipHash with random keys: a keyed hash, unguessable without the keys.
    keys: RandomState,
    header_value: String,
}

impl LinkSigner {
    pub(crate) fn new() -> Self {
        LinkSigner {
            keys: RandomState::new(),
            header_value: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    /// The header value presigned requests must carry.
    pub(crate) fn header_value(&self) -> &str {
        &self.header_value
    }

    pub(crate) fn sign(&self, statement: &str, chunk: usize, exp_ms: i64, nonce: &str) -> String {
        format!(
            "{:016x}",
            self.keys.hash_one((statement, chunk, exp_ms, nonce))
        )
    }
}

/// A file served instead of the real one, on a fault's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variant {
    /// Damaged: not a valid LZ4 frame (or, uncompressed, not a valid Arrow IPC stream).
    Corrupt,
    /// Valid, with one row fewer than the link announces.
    OneRowShort,
}

/// The files of one CloudFetch result: generated on first need, then served from memory.
#[derive(Debug)]
pub(crate) struct ResultFiles {
    source: Arc<dyn RowSource>,
    format: WireFormat,
    rows_per_file: u64,
    batch_rows: usize,
    files: Mutex<HashMap<usize, Arc<OnceCell<Bytes>>>>,
}

impl ResultFiles {
    pub(crate) fn new(
        source: Arc<dyn RowSource>,
        format: WireFormat,
        rows_per_file: u64,
        batch_rows: usize,
    ) -> Self {
        ResultFiles {
            source,
            format,
            rows_per_file: rows_per_file.max(1),
            batch_rows,
            files: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn total_rows(&self) -> u64 {
        self.source.num_rows()
    }

    /// How many files the result has.
    pub(crate) fn chunks(&self) -> usize {
        usize::try_from(self.total_rows().div_ceil(self.rows_per_file)).unwrap_or(usize::MAX)
    }

    /// The first row and the row count of file `index`.
    fn rows_of(&self, index: usize) -> (u64, usize) {
        let start = (index as u64).saturating_mul(self.rows_per_file);
        let rows = self
            .rows_per_file
            .min(self.total_rows().saturating_sub(start));
        (start, rows as usize)
    }

    /// File `index` as served: generated (on the blocking pool) the first time it is asked for.
    pub(crate) async fn file(self: &Arc<Self>, index: usize) -> Result<Bytes> {
        let cell = self
            .files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(index)
            .or_default()
            .clone();
        let this = self.clone();
        cell.get_or_try_init(|| async move {
            tokio::task::spawn_blocking(move || this.encode(index, None))
                .await
                .map_err(|e| Error::decode(format!("generating a CloudFetch file failed: {e}")))?
        })
        .await
        .cloned()
    }

    /// A damaged variant of file `index`, generated afresh (never cached).
    pub(crate) async fn variant(self: &Arc<Self>, index: usize, variant: Variant) -> Result<Bytes> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.encode(index, Some(variant)))
            .await
            .map_err(|e| Error::decode(format!("generating a CloudFetch file failed: {e}")))?
    }

    fn encode(&self, index: usize, variant: Option<Variant>) -> Result<Bytes> {
        let (start, rows) = self.rows_of(index);
        let src = self.source.as_ref();
        let bytes = match variant {
            None => rowset::encode_file(src, start, rows, self.format, self.batch_rows)?,
            Some(Variant::OneRowShort) => rowset::encode_file(
                src,
                start,
                rows.saturating_sub(1),
                self.format,
                self.batch_rows,
            )?,
            Some(Variant::Corrupt) => {
                let plain = WireFormat {
                    lz4: false,
                    ..self.format
                };
                let stream = rowset::encode_file(src, start, rows, plain, self.batch_rows)?;
                corrupt(&stream, self.format.lz4)
            }
        };
        Ok(Bytes::from(bytes))
    }
}

/// `stream` (an Arrow IPC stream) damaged so that a reader must notice. LZ4: framed with a
/// content checksum, then bytes inside the first block overwritten (whatever the decoder makes
/// of them, the checksum no longer matches). Uncompressed: the flatbuffer metadata of the
/// schema message overwritten.
fn corrupt(stream: &[u8], lz4: bool) -> Vec<u8> {
    let mut out = if lz4 {
        use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
        use std::io::Write;
        let info = FrameInfo::new()
            .block_size(BlockSize::Max4MB)
            .block_mode(BlockMode::Independent)
            .content_checksum(true);
        let mut encoder = FrameEncoder::with_frame_info(info, Vec::new());
        // Writing into a Vec cannot fail.
        let _ = encoder.write_all(stream);
        encoder.finish().unwrap_or_default()
    } else {
        stream.to_vec()
    };
    // Frame header (7 bytes) and block size (4), or IPC continuation and length (8): skip them.
    let from = if lz4 { 16 } else { 8 };
    let to = out.len().min(from + 32);
    for b in out.iter_mut().take(to).skip(from) {
        *b = 0xFF;
    }
    out
}

/// Every file of a result, in order, generated now on the calling thread.
pub(crate) fn all_files(files: &ResultFiles) -> Result<Vec<Bytes>> {
    (0..files.chunks()).map(|k| files.encode(k, None)).collect()
}

/// Decodes one CloudFetch file the way the driver's pipeline does (LZ4 frame decompressed into
/// one buffer, Arrow IPC decoded over it without copying), on the calling thread.
pub(crate) fn decode_file(file: &Bytes, lz4: bool) -> Result<Vec<arrow_array::RecordBatch>> {
    let data = if lz4 {
        Bytes::from(crate::results::lz4::decompress_frame_to_vec(
            file,
            usize::MAX,
        )?)
    } else {
        file.clone()
    };
    let mut buffer = arrow_buffer::Buffer::from(data);
    let mut decoder = arrow_ipc::reader::StreamDecoder::new();
    let mut batches = Vec::new();
    let invalid = |e| Error::decode("the file is not a valid Arrow IPC stream").with_source(e);
    while !buffer.is_empty() {
        if let Some(batch) = decoder.decode(&mut buffer).map_err(invalid)? {
            batches.push(batch);
        }
    }
    decoder.finish().map_err(invalid)?;
    Ok(batches)
}

/// The page of file indexes that starts at row `start` of a result: `(first, count)`. Fails when
/// `start` is not where a file starts (or the end of the result, which gives an empty page).
pub(crate) fn page_at(
    files: &ResultFiles,
    start: u64,
    links_per_page: usize,
) -> Result<(usize, usize)> {
    let total = files.total_rows();
    if start >= total {
        return Ok((files.chunks(), 0));
    }
    if !start.is_multiple_of(files.rows_per_file) {
        return Err(Error::protocol(format!(
            "startRowOffset {start} is not the first row of a result file (files hold {} rows each)",
            files.rows_per_file
        )));
    }
    let first = usize::try_from(start / files.rows_per_file).unwrap_or(usize::MAX);
    let count = links_per_page
        .max(1)
        .min(files.chunks().saturating_sub(first));
    Ok((first, count))
}

/// The first row after a page of files `first .. first + count`.
pub(crate) fn page_end(files: &ResultFiles, first: usize, count: usize) -> u64 {
    ((first + count) as u64)
        .saturating_mul(files.rows_per_file)
        .min(files.total_rows())
}

/// Links to files `first .. first + count` of operation `op`, each with a fresh signature and
/// expiry (or already expired, when an [`FaultKind::ExpiredLink`] fault says so). Generates
/// the files not generated yet (their size goes into `bytesNum`).
pub(crate) async fn issue_links(
    shared: &Shared,
    op: &Id,
    files: &Arc<ResultFiles>,
    first: usize,
    count: usize,
) -> Result<Vec<TSparkArrowResultLink>> {
    let indexes: Vec<usize> = (first..first.saturating_add(count)).collect();
    let bodies =
        futures::future::try_join_all(indexes.iter().map(|&index| files.file(index))).await?;
    let statement = guid_to_string(op);
    let settings = &shared.config.cloudfetch;
    let lifetime_ms = i64::try_from(settings.link_lifetime.as_millis()).unwrap_or(i64::MAX);
    let now = now_ms();
    let mut st = shared.lock();
    let links = indexes
        .iter()
        .zip(bodies)
        .map(|(&index, body)| {
            let expired = st
                .faults
                .take(Occasion {
                    name: endpoint::CLOUDFETCH_FILE,
                    is_rpc: false,
                    chunk: Some(index),
                    link_issue: true,
                })
                .is_some();
            let exp = if expired {
                now - 1_000
            } else {
                now.saturating_add(lifetime_ms)
            };
            let nonce = uuid::Uuid::new_v4().simple().to_string();
            let sig = shared.config.signer.sign(&statement, index, exp, &nonce);
            let (start, rows) = files.rows_of(index);
            TSparkArrowResultLink {
                file_link: format!(
                    "{}{FILE_PATH_PREFIX}{statement}/{index}?exp={exp}&nonce={nonce}&sig={sig}",
                    shared.config.base_url
                ),
                expiry_time: exp,
                start_row_offset: start as i64,
                row_count: rows as i64,
                bytes_num: body.len() as i64,
                http_headers: Some(BTreeMap::from([(
                    CLOUDFETCH_HEADER.to_string(),
                    shared.config.signer.header_value.clone(),
                )])),
            }
        })
        .collect();
    drop(st);
    Ok(links)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `/cloudfetch/<statement>/<index>` split into its statement id and file index.
pub(crate) fn parse_file_path(path: &str) -> Option<(Id, usize)> {
    let rest = path.strip_prefix(FILE_PATH_PREFIX)?;
    let (statement, index) = rest.split_once('/')?;
    let id = *uuid::Uuid::parse_str(statement).ok()?.as_bytes();
    Some((id, index.parse().ok()?))
}

/// Why a file GET is refused: HTTP status and a short text, like a storage service's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub(crate) status: u16,
    pub(crate) message: &'static str,
}

fn refused(status: u16, message: &'static str) -> Refused {
    Refused { status, message }
}

/// The file a GET of `/cloudfetch/<op>/<index>?<query>` asks for, once its link checks out:
/// the link's own header present and right (else 400), the signature valid (else 403), not
/// expired (else 403), the operation open with that file (else 404). `variant` is what a fault
/// asked to serve instead.
pub(crate) async fn serve(
    shared: &Shared,
    op: Id,
    index: usize,
    query: Option<&str>,
    header: Option<&str>,
    variant: Option<Variant>,
) -> std::result::Result<Bytes, Refused> {
    if header != Some(shared.config.signer.header_value.as_str()) {
        return Err(refused(
            400,
            "MissingRequiredHeader: the link's httpHeaders were not sent",
        ));
    }
    let mut exp = None;
    let mut nonce = None;
    let mut sig = None;
    for pair in query.unwrap_or("").split('&') {
        match pair.split_once('=') {
            Some(("exp", v)) => exp = v.parse::<i64>().ok(),
            Some(("nonce", v)) => nonce = Some(v),
            Some(("sig", v)) => sig = Some(v),
            _ => {}
        }
    }
    let (Some(exp), Some(nonce), Some(sig)) = (exp, nonce, sig) else {
        return Err(refused(403, "AuthenticationFailed: the URL is not signed"));
    };
    let statement = guid_to_string(&op);
    if shared.config.signer.sign(&statement, index, exp, nonce) != sig {
        return Err(refused(
            403,
            "SignatureDoesNotMatch: the URL's signature is not valid",
        ));
    }
    if now_ms() > exp {
        return Err(refused(403, "AccessDenied: Request has expired"));
    }
    let files = shared
        .lock()
        .operations
        .get(&op)
        .and_then(|o| o.cloud_files.clone())
        .filter(|f| index < f.chunks());
    let Some(files) = files else {
        return Err(refused(404, "NoSuchKey: the result file does not exist"));
    };
    let body = match variant {
        None => files.file(index).await,
        Some(v) => files.variant(index, v).await,
    };
    body.map_err(|e| {
        tracing::debug!(error = %e, "mock warehouse: generating a CloudFetch file failed");
        refused(500, "InternalError: the result file could not be generated")
    })
}

/// The variant of the file a fault asks for, if any.
pub(crate) fn variant_of(kind: &FaultKind) -> Option<Variant> {
    match kind {
        FaultKind::CorruptFile => Some(Variant::Corrupt),
        FaultKind::WrongRowCount => Some(Variant::OneRowShort),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::source::RangeSource;

    fn format(lz4: bool) -> WireFormat {
        WireFormat {
            arrow: true,
            lz4,
            arrow_timestamps: true,
            arrow_decimals: true,
            vanilla: false,
            cloudfetch: true,
        }
    }

    fn files(rows: i64, per_file: u64) -> Arc<ResultFiles> {
        Arc::new(ResultFiles::new(
            Arc::new(RangeSource::new(0, rows)),
            format(true),
            per_file,
            100,
        ))
    }

    fn read(bytes: &[u8], lz4: bool) -> Result<Vec<arrow_array::RecordBatch>> {
        let plain = if lz4 {
            crate::results::lz4::decompress_frame_to_vec(bytes, usize::MAX)?
        } else {
            bytes.to_vec()
        };
        let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(plain), None)
            .map_err(|e| Error::decode(e.to_string()))?;
        reader
            .map(|b| b.map_err(|e| Error::decode(e.to_string())))
            .collect()
    }

    #[test]
    fn a_result_splits_into_files_of_the_set_row_count_with_a_partial_last_one() {
        let f = files(1_050, 100);
        assert_eq!(f.chunks(), 11);
        assert_eq!(f.rows_of(0), (0, 100));
        assert_eq!(f.rows_of(10), (1_000, 50));
        assert_eq!(page_at(&f, 0, 4).unwrap(), (0, 4));
        assert_eq!(page_at(&f, 800, 4).unwrap(), (8, 3));
        assert_eq!(page_end(&f, 8, 3), 1_050);
        assert_eq!(page_at(&f, 1_050, 4).unwrap(), (11, 0));
        assert!(page_at(&f, 150, 4).is_err(), "not the start of a file");
    }

    #[tokio::test]
    async fn a_file_is_a_whole_ipc_stream_generated_once() {
        let f = files(1_050, 100);
        let a = f.file(10).await.unwrap();
        let b = f.file(10).await.unwrap();
        assert_eq!(a.as_ptr(), b.as_ptr(), "served from the cache");
        let batches = read(&a, true).unwrap();
        let ids: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<arrow_array::Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(ids, (1_000..1_050).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn variants_are_short_by_one_row_or_unreadable() {
        let f = files(1_000, 100);
        let short = f.variant(3, Variant::OneRowShort).await.unwrap();
        let rows: usize = read(&short, true)
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert_eq!(rows, 99);
        let bad = f.variant(3, Variant::Corrupt).await.unwrap();
        assert!(read(&bad, true).is_err());
        let plain = Arc::new(ResultFiles::new(
            Arc::new(RangeSource::new(0, 1_000)),
            format(false),
            100,
            100,
        ));
        assert!(read(&plain.file(3).await.unwrap(), false).is_ok());
        let bad = plain.variant(3, Variant::Corrupt).await.unwrap();
        assert!(read(&bad, false).is_err());
    }

    #[test]
    fn file_paths_name_the_statement_and_the_file() {
        let id = *uuid::Uuid::new_v4().as_bytes();
        let path = format!("{FILE_PATH_PREFIX}{}/12", guid_to_string(&id));
        assert_eq!(parse_file_path(&path), Some((id, 12)));
        assert_eq!(parse_file_path("/cloudfetch/nope/1"), None);
        assert_eq!(parse_file_path(&format!("{path}x")), None);
    }

    #[test]
    fn signatures_bind_statement_file_expiry_and_nonce() {
        let s = LinkSigner::new();
        let sig = s.sign("op", 1, 1_000, "n");
        assert_eq!(sig, s.sign("op", 1, 1_000, "n"));
        assert_ne!(sig, s.sign("op", 2, 1_000, "n"));
        assert_ne!(sig, s.sign("op", 1, 1_001, "n"));
        assert_ne!(sig, s.sign("op", 1, 1_000, "m"));
        assert_ne!(sig, LinkSigner::new().sign("op", 1, 1_000, "n"));
    }
}
