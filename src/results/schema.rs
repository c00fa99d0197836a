//! The Arrow schema of a result: parsed from the `arrowSchema` IPC message of
//! `TGetResultSetMetadataResp`, or derived from its Hive `TTableSchema` (column-based results and
//! servers that send no Arrow schema).
//!
//! # Hive types in column-based results
//!
//! | Hive `TTypeId` | Arrow type | column-based wire form |
//! |---|---|---|
//! | `BOOLEAN` | `Boolean` | `boolVal` |
//! | `TINYINT` | `Int8` | `byteVal` |
//! | `SMALLINT` | `Int16` | `i16Val` |
//! | `INT` | `Int32` | `i32Val` |
//! | `BIGINT` | `Int64` | `i64Val` |
//! | `FLOAT` | `Float32` | `doubleVal` |
//! | `DOUBLE` | `Float64` | `doubleVal` |
//! | `STRING`, `VARCHAR`, `CHAR` | `Utf8` | `stringVal` |
//! | `BINARY` | `Binary` | `binaryVal` |
//! | `DECIMAL(p,s)` | `Decimal128(p,s)` for `p <= 38`, `Decimal256(p,s)` for `39 <= p <= 76` | `stringVal`, e.g. `-12.50` |
//! | `DATE` | `Date32` | `stringVal`, `YYYY-MM-DD` |
//! | `TIMESTAMP`, `TIMESTAMP_LTZ` | `Timestamp(Microsecond, "UTC")` | `stringVal`, `YYYY-MM-DD HH:MM:SS[.fraction]` |
//! | `INTERVAL YEAR TO MONTH`, `INTERVAL DAY TO SECOND` | `Utf8` | `stringVal`, the server's text (`1-2`, `1 02:03:04.000000000`) |
//! | `ARRAY`, `MAP`, `STRUCT`, `UNIONTYPE` | `Utf8` | `stringVal`, JSON text (`[1,2,null]`, `{"a":1}`) |
//! | `VOID` (`NULL_TYPE`) | `Null` | any column, every row NULL |
//! | `USER_DEFINED` and type ids this driver does not know | `Utf8` | the server's text |
//!
//! `DECIMAL` takes its precision and scale from the `precision` and `scale` type qualifiers,
//! 10 and 0 when absent (Hive's defaults). A precision outside `1..=76`, a negative scale or a
//! scale above the precision is a decode error: Databricks and Hive stop at 38, and Arrow has no
//! decimal wider than 76 digits.
//!
//! Timestamps are `Timestamp(Microsecond, "UTC")`: Arrow results carry timestamps as instants
//! with a UTC zone (the mock warehouse's `mock.rows` among them), and giving column-based
//! results the same type makes a table read both ways compare equal. Column-based results send
//! the wall-clock text of the session time zone; the text is read as UTC, so the instants are
//! exact when the session time zone is UTC (the Databricks SQL default) and shifted by the
//! session's offset otherwise.
//!
//! Every derived field is nullable and carries its Databricks type name under
//! [`TYPE_NAME_KEY`].

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::error::{Error, Result};
use crate::thrift::tcli::{
    TColumnDesc, TTableSchema, TTypeEntry, TTypeId, TTypeQualifierValue, TTypeQualifiers,
};

/// Field metadata key holding the column's Databricks type name (`BIGINT`, `DECIMAL(10,2)`,
/// `TIMESTAMP`...) in schemas derived from a `TTableSchema`: column-based results carry
/// intervals, complex values and user-defined types as strings, and this says what the string
/// stands for.
pub(crate) const TYPE_NAME_KEY: &str = "databricks.type_name";

/// Parses an Arrow IPC schema message (as sent in `arrowSchema`), with or without the
/// `0xFFFFFFFF` continuation marker in front.
pub(crate) fn arrow_schema_from_ipc(bytes: &[u8]) -> Result<SchemaRef> {
    let schema = arrow_ipc::convert::try_schema_from_ipc_buffer(bytes).map_err(|e| {
        Error::decode(format!(
            "the Arrow schema the server sent ({} bytes) could not be parsed: {e}",
            bytes.len()
        ))
    })?;
    Ok(Arc::new(schema))
}

/// Timezone of the timestamps of schemas derived from a `TTableSchema` (see the module
/// documentation).
pub(crate) const TIMESTAMP_ZONE: &str = "UTC";

