//! Pins the properties of the generated code that the driver relies on: decoding untrusted
//! bytes never panics (unknown union variants are errors), and defaults leave fields unset.

use thrift::protocol::{
    TBinaryInputProtocol, TBinaryOutputProtocol, TFieldIdentifier, TOutputProtocol, TSerializable,
    TStructIdentifier, TType,
};

use super::tcli::*;

/// A struct with one field of `id` holding an i32, as a newer server would send a union
/// variant this IDL does not know.
fn struct_with_unknown_i32_field(id: i16) -> Vec<u8> {
    let mut buf = Vec::new();
    {
        let mut o = TBinaryOutputProtocol::new(&mut buf, true);
        o.write_struct_begin(&TStructIdentifier::new("Unknown"))
            .unwrap();
        o.write_field_begin(&TFieldIdentifier::new("future", TType::I32, id))
            .unwrap();
        o.write_i32(42).unwrap();
        o.write_field_end().unwrap();
        o.write_field_stop().unwrap();
        o.write_struct_end().unwrap();
        o.flush().unwrap();
    }
    buf
}

fn decode<T: TSerializable>(bytes: &[u8]) -> thrift::Result<T> {
    let mut input = bytes;
    let mut i = TBinaryInputProtocol::new(&mut input, true);
    T::read_from_in_protocol(&mut i)
}

fn encode<T: TSerializable>(value: &T) -> Vec<u8> {
    let mut buf = Vec::new();
    {
        let mut o = TBinaryOutputProtocol::new(&mut buf, true);
        value.write_to_out_protocol(&mut o).unwrap();
        o.flush().unwrap();
    }
    buf
}

