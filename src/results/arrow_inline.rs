//! Arrow IPC messages to `RecordBatch`es against a known schema: the inline `arrowBatches` of an
//! `ARROW_BASED_SET` (bare record-batch messages, one LZ4 frame each when compressed) and whole
//! IPC streams (CloudFetch files).
//!
//! Decoding is zero-copy: the batch bytes become one `arrow_buffer::Buffer` and the arrays point
//! into it. The schema is parsed once, when the decoder is built, never per batch.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use arrow_array::{ArrayRef, RecordBatch};
use arrow_buffer::Buffer;
use arrow_ipc::MessageHeader;
use arrow_schema::SchemaRef;

use crate::error::{Error, Result};
use crate::results::inline_rows::ArrowBatchBytes;
use crate::results::lz4;

const CONTINUATION_MARKER: u32 = 0xFFFF_FFFF;

/// What is being decoded, for error messages.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// The n-th (0-based) Arrow batch of a page.
    Batch(usize),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Batch(index) => write!(f, "Arrow batch {index}"),
        }
    }
}

/// Decodes Arrow IPC data of one result against the result's schema.
#[derive(Debug, Clone)]
pub(crate) struct ArrowBatchDecoder {
    schema: SchemaRef,
    lz4_compressed: bool,
}

impl ArrowBatchDecoder {
    /// A decoder for data of `schema`; `lz4_compressed` says each batch (or file) is one LZ4 frame.
    pub(crate) fn new(schema: SchemaRef, lz4_compressed: bool) -> Self {
        ArrowBatchDecoder {
            schema,
            lz4_compressed,
        }
    }

    /// Decodes the Arrow batches of a page in order, checking each one's row count against the
    /// count the server announced. Batches without rows are left out.
    pub(crate) fn decode_batches(&self, batches: Vec<ArrowBatchBytes>) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::with_capacity(batches.len());
        for (index, batch) in batches.into_iter().enumerate() {
            let data = if self.lz4_compressed {
                Buffer::from_vec(
                    lz4::decompress_frame_to_vec(&batch.bytes, lz4::MAX_DECOMPRESSED).map_err(
                        |e| Error::decode(format!("Arrow batch {index}: {}", e.message())),
                    )?,
                )
            } else {
                Buffer::from_vec(batch.bytes)
            };
            self.decode_messages(data, batch.rows, Source::Batch(index), &mut out)?;
        }
        Ok(out)
    }

    /// Decodes every IPC message in `data` into `out` and checks the row total. `what` names
    /// the data in error messages.
    fn decode_messages(
        &self,
        data: Buffer,
        expected_rows: i64,
        what: Source,
        out: &mut Vec<RecordBatch>,
    ) -> Result<()> {
        let first = out.len();
        // The arrow crates validate what they read, but a panic on some corrupt input the
        // validation misses must not take the caller down: network data becomes an error.
        let decoded = catch_unwind(AssertUnwindSafe(|| self.decode_messages_inner(&data, out)))
            .unwrap_or_else(|panic| {
                let detail = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("no detail");
                Err(Error::decode(format!(
                    "the Arrow decoder failed on corrupt data ({detail})"
                )))
            });
        let rows = match decoded {
            Ok(rows) => rows,
            Err(e) => {
                out.truncate(first);
                return Err(Error::decode(format!("{what}: {}", e.message())));
            }
        };
        if rows as i64 != expected_rows {
            out.truncate(first);
            return Err(Error::decode(format!(
                "{what} was announced with {expected_rows} rows but holds {rows}"
            )));
        }
        out.retain(|b| b.num_rows() > 0);
        Ok(())
    }

    /// Walks the encapsulated IPC messages in `data`; returns the number of rows decoded.
    fn decode_messages_inner(&self, data: &Buffer, out: &mut Vec<RecordBatch>) -> Result<usize> {
        let dictionaries: HashMap<i64, ArrayRef> = HashMap::new();
        let mut rows = 0usize;
        let mut at = 0usize;
        while let Some((message, body)) = next_message(data, &mut at)? {
            let body_len = body.len();
            let body = data.slice_with_length(body.start, body_len);
            match message.header_type() {
                MessageHeader::RecordBatch => {
                    let header = message.header_as_record_batch().ok_or_else(|| {
                        Error::decode("a record batch message has no header".to_string())
                    })?;
                    check_buffers_in_body(&header, body_len)?;
                    check_offset_buffers(&header, &self.schema)?;
                    let batch = arrow_ipc::reader::read_record_batch(
                        &body,
                        header,
                        self.schema.clone(),
                        &dictionaries,
                        None,
                        &message.version(),
                    )?;
                    rows += batch.num_rows();
                    out.push(batch);
                }
                MessageHeader::Schema => {
                    let header = message.header_as_schema().ok_or_else(|| {
                        Error::decode("a schema message has no header".to_string())
                    })?;
                    let schema = arrow_ipc::convert::try_fb_to_schema(header)?;
                    self.check_same_columns(&schema)?;
                }
                MessageHeader::DictionaryBatch => {
                    return Err(Error::decode(
                        "dictionary-encoded Arrow results are not supported".to_string(),
                    ))
                }
                MessageHeader::NONE => {}
                other => {
                    return Err(Error::decode(format!(
                        "unexpected IPC message type {other:?} in a result"
                    )))
                }
            }
        }
        Ok(rows)
    }

    fn check_same_columns(&self, schema: &arrow_schema::Schema) -> Result<()> {
        let ours = self.schema.fields();
        let theirs = schema.fields();
        let same = ours.len() == theirs.len()
            && ours
                .iter()
                .zip(theirs.iter())
                .all(|(a, b)| a.data_type() == b.data_type());
        if same {
            Ok(())
        } else {
            Err(Error::decode(format!(
                "the data's schema ({} columns) differs from the result's ({} columns)",
                theirs.len(),
                ours.len()
            )))
        }
    }
}