/// The widest decimal precision Arrow holds (`Decimal256`).
const MAX_DECIMAL256_PRECISION: i32 = 76;

/// The widest decimal precision `Decimal128` holds.
const MAX_DECIMAL128_PRECISION: i32 = 38;

/// Derives the Arrow schema of a column-based result from its Hive table schema, one nullable
/// field per column with the type of the module's table and its Databricks type name under
/// [`TYPE_NAME_KEY`]. An impossible `DECIMAL` precision or scale is a decode error naming the
/// column.
pub(crate) fn arrow_schema_from_table_schema(table: &TTableSchema) -> Result<SchemaRef> {
    let fields = table
        .columns
        .iter()
        .enumerate()
        .map(|(index, column)| field_from_column(column, index))
        .collect::<Result<Vec<Field>>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

fn field_from_column(column: &TColumnDesc, index: usize) -> Result<Field> {
    let (data_type, type_name) = match column.type_desc.types.first() {
        Some(TTypeEntry::PrimitiveEntry(entry)) => {
            let qualifiers = entry.type_qualifiers.as_ref();
            let data_type = arrow_type_for(entry.type_, qualifiers).map_err(|e| {
                Error::decode(format!("column {index} ({}): {e}", column.column_name))
            })?;
            let mut name = type_name(entry.type_).to_string();
            if let Some(qualifiers) = qualifiers {
                let q = |key: &str| match qualifiers.qualifiers.get(key) {
                    Some(TTypeQualifierValue::I32Value(v)) => Some(v.to_string()),
                    Some(TTypeQualifierValue::StringValue(v)) => Some(v.clone()),
                    None => None,
                };
                match (q("precision"), q("scale"), q("characterMaximumLength")) {
                    (Some(p), Some(s), _) => name = format!("{name}({p},{s})"),
                    (Some(p), None, _) => name = format!("{name}({p})"),
                    (None, None, Some(len)) => name = format!("{name}({len})"),
                    _ => {}
                }
            }
            (data_type, name)
        }
        Some(TTypeEntry::ArrayEntry(_)) => (DataType::Utf8, "ARRAY".to_string()),
        Some(TTypeEntry::MapEntry(_)) => (DataType::Utf8, "MAP".to_string()),
        Some(TTypeEntry::StructEntry(_)) => (DataType::Utf8, "STRUCT".to_string()),
        Some(TTypeEntry::UnionEntry(_)) => (DataType::Utf8, "UNIONTYPE".to_string()),
        Some(TTypeEntry::UserDefinedTypeEntry(u)) => (DataType::Utf8, u.type_class_name.clone()),
        None => (DataType::Utf8, "UNKNOWN".to_string()),
    };
    Ok(Field::new(column.column_name.clone(), data_type, true)
        .with_metadata(HashMap::from([(TYPE_NAME_KEY.to_string(), type_name)])))
}

/// The Arrow type a column-based result delivers a Hive type as (the module's table);
/// `qualifiers` are the type's qualifiers, of which `DECIMAL` reads `precision` and `scale`.
/// Errors (as plain decode errors the caller names the column in) only for an impossible
/// decimal precision or scale.
pub(crate) fn arrow_type_for(
    type_id: TTypeId,
    qualifiers: Option<&TTypeQualifiers>,
) -> Result<DataType> {
    Ok(match type_id {
        TTypeId::BOOLEAN_TYPE => DataType::Boolean,
        TTypeId::TINYINT_TYPE => DataType::Int8,
        TTypeId::SMALLINT_TYPE => DataType::Int16,
        TTypeId::INT_TYPE => DataType::Int32,
        TTypeId::BIGINT_TYPE => DataType::Int64,
        TTypeId::FLOAT_TYPE => DataType::Float32,
        TTypeId::DOUBLE_TYPE => DataType::Float64,
        TTypeId::STRING_TYPE | TTypeId::VARCHAR_TYPE | TTypeId::CHAR_TYPE => DataType::Utf8,
        TTypeId::BINARY_TYPE => DataType::Binary,
        TTypeId::DECIMAL_TYPE => decimal_type(qualifiers)?,
        TTypeId::DATE_TYPE => DataType::Date32,
        TTypeId::TIMESTAMP_TYPE | TTypeId::TIMESTAMPLOCALTZ_TYPE => {
            DataType::Timestamp(TimeUnit::Microsecond, Some(TIMESTAMP_ZONE.into()))
        }
        TTypeId::NULL_TYPE => DataType::Null,
        // Intervals (the server's text), complex types (JSON text), user-defined types and
        // type ids added after this driver: strings.
        _ => DataType::Utf8,
    })
}

/// `Decimal128`/`Decimal256` from the `precision` and `scale` qualifiers (10 and 0 when absent).
fn decimal_type(qualifiers: Option<&TTypeQualifiers>) -> Result<DataType> {
    let qualifier = |key: &str, default: i32| -> Result<i32> {
        match qualifiers.and_then(|q| q.qualifiers.get(key)) {
            None => Ok(default),
            Some(TTypeQualifierValue::I32Value(v)) => Ok(*v),
            Some(TTypeQualifierValue::StringValue(v)) => v.trim().parse().map_err(|_| {
                Error::decode(format!(
                    "DECIMAL {key} qualifier {:?} is not a number",
                    truncated(v)
                ))
            }),
        }
    };
    let precision = qualifier("precision", 10)?;
    let scale = qualifier("scale", 0)?;
    if !(1..=MAX_DECIMAL256_PRECISION).contains(&precision) {
        return Err(Error::decode(format!(
            "DECIMAL precision {precision} is outside 1..={MAX_DECIMAL256_PRECISION}"
        )));
    }
    if !(0..=precision).contains(&scale) {
        return Err(Error::decode(format!(
            "DECIMAL scale {scale} is outside 0..={precision} (the precision)"
        )));
    }
    // Both fit: precision <= 76 and 0 <= scale <= precision.
    let (p, s) = (precision as u8, scale as i8);
    Ok(if precision <= MAX_DECIMAL128_PRECISION {
        DataType::Decimal128(p, s)
    } else {
        DataType::Decimal256(p, s)
    })
}

/// At most 64 characters of `text`, for error messages.
pub(crate) fn truncated(text: &str) -> &str {
    match text.char_indices().nth(64) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// The SQL name of a Hive type id, as Databricks spells it.
pub(crate) fn type_name(type_id: TTypeId) -> &'static str {
    match type_id {
        TTypeId::BOOLEAN_TYPE => "BOOLEAN",
        TTypeId::TINYINT_TYPE => "TINYINT",
        TTypeId::SMALLINT_TYPE => "SMALLINT",
        TTypeId::INT_TYPE => "INT",
        TTypeId::BIGINT_TYPE => "BIGINT",
        TTypeId::FLOAT_TYPE => "FLOAT",
        TTypeId::DOUBLE_TYPE => "DOUBLE",
        TTypeId::STRING_TYPE => "STRING",
        TTypeId::TIMESTAMP_TYPE => "TIMESTAMP",
        TTypeId::BINARY_TYPE => "BINARY",
        TTypeId::ARRAY_TYPE => "ARRAY",
        TTypeId::MAP_TYPE => "MAP",
        TTypeId::STRUCT_TYPE => "STRUCT",
        TTypeId::UNION_TYPE => "UNIONTYPE",
        TTypeId::USER_DEFINED_TYPE => "USER_DEFINED",
        TTypeId::DECIMAL_TYPE => "DECIMAL",
        TTypeId::NULL_TYPE => "VOID",
        TTypeId::DATE_TYPE => "DATE",
        TTypeId::VARCHAR_TYPE => "VARCHAR",
        TTypeId::CHAR_TYPE => "CHAR",
        TTypeId::INTERVAL_YEAR_MONTH_TYPE => "INTERVAL YEAR TO MONTH",
        TTypeId::INTERVAL_DAY_TIME_TYPE => "INTERVAL DAY TO SECOND",
        TTypeId::TIMESTAMPLOCALTZ_TYPE => "TIMESTAMP_LTZ",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thrift::tcli::{TPrimitiveTypeEntry, TTypeDesc};
    use crate::ErrorKind;
    use std::collections::BTreeMap;

    fn column(name: &str, type_id: TTypeId, position: i32) -> TColumnDesc {
        TColumnDesc::new(
            name.to_string(),
            TTypeDesc::new(vec![TTypeEntry::PrimitiveEntry(TPrimitiveTypeEntry::new(
                type_id, None,
            ))]),
            position,
            None,
        )
    }

    #[test]
    fn maps_hive_types_to_arrow_and_keeps_names_and_order() {
        let table = TTableSchema::new(vec![
            column("b", TTypeId::BOOLEAN_TYPE, 1),
            column("t", TTypeId::TINYINT_TYPE, 2),
            column("s", TTypeId::SMALLINT_TYPE, 3),
            column("i", TTypeId::INT_TYPE, 4),
            column("l", TTypeId::BIGINT_TYPE, 5),
            column("f", TTypeId::FLOAT_TYPE, 6),
            column("d", TTypeId::DOUBLE_TYPE, 7),
            column("str", TTypeId::STRING_TYPE, 8),
            column("vc", TTypeId::VARCHAR_TYPE, 9),
            column("c", TTypeId::CHAR_TYPE, 10),
            column("bin", TTypeId::BINARY_TYPE, 11),
            column("dec", TTypeId::DECIMAL_TYPE, 12),
            column("date", TTypeId::DATE_TYPE, 13),
            column("ts", TTypeId::TIMESTAMP_TYPE, 14),
            column("iv", TTypeId::INTERVAL_DAY_TIME_TYPE, 15),
            column("arr", TTypeId::ARRAY_TYPE, 16),
            column("m", TTypeId::MAP_TYPE, 17),
            column("st", TTypeId::STRUCT_TYPE, 18),
            column("n", TTypeId::NULL_TYPE, 19),
            column("future", TTypeId(99), 20),
            column("ym", TTypeId::INTERVAL_YEAR_MONTH_TYPE, 21),
            column("ltz", TTypeId::TIMESTAMPLOCALTZ_TYPE, 22),
            column("u", TTypeId::USER_DEFINED_TYPE, 23),
            column("un", TTypeId::UNION_TYPE, 24),
        ]);
        let schema = arrow_schema_from_table_schema(&table).unwrap();
        let got: Vec<(&str, &DataType)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type()))
            .collect();
        use DataType::*;
        let utc = Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        assert_eq!(
            got,
            vec![
                ("b", &Boolean),
                ("t", &Int8),
                ("s", &Int16),
                ("i", &Int32),
                ("l", &Int64),
                ("f", &Float32),
                ("d", &Float64),
                ("str", &Utf8),
                ("vc", &Utf8),
                ("c", &Utf8),
                ("bin", &Binary),
                ("dec", &Decimal128(10, 0)),
                ("date", &Date32),
                ("ts", &utc),
                ("iv", &Utf8),
                ("arr", &Utf8),
                ("m", &Utf8),
                ("st", &Utf8),
                ("n", &Null),
                ("future", &Utf8),
                ("ym", &Utf8),
                ("ltz", &utc),
                ("u", &Utf8),
                ("un", &Utf8),
            ]
        );
        assert!(schema.fields().iter().all(|f| f.is_nullable()));
        assert_eq!(
            schema
                .field(13)
                .metadata()
                .get(TYPE_NAME_KEY)
                .map(String::as_str),
            Some("TIMESTAMP")
        );
    }

    #[test]
    fn records_decimal_precision_and_scale_in_the_type_name() {
        let qualifiers = TTypeQualifiers::new(BTreeMap::from([
            ("precision".to_string(), TTypeQualifierValue::I32Value(10)),
            ("scale".to_string(), TTypeQualifierValue::I32Value(2)),
        ]));
        let mut dec = column("amount", TTypeId::DECIMAL_TYPE, 1);
        dec.type_desc.types = vec![TTypeEntry::PrimitiveEntry(TPrimitiveTypeEntry::new(
            TTypeId::DECIMAL_TYPE,
            qualifiers,
        ))];
        let schema = arrow_schema_from_table_schema(&TTableSchema::new(vec![dec])).unwrap();
        assert_eq!(schema.field(0).data_type(), &DataType::Decimal128(10, 2));
        assert_eq!(
            schema
                .field(0)
                .metadata()
                .get(TYPE_NAME_KEY)
                .map(String::as_str),
            Some("DECIMAL(10,2)")
        );
    }

    fn decimal(name: &str, qualifiers: &[(&str, TTypeQualifierValue)]) -> TColumnDesc {
        let qualifiers = TTypeQualifiers::new(
            qualifiers
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
        );
        let mut column = column(name, TTypeId::DECIMAL_TYPE, 1);
        column.type_desc.types = vec![TTypeEntry::PrimitiveEntry(TPrimitiveTypeEntry::new(
            TTypeId::DECIMAL_TYPE,
            qualifiers,
        ))];
        column
    }

    fn decimal_type_of(column: TColumnDesc) -> Result<DataType> {
        let schema = arrow_schema_from_table_schema(&TTableSchema::new(vec![column]))?;
        Ok(schema.field(0).data_type().clone())
    }

    #[test]
    fn decimal_precision_and_scale_default_to_10_0_and_pick_the_arrow_width() {
        use TTypeQualifierValue::{I32Value, StringValue};
        assert_eq!(
            decimal_type_of(decimal("d", &[])).unwrap(),
            DataType::Decimal128(10, 0)
        );
        assert_eq!(
            decimal_type_of(decimal("d", &[("precision", I32Value(5))])).unwrap(),
            DataType::Decimal128(5, 0)
        );
        assert_eq!(
            decimal_type_of(decimal("d", &[("scale", I32Value(3))])).unwrap(),
            DataType::Decimal128(10, 3)
        );
        assert_eq!(
            decimal_type_of(decimal(
                "d",
                &[("precision", I32Value(38)), ("scale", I32Value(38))]
            ))
            .unwrap(),
            DataType::Decimal128(38, 38)
        );
        assert_eq!(
            decimal_type_of(decimal(
                "d",
                &[
                    ("precision", StringValue("39".into())),
                    ("scale", StringValue("4".into()))
                ]
            ))
            .unwrap(),
            DataType::Decimal256(39, 4)
        );
        assert_eq!(
            decimal_type_of(decimal("d", &[("precision", I32Value(76))])).unwrap(),
            DataType::Decimal256(76, 0)
        );
    }

    #[test]
    fn an_impossible_decimal_precision_or_scale_is_a_decode_error_naming_the_column() {
        use TTypeQualifierValue::{I32Value, StringValue};
        for (qualifiers, text) in [
            (vec![("precision", I32Value(77))], "precision 77"),
            (vec![("precision", I32Value(0))], "precision 0"),
            (
                vec![("precision", I32Value(5)), ("scale", I32Value(6))],
                "scale 6",
            ),
            (vec![("scale", I32Value(-1))], "scale -1"),
            (vec![("precision", StringValue("wide".into()))], "\"wide\""),
        ] {
            let err = decimal_type_of(decimal("amount", &qualifiers)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Decode);
            let message = err.to_string();
            assert!(message.contains("column 0 (amount)"), "{message}");
            assert!(message.contains(text), "{message}");
        }
    }

    #[test]
    fn parses_an_ipc_schema_message_with_and_without_continuation_marker() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]);
        let with_marker = crate::results::encode::encode_schema_message(&schema);
        assert_eq!(&with_marker[..4], &[0xFF; 4]);
        let parsed = arrow_schema_from_ipc(&with_marker).unwrap();
        assert_eq!(parsed.as_ref(), &schema);
        let parsed = arrow_schema_from_ipc(&with_marker[4..]).unwrap();
        assert_eq!(parsed.as_ref(), &schema);
    }

    #[test]
    fn a_corrupt_or_truncated_schema_message_is_a_decode_error() {
        let schema = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
        let bytes = crate::results::encode::encode_schema_message(&schema);
        for bad in [
            &bytes[..3],
            &bytes[..bytes.len() / 2],
            &[0xFF; 8][..],
            b"garbage!",
        ] {
            let err = arrow_schema_from_ipc(bad).expect_err("must fail");
            assert_eq!(err.kind(), ErrorKind::Decode);
            assert!(err.to_string().contains("Arrow schema"), "{err}");
        }
        let mut x: u32 = 7;
        for _ in 0..300 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let mut flipped = bytes.clone();
            let at = (x as usize >> 4) % flipped.len();
            flipped[at] ^= 1 << (x % 8);
            if let Err(e) = arrow_schema_from_ipc(&flipped) {
                assert_eq!(e.kind(), ErrorKind::Decode);
            }
        }
    }
}