fn assert_unknown_variant_error<T: TSerializable + std::fmt::Debug>(bytes: &[u8]) {
    match decode::<T>(bytes) {
        Err(thrift::Error::Protocol(e)) => {
            assert_eq!(e.kind, thrift::ProtocolErrorKind::InvalidData);
            assert!(e.message.contains("unknown union variant"), "{}", e.message);
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[test]
fn unknown_tcolumn_variant_is_a_protocol_error_not_a_panic() {
    assert_unknown_variant_error::<TColumn>(&struct_with_unknown_i32_field(9));
}

#[test]
fn unknown_tcolumn_value_variant_is_a_protocol_error_not_a_panic() {
    assert_unknown_variant_error::<TColumnValue>(&struct_with_unknown_i32_field(8));
}

#[test]
fn unknown_tget_info_value_variant_is_a_protocol_error_not_a_panic() {
    assert_unknown_variant_error::<TGetInfoValue>(&struct_with_unknown_i32_field(1000));
}

#[test]
fn every_union_rejects_an_unknown_variant() {
    let bytes = struct_with_unknown_i32_field(3000);
    assert_unknown_variant_error::<TTypeQualifierValue>(&bytes);
    assert_unknown_variant_error::<TTypeEntry>(&bytes);
    assert_unknown_variant_error::<TDBSqlResultFormat>(&bytes);
    assert_unknown_variant_error::<TSparkParameterValue>(&bytes);
}

#[test]
fn a_row_set_with_an_unknown_column_variant_fails_to_decode() {
    // A TRowSet whose column list holds one column of an unknown variant (id 9).
    let mut buf = Vec::new();
    {
        let mut o = TBinaryOutputProtocol::new(&mut buf, true);
        o.write_struct_begin(&TStructIdentifier::new("TRowSet"))
            .unwrap();
        o.write_field_begin(&TFieldIdentifier::new("startRowOffset", TType::I64, 1))
            .unwrap();
        o.write_i64(0).unwrap();
        o.write_field_end().unwrap();
        o.write_field_begin(&TFieldIdentifier::new("rows", TType::List, 2))
            .unwrap();
        o.write_list_begin(&thrift::protocol::TListIdentifier::new(TType::Struct, 0))
            .unwrap();
        o.write_list_end().unwrap();
        o.write_field_end().unwrap();
        o.write_field_begin(&TFieldIdentifier::new("columns", TType::List, 3))
            .unwrap();
        o.write_list_begin(&thrift::protocol::TListIdentifier::new(TType::Struct, 1))
            .unwrap();
        o.write_struct_begin(&TStructIdentifier::new("TColumn"))
            .unwrap();
        o.write_field_begin(&TFieldIdentifier::new("future", TType::String, 9))
            .unwrap();
        o.write_string("x").unwrap();
        o.write_field_end().unwrap();
        o.write_field_stop().unwrap();
        o.write_struct_end().unwrap();
        o.write_list_end().unwrap();
        o.write_field_end().unwrap();
        o.write_field_stop().unwrap();
        o.write_struct_end().unwrap();
        o.flush().unwrap();
    }
    assert!(matches!(
        decode::<TRowSet>(&buf),
        Err(thrift::Error::Protocol(_))
    ));
}

#[test]
fn known_union_variant_round_trips() {
    let col = TColumn::I64Val(TI64Column::new(vec![1, 2, 3], vec![0b010]));
    let back: TColumn = decode(&encode(&col)).unwrap();
    assert_eq!(back, col);
    let info = TGetInfoValue::StringValue("Spark SQL".into());
    assert_eq!(decode::<TGetInfoValue>(&encode(&info)).unwrap(), info);
}

#[test]
fn defaults_of_all_optional_structs_leave_fields_unset() {
    let req = TOpenSessionReq::default();
    assert_eq!(req.client_protocol_i64, None);
    assert_eq!(req.username, None);
    assert_eq!(req.configuration, None);
    assert_eq!(TStringValue::default().value, None);
    assert_eq!(TNamespace::default().catalog_name, None);
    // An all-default struct encodes to an empty struct: just the stop byte.
    assert_eq!(encode(&TOpenSessionReq::default()), vec![0u8]);
}

#[test]
fn extension_field_ids_are_on_the_wire() {
    // TExecuteStatementReq.canReadArrowResult is field 1282 (bool): type byte 2, id 0x0502.
    let req = TExecuteStatementReq {
        session_handle: TSessionHandle::new(THandleIdentifier::new(vec![0; 16], vec![0; 16])),
        statement: "SELECT 1".into(),
        conf_overlay: None,
        run_async: None,
        query_timeout: None,
        get_direct_results: None,
        can_read_arrow_result: Some(true),
        can_download_result: None,
        can_decompress_l_z4_result: None,
        max_bytes_per_file: None,
        use_arrow_native_types: None,
        result_row_limit: None,
        parameters: None,
        max_bytes_per_batch: None,
        statement_conf: None,
    };
    let bytes = encode(&req);
    assert!(
        bytes.windows(4).any(|w| w == [2, 0x05, 0x02, 1]),
        "{bytes:?}"
    );
    assert_eq!(decode::<TExecuteStatementReq>(&bytes).unwrap(), req);
}

#[test]
fn spark_protocol_versions_have_their_wire_values() {
    assert_eq!(TProtocolVersion::SPARK_CLI_SERVICE_PROTOCOL_V1.0, 0xA501);
    assert_eq!(TProtocolVersion::SPARK_CLI_SERVICE_PROTOCOL_V8.0, 0xA508);
    assert_eq!(TProtocolVersion::__HIVE_JDBC_WORKAROUND.0, -7);
    assert_eq!(TOperationState::TIMEDOUT_STATE.0, 8);
    assert_eq!(TSparkRowSetType::URL_BASED_SET.0, 3);
}

#[test]
fn truncated_input_is_an_error_not_a_panic() {
    let status = TStatus {
        status_code: TStatusCode::ERROR_STATUS,
        info_messages: Some(vec!["a".into()]),
        sql_state: Some("42P01".into()),
        error_code: Some(7),
        error_message: Some("no such table".into()),
        display_message: Some("no such table".into()),
        error_details_json: None,
    };
    let bytes = encode(&status);
    for cut in 0..bytes.len() {
        assert!(decode::<TStatus>(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    assert_eq!(decode::<TStatus>(&bytes).unwrap(), status);
}
