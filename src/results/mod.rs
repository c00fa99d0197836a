//! Result decoding: what a result's metadata says about its format and schema, and the row sets
//! of `FetchResults` (inline Arrow batches, LZ4 frames, column-based columns) turned into Arrow
//! `RecordBatch`es; plus the encode side the mock warehouse uses.
//!
//! [`ResultDecoder`] is the entry point: build it once per result from the result's metadata,
//! then [`decode`](ResultDecoder::decode) every page of inline rows ([`inline_rows::InlineRows`]) of
//! the result in order. [`from_thrift`] builds both from the Thrift backend's structs
//! (`TGetResultSetMetadataResp`, `TRowSet`); nothing else in this module takes Thrift types but
//! the Hive type table of [`schema`] and the mock's encoder.
//!
//! [`reader::ResultReader`] reads one result's decoded pages in order (row offsets checked,
//! the next page prefetched, empty pages bounded) and hands it to the [`cloudfetch`] pipeline
//! when links arrive; the pipeline and the reader take the driver's own page and link types,
//! so that any protocol can feed them.

pub(crate) mod arrow_inline;
pub(crate) mod cloudfetch;
pub(crate) mod columnar;
pub(crate) mod decode_threads;
pub(crate) mod empty_pages;
#[cfg(any(test, feature = "mock"))]
pub(crate) mod encode;
pub(crate) mod from_thrift;
pub(crate) mod inline_rows;
pub(crate) mod lz4;
pub(crate) mod reader;
#[cfg(test)]
mod round_trip_tests;
pub(crate) mod schema;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use crate::error::{Error, Result};

use self::arrow_inline::ArrowBatchDecoder;
use self::inline_rows::InlineRows;

/// How the server delivers a result's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResultFormat {
    /// `ARROW_BASED_SET`: Arrow IPC record batches inline in each row set.
    ArrowInline,
    /// `COLUMN_BASED_SET` (and servers that name no format, like vanilla HiveServer2):
    /// one [`inline_rows::Column`] of values per result column.
    Columnar,
    /// `URL_BASED_SET`: CloudFetch links to Arrow IPC stream files.
    CloudFetch,
}

/// Decodes the pages of inline rows of one result into `RecordBatch`es of one schema.
#[derive(Debug, Clone)]
pub(crate) struct ResultDecoder {
    format: ResultFormat,
    lz4_compressed: bool,
    /// The schema users see: the Arrow schema for Arrow and CloudFetch results (the table
    /// schema's Arrow form when the server sent none), the table schema's Arrow form otherwise.
    schema: SchemaRef,
    /// Decodes Arrow IPC data (inline batches and CloudFetch files) against `schema`.
    arrow: ArrowBatchDecoder,
    /// The Arrow form of the table schema, for column-based row sets.
    column_schema: SchemaRef,
}

impl ResultDecoder {
    /// A decoder from the pieces of a result's metadata: the Arrow schema as an IPC message,
    /// the Arrow form of the table schema (its columns as the server types them), whether Arrow
    /// data is LZ4-framed, and the format. At least one of the two schemas is needed; an Arrow
    /// result without an Arrow schema is read with the table schema.
    pub(crate) fn new(
        arrow_schema: Option<&[u8]>,
        column_schema: Option<SchemaRef>,
        lz4_compressed: bool,
        format: ResultFormat,
    ) -> Result<Self> {
        let arrow_schema = match arrow_schema.filter(|b| !b.is_empty()) {
            Some(bytes) => Some(schema::arrow_schema_from_ipc(bytes)?),
            None => None,
        };
        let (schema, column_schema) = match (format, arrow_schema, column_schema) {
            (ResultFormat::Columnar, _, Some(columns)) => (columns.clone(), columns),
            (ResultFormat::Columnar, Some(arrow), None) => (arrow.clone(), arrow),
            (_, Some(arrow), Some(columns)) => (arrow, columns),
            (_, Some(arrow), None) => (arrow.clone(), arrow),
            (_, None, Some(columns)) => {
                tracing::debug!(
                    "the server sent no Arrow schema for an Arrow result; using the table schema"
                );
                (columns.clone(), columns)
            }
            (_, None, None) => {
                return Err(Error::decode(
                    "the result metadata has neither a table schema nor an Arrow schema",
                ))
            }
        };
        Ok(ResultDecoder {
            format,
            lz4_compressed,
            arrow: ArrowBatchDecoder::new(schema.clone(), lz4_compressed),
            schema,
            column_schema,
        })
    }

    /// The schema of every batch this decoder returns.
    pub(crate) fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// How the server delivers this result's rows.
    pub(crate) fn format(&self) -> ResultFormat {
        self.format
    }

    /// Whether Arrow data (inline batches, CloudFetch files) is LZ4-framed.
    pub(crate) fn lz4_compressed(&self) -> bool {
        self.lz4_compressed
    }

    /// Decodes one page of inline rows into batches, in row order; a page without rows gives
    /// none.
    ///
    /// The rows are taken by value so that Arrow bytes and column values move into the Arrow
    /// arrays without a copy. What is decoded follows what the page holds (Arrow batches or
    /// columns), whatever format the metadata named.
    pub(crate) fn decode(&self, rows: InlineRows) -> Result<Vec<RecordBatch>> {
        match rows {
            InlineRows::Arrow(batches) => self.arrow.decode_batches(batches),
            InlineRows::Columns(columns) => {
                Ok(columnar::columns_to_batch(&self.column_schema, columns)?
                    .into_iter()
                    .collect())
            }
            InlineRows::Empty => Ok(Vec::new()),
        }
    }
}
