//! The Arrow schema of a result: parsed from the `arrowSchema` IPC message of
//! `TGetResultSetMetadataResp`, or derived from its Hive `TTableSchema` (column-based results and
//! servers that send no Arrow schema).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::error::{Error, Result};
use crate::thrift::tcli::{TColumnDesc, TTableSchema, TTypeEntry, TTypeId, TTypeQualifierValue};

/// Field metadata key holding the column's Databricks type name (`BIGINT`, `DECIMAL(10,2)`,
/// `TIMESTAMP`...) in schemas derived from a `TTableSchema`: column-based results carry
/// decimals, dates, timestamps, intervals and complex values as strings, and this says what
/// the string stands for.
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

/// Derives the Arrow schema of a column-based result from its Hive table schema: BOOLEAN,
/// TINYINT, SMALLINT, INT, BIGINT, FLOAT, DOUBLE, BINARY map to their Arrow types;
/// STRING/VARCHAR/CHAR and every other type (DECIMAL, DATE, TIMESTAMP, INTERVAL, ARRAY, MAP,
/// STRUCT, NULL...) map to `Utf8`, because column-based results send those as strings. Every
/// field is nullable and carries its Databricks type name under [`TYPE_NAME_KEY`].
pub(crate) fn arrow_schema_from_table_schema(table: &TTableSchema) -> Result<SchemaRef> {
    let fields: Vec<Field> = table.columns.iter().map(field_from_column).collect();
    Ok(Arc::new(Schema::new(fields)))
}

fn field_from_column(column: &TColumnDesc) -> Field {
    let (data_type, type_name) = match column.type_desc.types.first() {
        Some(TTypeEntry::PrimitiveEntry(entry)) => {
            let data_type = arrow_type_for(entry.type_);
            let mut name = type_name(entry.type_).to_string();
            if let Some(qualifiers) = &entry.type_qualifiers {
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
    Field::new(column.column_name.clone(), data_type, true)
        .with_metadata(HashMap::from([(TYPE_NAME_KEY.to_string(), type_name)]))
}

/// The Arrow type a column-based result delivers a Hive type as.
pub(crate) fn arrow_type_for(type_id: TTypeId) -> DataType {
    match type_id {
        TTypeId::BOOLEAN_TYPE => DataType::Boolean,
        TTypeId::TINYINT_TYPE => DataType::Int8,
        TTypeId::SMALLINT_TYPE => DataType::Int16,
        TTypeId::INT_TYPE => DataType::Int32,
        TTypeId::BIGINT_TYPE => DataType::Int64,
        TTypeId::FLOAT_TYPE => DataType::Float32,
        TTypeId::DOUBLE_TYPE => DataType::Float64,
        TTypeId::BINARY_TYPE => DataType::Binary,
        _ => DataType::Utf8,
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
    use crate::thrift::tcli::{TPrimitiveTypeEntry, TTypeDesc, TTypeQualifiers};
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
        ]);
        let schema = arrow_schema_from_table_schema(&table).unwrap();
        let got: Vec<(&str, &DataType)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type()))
            .collect();
        use DataType::*;
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
                ("dec", &Utf8),
                ("date", &Utf8),
                ("ts", &Utf8),
                ("iv", &Utf8),
                ("arr", &Utf8),
                ("m", &Utf8),
                ("st", &Utf8),
                ("n", &Utf8),
                ("future", &Utf8),
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
        assert_eq!(schema.field(0).data_type(), &DataType::Utf8);
        assert_eq!(
            schema
                .field(0)
                .metadata()
                .get(TYPE_NAME_KEY)
                .map(String::as_str),
            Some("DECIMAL(10,2)")
        );
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
