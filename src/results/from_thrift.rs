//! The Thrift backend's side of result reading: a result's metadata, its row sets and its
//! CloudFetch links, turned into the driver's own types ([`ResultDecoder`], [`InlineRows`],
//! [`ResultLink`]). Everything after this point (decoding, paging, CloudFetch) takes those,
//! whatever protocol delivered the result.

use crate::error::{Error, Result};
use crate::thrift::tcli::{
    TColumn, TGetResultSetMetadataResp, TRowSet, TSparkArrowResultLink, TSparkRowSetType,
};

use super::cloudfetch::ResultLink;
use super::inline_rows::{ArrowBatchBytes, Column, ColumnValues, InlineRows};
use super::{schema, ResultDecoder, ResultFormat};

/// The format `resultFormat` names; `None` (not sent, as by plain HiveServer2) means
/// column-based.
pub(crate) fn result_format(format: Option<TSparkRowSetType>) -> Result<ResultFormat> {
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

/// The decoder for the result `metadata` (GetResultSetMetadata, or the direct results' copy)
/// describes: its format, its Arrow schema and table schema, and whether Arrow data is
/// LZ4-framed (`lz4Compressed`, false when not sent).
pub(crate) fn decoder(metadata: &TGetResultSetMetadataResp) -> Result<ResultDecoder> {
    // The format first: an unsupported format is the error to report, whatever the schemas.
    let format = result_format(metadata.result_format)?;
    let column_schema = match &metadata.schema {
        Some(table) => Some(schema::arrow_schema_from_table_schema(table)?),
        None => None,
    };
    ResultDecoder::new(
        metadata.arrow_schema.as_deref(),
        column_schema,
        metadata.lz4_compressed.unwrap_or(false),
        format,
    )
}

impl TryFrom<TRowSet> for InlineRows {
    type Error = Error;

    /// The inline rows of a row set: its Arrow batches, or its columns. CloudFetch links are
    /// not inline rows (take them out of `result_links` first); a row set that still has links,
    /// or that uses `binaryColumns` or row-based `TRow`s, is an error.
    fn try_from(row_set: TRowSet) -> Result<Self> {
        if row_set.result_links.as_ref().is_some_and(|l| !l.is_empty()) {
            return Err(Error::decode(
                "CloudFetch links are handled by the CloudFetch pipeline, not the inline decoder",
            ));
        }
        if let Some(batches) = row_set.arrow_batches.filter(|b| !b.is_empty()) {
            return Ok(InlineRows::Arrow(
                batches
                    .into_iter()
                    .map(|b| ArrowBatchBytes {
                        bytes: b.batch,
                        rows: b.row_count,
                    })
                    .collect(),
            ));
        }
        if let Some(columns) = row_set.columns.filter(|c| !c.is_empty()) {
            return Ok(InlineRows::Columns(
                columns.into_iter().map(Column::from).collect(),
            ));
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
        Ok(InlineRows::Empty)
    }
}

impl From<TColumn> for Column {
    /// The column's values and NULL bitmap, moved (doubles unwrapped from `OrderedFloat` in
    /// place).
    fn from(column: TColumn) -> Self {
        let (values, nulls) = match column {
            TColumn::BoolVal(c) => (ColumnValues::Bool(c.values), c.nulls),
            TColumn::ByteVal(c) => (ColumnValues::Int8(c.values), c.nulls),
            TColumn::I16Val(c) => (ColumnValues::Int16(c.values), c.nulls),
            TColumn::I32Val(c) => (ColumnValues::Int32(c.values), c.nulls),
            TColumn::I64Val(c) => (ColumnValues::Int64(c.values), c.nulls),
            TColumn::DoubleVal(c) => (
                ColumnValues::Float64(c.values.into_iter().map(|v| v.0).collect()),
                c.nulls,
            ),
            TColumn::StringVal(c) => (ColumnValues::Text(c.values), c.nulls),
            TColumn::BinaryVal(c) => (ColumnValues::Binary(c.values), c.nulls),
        };
        Column { values, nulls }
    }
}

impl From<TSparkArrowResultLink> for ResultLink {
    fn from(link: TSparkArrowResultLink) -> Self {
        ResultLink {
            file_link: link.file_link,
            expiry_time: link.expiry_time,
            start_row_offset: link.start_row_offset,
            row_count: link.row_count,
            bytes_num: link.bytes_num,
            http_headers: link.http_headers,
        }
    }
}

#[cfg(test)]
mod tests {
    use thrift::OrderedFloat;

    use super::*;
    use crate::thrift::tcli::{TDoubleColumn, TRow, TSparkArrowBatch, TStringColumn};
    use crate::ErrorKind;

    fn row_set(columns: Option<Vec<TColumn>>, batches: Option<Vec<TSparkArrowBatch>>) -> TRowSet {
        TRowSet::new(0, vec![], columns, None, None, batches, None)
    }

    #[test]
    fn columns_and_arrow_batches_move_into_inline_rows() {
        let doubles = TColumn::DoubleVal(TDoubleColumn::new(
            vec![OrderedFloat(1.5), OrderedFloat(-7.25)],
            vec![0b10],
        ));
        let texts = TColumn::StringVal(TStringColumn::new(vec!["a".into(), "b".into()], vec![]));
        let rows = InlineRows::try_from(row_set(Some(vec![doubles, texts]), None)).unwrap();
        let expected = vec![
            Column {
                values: ColumnValues::Float64(vec![1.5, -7.25]),
                nulls: vec![0b10],
            },
            Column {
                values: ColumnValues::Text(vec!["a".into(), "b".into()]),
                nulls: vec![],
            },
        ];
        assert_eq!(rows, InlineRows::Columns(expected));
        assert_eq!(rows.encoded_bytes(), 2 * 2 * 8);

        let batch = TSparkArrowBatch::new(vec![1, 2, 3], 7);
        let rows = InlineRows::try_from(row_set(None, Some(vec![batch]))).unwrap();
        let expected = ArrowBatchBytes {
            bytes: vec![1, 2, 3],
            rows: 7,
        };
        assert_eq!(rows, InlineRows::Arrow(vec![expected]));
        assert_eq!(rows.encoded_bytes(), 3);
    }

    #[test]
    fn a_row_set_without_rows_is_empty() {
        for empty in [row_set(None, None), row_set(Some(vec![]), Some(vec![]))] {
            assert_eq!(InlineRows::try_from(empty).unwrap(), InlineRows::Empty);
        }
    }

    #[test]
    fn binary_columns_and_row_based_rows_are_named_errors() {
        let mut binary = row_set(None, None);
        binary.binary_columns = Some(vec![0, 1]);
        let err = InlineRows::try_from(binary).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        assert!(err.to_string().contains("binaryColumns"), "{err}");

        let mut row_based = row_set(None, None);
        row_based.rows = vec![TRow::new(vec![])];
        let err = InlineRows::try_from(row_based).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        assert!(err.to_string().contains("row-based"), "{err}");
    }

    #[test]
    fn an_absent_result_format_is_column_based_and_row_based_is_refused() {
        assert_eq!(result_format(None).unwrap(), ResultFormat::Columnar);
        assert_eq!(
            result_format(Some(TSparkRowSetType::URL_BASED_SET)).unwrap(),
            ResultFormat::CloudFetch
        );
        let err = result_format(Some(TSparkRowSetType::ROW_BASED_SET)).unwrap_err();
        assert!(err.to_string().contains("ROW_BASED_SET"), "{err}");
        let err = result_format(Some(TSparkRowSetType(42))).unwrap_err();
        assert!(err.to_string().contains("42"), "{err}");
    }
}
