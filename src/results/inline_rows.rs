//! One page of inline rows as the server sent it, before decoding: the input of
//! [`ResultDecoder::decode`](super::ResultDecoder::decode), in the driver's own types. A backend
//! converts its wire structs into these (the Thrift ones in [`super::from_thrift`]); the values
//! move, nothing is copied.

/// The inline rows of one result page.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum InlineRows {
    /// Arrow IPC record-batch messages, in row order.
    Arrow(Vec<ArrowBatchBytes>),
    /// One column of values per result column (all of one length).
    Columns(Vec<Column>),
    /// No rows.
    Empty,
}

impl InlineRows {
    /// About how many bytes the rows take encoded: the Arrow messages, or 8 per column value.
    pub(crate) fn encoded_bytes(&self) -> usize {
        match self {
            InlineRows::Arrow(batches) => batches.iter().map(|b| b.bytes.len()).sum(),
            InlineRows::Columns(columns) => columns
                .iter()
                .map(|c| c.len().saturating_mul(8))
                .fold(0, usize::saturating_add),
            InlineRows::Empty => 0,
        }
    }
}

/// One Arrow IPC record-batch message (one LZ4 frame when the result is compressed) and the
/// number of rows the server says it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArrowBatchBytes {
    /// The message bytes.
    pub bytes: Vec<u8>,
    /// The rows the server announced for it; checked against what the message holds.
    pub rows: i64,
}

/// One column of a column-based page: its values and its NULL bitmap.
///
/// NULL bitmap: bit `i % 8` (least significant first) of byte `i / 8` set means row `i` is
/// NULL; an empty bitmap means no NULLs, and a bitmap shorter than the column leaves the rows
/// it does not cover non-NULL. The value of a NULL row is a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Column {
    /// The values, one per row.
    pub values: ColumnValues,
    /// The NULL bitmap.
    pub nulls: Vec<u8>,
}

impl Column {
    /// How many values (rows) the column holds.
    pub(crate) fn len(&self) -> usize {
        match &self.values {
            ColumnValues::Bool(v) => v.len(),
            ColumnValues::Int8(v) => v.len(),
            ColumnValues::Int16(v) => v.len(),
            ColumnValues::Int32(v) => v.len(),
            ColumnValues::Int64(v) => v.len(),
            ColumnValues::Float64(v) => v.len(),
            ColumnValues::Text(v) => v.len(),
            ColumnValues::Binary(v) => v.len(),
        }
    }
}

/// The values of one column, by the physical type the server sent them as. Decimals, dates,
/// timestamps and complex types arrive as text and are parsed against the result schema.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ColumnValues {
    /// Booleans.
    Bool(Vec<bool>),
    /// 8-bit integers.
    Int8(Vec<i8>),
    /// 16-bit integers.
    Int16(Vec<i16>),
    /// 32-bit integers.
    Int32(Vec<i32>),
    /// 64-bit integers.
    Int64(Vec<i64>),
    /// Doubles (FLOAT columns arrive as doubles too).
    Float64(Vec<f64>),
    /// Text.
    Text(Vec<String>),
    /// Bytes.
    Binary(Vec<Vec<u8>>),
}

impl ColumnValues {
    /// What the values are, for error messages: "64-bit integers".
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            ColumnValues::Bool(_) => "booleans",
            ColumnValues::Int8(_) => "8-bit integers",
            ColumnValues::Int16(_) => "16-bit integers",
            ColumnValues::Int32(_) => "32-bit integers",
            ColumnValues::Int64(_) => "64-bit integers",
            ColumnValues::Float64(_) => "doubles",
            ColumnValues::Text(_) => "text",
            ColumnValues::Binary(_) => "binary values",
        }
    }
}