/// Checks that every buffer a record batch message describes lies inside its body: arrow-ipc
/// slices the body with these numbers as they are and panics when they point outside it.
fn check_buffers_in_body(header: &arrow_ipc::RecordBatch<'_>, body_len: usize) -> Result<()> {
    let buffers = header
        .buffers()
        .ok_or_else(|| Error::decode("a record batch message lists no buffers".to_string()))?;
    for (i, buffer) in buffers.iter().enumerate() {
        let inside = u64::try_from(buffer.offset())
            .ok()
            .zip(u64::try_from(buffer.length()).ok())
            .and_then(|(offset, length)| offset.checked_add(length))
            .is_some_and(|end| end <= body_len as u64);
        if !inside {
            return Err(Error::decode(format!(
                "a record batch message is corrupt: buffer {i} (offset {}, length {}) lies outside \
                 its {body_len}-byte body",
                buffer.offset(),
                buffer.length()
            )));
        }
    }
    Ok(())
}

/// Checks the framing of the Arrow IPC stream `data` (a CloudFetch file) before arrow-ipc's
/// stream decoder reads it, as [`ArrowBatchDecoder`] checks inline batches: every message
/// complete, every record batch buffer inside its body, and offset buffers (per the stream's
/// schema message) of whole offsets. arrow-ipc panics on the buffers these checks refuse.
pub(crate) fn check_ipc_stream(data: &[u8]) -> Result<()> {
    let mut schema: Option<arrow_schema::Schema> = None;
    let mut at = 0usize;
    while let Some((message, body)) = next_message(data, &mut at)? {
        let body_len = body.len();
        if let Some(header) = message.header_as_schema() {
            schema = Some(arrow_ipc::convert::try_fb_to_schema(header)?);
        } else if let Some(header) = message.header_as_record_batch() {
            check_buffers_in_body(&header, body_len)?;
            if let Some(schema) = &schema {
                check_offset_buffers(&header, schema)?;
            }
        }
    }
    Ok(())
}

/// Checks that the offset buffers of a record batch message (of `schema`) hold whole offsets:
/// arrow-data reads an offset buffer as a slice of `i32` (or `i64`) and panics when its length
/// is not a multiple of that size. Buffers are matched to columns in the order arrow-ipc reads
/// them; the walk stops at the first type whose buffers it does not model (views), leaving the
/// columns after it to arrow's own checks. Union columns are refused outright.
fn check_offset_buffers(
    header: &arrow_ipc::RecordBatch<'_>,
    schema: &arrow_schema::Schema,
) -> Result<()> {
    if schema
        .fields()
        .iter()
        .any(|f| contains_union(f.data_type()))
    {
        // arrow-ipc slices a union's type id and offset buffers without checking them.
        return Err(Error::decode(
            "the data has a union column, which results never have".to_string(),
        ));
    }
    let Some(buffers) = header.buffers() else {
        return Ok(());
    };
    let lengths: Vec<i64> = buffers.iter().map(|b| b.length()).collect();
    let mut next = 0usize;
    for field in schema.fields() {
        if !offset_buffers_of(field.data_type(), &lengths, &mut next)? {
            break;
        }
    }
    Ok(())
}

