//! Result decoding: what a result's metadata says about its format and schema, and the row sets
//! of `FetchResults` (inline Arrow batches, LZ4 frames, column-based columns) turned into Arrow
//! `RecordBatch`es; plus the encode side the mock warehouse uses.
//!
//! [`ResultDecoder`] is the entry point: build it once per result from
//! `TGetResultSetMetadataResp`, then [`decode`](ResultDecoder::decode) every `TRowSet` of the
//! result (from direct results and from each `FetchResults`) in order.
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
pub(crate) mod lz4;
pub(crate) mod reader;
#[cfg(test)]
mod round_trip_tests;
pub(crate) mod schema;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use crate::error::{Error, Result};
use crate::thrift::tcli::{TGetResultSetMetadataResp, TRowSet, TSparkRowSetType, TTableSchema};

use self::arrow_inline::ArrowBatchDecoder;

/// How the server delivers a result's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResultFormat {
    /// `ARROW_BASED_SET`: Arrow IPC record batches inline in each row set.
    ArrowInline,
    /// `COLUMN_BASED_SET` (and servers that name no format, like vanilla HiveServer2):
    /// one `TColumn` per result column.
    Columnar,
    /// `URL_BASED_SET`: CloudFetch links to Arrow IPC stream files.
    CloudFetch,
}

impl ResultFormat {
    /// The format named by `resultFormat`; `None` (not sent) means column-based.
    pub(crate) fn from_thrift(format: Option<TSparkRowSetType>) -> Result<Self> {
        match format {
            None | Some(TSparkRowSetType::COLUMN_BASED_SET) => Ok(ResultFormat::Columnar),
            Some(TSparkRowSetType::ARROW_BASED_SET) => Ok(ResultFormat::ArrowInline),
            Some(TSparkRowSetType::URL_BASED_SET) => Ok(ResultFormat::CloudFetch),
            Some(TSparkRowSetType::ROW_BASED_SET) => Err(Error::decode(
                "the server chose row-based results (ROW_BASED_SET), which are not supported",
            )),
            Some(other) => Err(Error::decode(format!(
                "the server chose an unknown result format {}",
                other.0
            ))),
        }
    }
}

/// Decodes the row sets of one result into `RecordBatch`es of one schema.
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
    /// A decoder for the result `metadata` describes.
    pub(crate) fn from_metadata(metadata: &TGetResultSetMetadataResp) -> Result<Self> {
        Self::new(
            metadata.arrow_schema.as_deref(),
            metadata.schema.as_ref(),
            metadata.lz4_compressed.unwrap_or(false),
            metadata.result_format,
        )
    }

    /// A decoder from the pieces of the metadata: the `arrowSchema` IPC message, the Hive table
    /// schema, whether Arrow data is LZ4-framed, and the result format. At least one of the two
    /// schemas is needed; an Arrow result without an Arrow schema is read with the table
    /// schema's Arrow form.
    pub(crate) fn new(
        arrow_schema: Option<&[u8]>,
        table_schema: Option<&TTableSchema>,
        lz4_compressed: bool,
        format: Option<TSparkRowSetType>,
    ) -> Result<Self> {
        let format = ResultFormat::from_thrift(format)?;
        let arrow_schema = match arrow_schema.filter(|b| !b.is_empty()) {
            Some(bytes) => Some(schema::arrow_schema_from_ipc(bytes)?),
            None => None,
        };
        let column_schema = match table_schema {
            Some(table) => Some(schema::arrow_schema_from_table_schema(table)?),
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

    /// Decodes one row set into batches, in row order; a row set without rows gives none.
    ///
    /// The row set is taken by value so that inline Arrow bytes and column values move into
    /// the Arrow arrays without a copy. What is decoded follows what the row set holds (Arrow
    /// batches or columns), whatever format the metadata named. CloudFetch links are not
    /// decoded here: take them out of `result_links` first and give them to the CloudFetch
    /// pipeline; a row set that still has links is an error.
    pub(crate) fn decode(&self, row_set: TRowSet) -> Result<Vec<RecordBatch>> {
        if row_set.result_links.as_ref().is_some_and(|l| !l.is_empty()) {
            return Err(Error::decode(
                "CloudFetch links are handled by the CloudFetch pipeline, not the inline decoder",
            ));
        }
        if let Some(batches) = row_set.arrow_batches.filter(|b| !b.is_empty()) {
            return self.arrow.decode_batches(batches);
        }
        if let Some(columns) = row_set.columns.filter(|c| !c.is_empty()) {
            return Ok(columnar::columns_to_batch(&self.column_schema, columns)?
                .into_iter()
                .collect());
        }
        if row_set
            .binary_columns
            .as_ref()
            .is_some_and(|b| !b.is_empty())
        {
            return Err(Error::decode(
                "the row set uses binaryColumns, which are not supported",
            ));
        }
        if !row_set.rows.is_empty() {
            return Err(Error::decode(
                "the row set is row-based (TRow), which is not supported",
            ));
        }
        Ok(Vec::new())
    }
}