/// Walks the buffers (given by their `lengths`) of one column of type `data_type` from
/// `*next`, checking its offset buffers; `false` when the type is one the walk does not model (see
/// [`check_offset_buffers`]).
fn offset_buffers_of(
    data_type: &arrow_schema::DataType,
    lengths: &[i64],
    next: &mut usize,
) -> Result<bool> {
    use arrow_schema::DataType::*;

    let offsets = |width: i64, next: &mut usize| -> Result<()> {
        if let Some(&length) = lengths.get(*next) {
            if length % width != 0 {
                return Err(Error::decode(format!(
                    "a record batch message is corrupt: buffer {} holds offsets of {width} bytes \
                     but is {} bytes long",
                    *next, length
                )));
            }
        }
        *next += 1;
        Ok(())
    };
    match data_type {
        Utf8 | Binary => {
            *next += 1; // validity
            offsets(4, next)?;
            *next += 1; // values
        }
        LargeUtf8 | LargeBinary => {
            *next += 1;
            offsets(8, next)?;
            *next += 1;
        }
        List(child) | Map(child, _) => {
            *next += 1;
            offsets(4, next)?;
            return offset_buffers_of(child.data_type(), lengths, next);
        }
        LargeList(child) => {
            *next += 1;
            offsets(8, next)?;
            return offset_buffers_of(child.data_type(), lengths, next);
        }
        ListView(child) => {
            *next += 1;
            offsets(4, next)?;
            offsets(4, next)?; // sizes
            return offset_buffers_of(child.data_type(), lengths, next);
        }
        LargeListView(child) => {
            *next += 1;
            offsets(8, next)?;
            offsets(8, next)?;
            return offset_buffers_of(child.data_type(), lengths, next);
        }
        FixedSizeList(child, _) => {
            *next += 1;
            return offset_buffers_of(child.data_type(), lengths, next);
        }
        Struct(children) => {
            *next += 1;
            for child in children {
                if !offset_buffers_of(child.data_type(), lengths, next)? {
                    return Ok(false);
                }
            }
        }
        RunEndEncoded(run_ends, values) => {
            return Ok(offset_buffers_of(run_ends.data_type(), lengths, next)?
                && offset_buffers_of(values.data_type(), lengths, next)?);
        }
        Null => {}
        BinaryView | Utf8View | Union(..) => return Ok(false),
        _ => *next += 2, // validity, values
    }
    Ok(true)
}

/// Whether `data_type` is or holds a union.
fn contains_union(data_type: &arrow_schema::DataType) -> bool {
    use arrow_schema::DataType::*;

    match data_type {
        Union(..) => true,
        List(child)
        | LargeList(child)
        | ListView(child)
        | LargeListView(child)
        | FixedSizeList(child, _)
        | Map(child, _) => contains_union(child.data_type()),
        Struct(children) => children.iter().any(|c| contains_union(c.data_type())),
        RunEndEncoded(run_ends, values) => {
            contains_union(run_ends.data_type()) || contains_union(values.data_type())
        }
        Dictionary(_, values) => contains_union(values),
        _ => false,
    }
}

/// Reads an encapsulated message's prefix at `*at` (optional continuation marker, then a
/// little-endian length) and returns the range of its flatbuffer metadata, or `None` at the end
/// of the data or at an end-of-stream marker.
/// The next encapsulated IPC message of `data` from `at`: its header and the range of its
/// body, which must lie within `data`; `at` moves past the body. `None` at the end.
fn next_message<'a>(
    data: &'a [u8],
    at: &mut usize,
) -> Result<Option<(arrow_ipc::Message<'a>, std::ops::Range<usize>)>> {
    let Some(meta) = next_message_metadata(data, at)? else {
        return Ok(None);
    };
    let message = arrow_ipc::root_as_message(&data[meta.clone()])
        .map_err(|e| Error::decode(format!("an IPC message header is corrupt: {e}")))?;
    let body_len = usize::try_from(message.bodyLength())
        .map_err(|_| Error::decode("an IPC message declares a negative body length".to_string()))?;
    if data.len() - meta.end < body_len {
        return Err(Error::decode(format!(
            "an IPC message is truncated: its body needs {body_len} bytes, {} remain",
            data.len() - meta.end
        )));
    }
    *at = meta.end + body_len;
    Ok(Some((message, meta.end..meta.end + body_len)))
}

fn next_message_metadata(data: &[u8], at: &mut usize) -> Result<Option<std::ops::Range<usize>>> {
    let read_u32 = |pos: usize| -> Result<u32> {
        match data.get(pos..pos + 4) {
            Some(b) => Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            None => Err(Error::decode(format!(
                "an IPC message prefix is truncated at offset {pos} of {} bytes",
                data.len()
            ))),
        }
    };
    if *at >= data.len() {
        return Ok(None);
    }
    let mut pos = *at;
    let mut len = read_u32(pos)?;
    pos += 4;
    if len == CONTINUATION_MARKER {
        len = read_u32(pos)?;
        pos += 4;
    }
    if len == 0 {
        // End-of-stream marker; anything after it is not part of the stream.
        *at = data.len();
        return Ok(None);
    }
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= i32::MAX as usize)
        .ok_or_else(|| Error::decode("an IPC message declares a negative length".to_string()))?;
    if data.len() - pos < len {
        return Err(Error::decode(format!(
            "an IPC message is truncated: its header needs {len} bytes, {} remain",
            data.len() - pos
        )));
    }
    *at = pos + len;
    Ok(Some(pos..pos + len))
}
