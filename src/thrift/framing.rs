//! Thrift message framing: one TCLIService call or reply as a strict-binary-protocol message in
//! a byte buffer (the body of one HTTP POST), for the client and for the mock server.
//!
//! A message is `header(name, type, seq_id)` followed by one struct: the call's
//! `<Method>_args` with the request at field 1, or the reply's `<Method>_result` with the
//! response at field 0 (`success`), or a `TApplicationException` for an exception.
//!
//! Client side:
//! - [`encode_call`]`<T: TSerializable>(method: &str, seq_id: i32, req: &T) -> Result<Vec<u8>>`
//! - [`decode_reply`]`<T: TSerializable>(method: &str, seq_id: i32, body: &[u8]) -> Result<T>`:
//!   checks the message type (REPLY; an EXCEPTION becomes an [`ErrorKind::Protocol`] error
//!   carrying the exception's message), the method name and the sequence id, then reads
//!   `success`; a reply without it is a protocol error.
//!
//! Server side (the mock warehouse; compiled with the `mock` feature and in tests; the call
//! decoder also with `fuzzing`):
//! - [`decode_call`]`(body: &[u8]) -> Result<(String, i32, CallArgs<'_>)>`: method name,
//!   sequence id, and the undecoded arguments; then
//!   [`CallArgs::decode`]`<T: TSerializable>(&self) -> Result<T>` reads field 1 of
//!   `<Method>_args` as the request type the caller picked from the method name.
//! - [`encode_reply`]`<T: TSerializable>(method: &str, seq_id: i32, resp: &T) -> Result<Vec<u8>>`
//! - [`encode_exception`]`(method: &str, seq_id: i32, kind: ApplicationErrorKind, message: &str)
//!   -> Vec<u8>` (`kind` is a `thrift::ApplicationErrorKind`)
//!
//! Decoding never panics and never allocates more than the body could hold: every length and
//! element count read from the body is checked against the body's size first, and nesting is
//! limited; any malformed, truncated or unexpected input is an [`ErrorKind::Protocol`] error.

#[cfg(doc)]
use crate::error::ErrorKind;

use thrift::protocol::{
    TBinaryInputProtocol, TBinaryOutputProtocol, TFieldIdentifier, TInputProtocol,
    TMessageIdentifier, TMessageType, TOutputProtocol, TSerializable, TStructIdentifier, TType,
};
use thrift::TConfiguration;

use crate::error::{Error, Result};

/// Deepest struct nesting accepted in a message (TCLIService needs fewer than 10 levels).
const MAX_NESTING: usize = 64;

/// Encode a client call of `method` (e.g. `"OpenSession"`) with sequence id `seq_id`: a CALL
/// message whose `<method>_args` struct holds `req` at field 1.
pub(crate) fn encode_call<T: TSerializable>(method: &str, seq_id: i32, req: &T) -> Result<Vec<u8>> {
    encode_message(method, TMessageType::Call, seq_id, |o| {
        write_struct_with_field(o, &format!("{method}_args"), "req", 1, req)
    })
    .map_err(|e| Error::protocol(format!("the {method} call could not be encoded: {e}")))
}

/// Decode the reply to the call of `method` with sequence id `seq_id` and return its `success`
/// value. See the module documentation for what is checked.
pub(crate) fn decode_reply<T: TSerializable>(method: &str, seq_id: i32, body: &[u8]) -> Result<T> {
    let malformed =
        |e: thrift::Error| Error::protocol(format!("the reply to {method} is malformed: {e}"));
    let mut input = body;
    let mut p = input_protocol(&mut input, body.len())?;
    let header = p.read_message_begin().map_err(malformed)?;
    match header.message_type {
        TMessageType::Reply => {}
        TMessageType::Exception => {
            let app = thrift::Error::read_application_error_from_in_protocol(&mut p)
                .map_err(malformed)?;
            // A Java server's message may go on with the request it could not read
            // (`... Struct:TOpenSessionReq(configuration:{...})`): the values the client sent,
            // which are not repeated in an error.
            let message = match app.message.find(" Struct:") {
                Some(end) => &app.message[..end],
                None => app.message.as_str(),
            };
            return Err(Error::protocol(format!(
                "the server answered {method} with a Thrift application exception ({:?}): {message}",
                app.kind
            ))
            .application_exception());
        }
        other => {
            return Err(Error::protocol(format!(
                "expected a reply to {method}, got a message of type {other:?}"
            )))
        }
    }
    if header.name != method {
        return Err(Error::protocol(format!(
            "expected a reply to {method}, got one to {:?}",
            truncate(&header.name)
        )));
    }
    if header.sequence_number != seq_id {
        return Err(Error::protocol(format!(
            "the reply to {method} has sequence id {}, expected {seq_id}",
            header.sequence_number
        )));
    }
    let success: Option<T> = read_struct_field(&mut p, 0).map_err(malformed)?;
    p.read_message_end().map_err(malformed)?;
    success.ok_or_else(|| {
        Error::protocol(format!(
            "the reply to {method} has no result (field 0 `success` is missing)"
        ))
    })
}

/// The undecoded arguments of a call read by [`decode_call`]: decode them with
/// [`CallArgs::decode`] as the request type of the call's method.
#[cfg(any(test, feature = "mock", feature = "fuzzing"))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallArgs<'a> {
    /// The bytes after the message header: the `<method>_args` struct.
    rest: &'a [u8],
    body_len: usize,
}

#[cfg(any(test, feature = "mock", feature = "fuzzing"))]
impl CallArgs<'_> {
    /// Read field 1 of the `<method>_args` struct as a `T` (e.g. `TOpenSessionReq`). A call
    /// without field 1 is a protocol error.
    pub(crate) fn decode<T: TSerializable>(&self) -> Result<T> {
        let malformed =
            |e: thrift::Error| Error::protocol(format!("the call's arguments are malformed: {e}"));
        let mut input = self.rest;
        let mut p = input_protocol(&mut input, self.body_len)?;
        let req: Option<T> = read_struct_field(&mut p, 1).map_err(malformed)?;
        p.read_message_end().map_err(malformed)?;
        req.ok_or_else(|| Error::protocol("the call has no request (field 1 is missing)"))
    }
}

/// Read the header of a call: its method name, sequence id, and arguments (not yet decoded).
/// A message of another type than CALL (or ONEWAY) is a protocol error.
#[cfg(any(test, feature = "mock", feature = "fuzzing"))]
pub(crate) fn decode_call(body: &[u8]) -> Result<(String, i32, CallArgs<'_>)> {
    let malformed = |e: thrift::Error| Error::protocol(format!("the call is malformed: {e}"));
    let mut input = body;
    let header: TMessageIdentifier = {
        let mut p = input_protocol(&mut input, body.len())?;
        p.read_message_begin().map_err(malformed)?
    };
    if !matches!(
        header.message_type,
        TMessageType::Call | TMessageType::OneWay
    ) {
        return Err(Error::protocol(format!(
            "expected a call, got a message of type {:?}",
            header.message_type
        )));
    }
    let args = CallArgs {
        rest: input,
        body_len: body.len(),
    };
    Ok((header.name, header.sequence_number, args))
}

/// Encode the reply to the call of `method` with sequence id `seq_id`: a REPLY message whose
/// `<method>_result` struct holds `resp` at field 0 (`success`).
#[cfg(any(test, feature = "mock"))]
pub(crate) fn encode_reply<T: TSerializable>(
    method: &str,
    seq_id: i32,
    resp: &T,
) -> Result<Vec<u8>> {
    encode_message(method, TMessageType::Reply, seq_id, |o| {
        write_struct_with_field(o, &format!("{method}_result"), "success", 0, resp)
    })
    .map_err(|e| Error::protocol(format!("the {method} reply could not be encoded: {e}")))
}

/// Encode a Thrift application exception answering the call of `method` with sequence id
/// `seq_id` (e.g. [`thrift::ApplicationErrorKind::UnknownMethod`]).
#[cfg(any(test, feature = "mock"))]
pub(crate) fn encode_exception(
    method: &str,
    seq_id: i32,
    kind: thrift::ApplicationErrorKind,
    message: &str,
) -> Vec<u8> {
    let error = thrift::ApplicationError::new(kind, message);
    // Writing into a Vec cannot fail; should it ever, the client sees an empty (malformed) body.
    encode_message(method, TMessageType::Exception, seq_id, |o| {
        thrift::Error::write_application_error_to_out_protocol(&error, o)
    })
    .unwrap_or_default()
}

/// A strict binary input protocol over `input` whose size limits are those of a body of
/// `body_len` bytes: no string and no container may claim more bytes than that.
fn input_protocol<'a, 'b>(
    input: &'a mut &'b [u8],
    body_len: usize,
) -> Result<TBinaryInputProtocol<&'a mut &'b [u8]>> {
    let config = TConfiguration::builder()
        .max_message_size(Some(body_len))
        .max_frame_size(None)
        .max_string_size(Some(body_len))
        .max_container_size(Some(body_len))
        .max_recursion_depth(Some(MAX_NESTING))
        .build()
        .map_err(|e| Error::protocol(format!("Thrift decoder configuration: {e}")))?;
    Ok(TBinaryInputProtocol::with_config(input, true, config))
}

fn encode_message(
    name: &str,
    message_type: TMessageType,
    seq_id: i32,
    body: impl FnOnce(&mut dyn TOutputProtocol) -> thrift::Result<()>,
) -> thrift::Result<Vec<u8>> {
    let mut buf = Vec::new();
    {
        let mut o = TBinaryOutputProtocol::new(&mut buf, true);
        o.write_message_begin(&TMessageIdentifier::new(name, message_type, seq_id))?;
        body(&mut o)?;
        o.write_message_end()?;
        o.flush()?;
    }
    Ok(buf)
}

/// Write a struct named `struct_name` with the one field `id` holding `value`.
fn write_struct_with_field<T: TSerializable>(
    o: &mut dyn TOutputProtocol,
    struct_name: &str,
    field_name: &str,
    id: i16,
    value: &T,
) -> thrift::Result<()> {
    o.write_struct_begin(&TStructIdentifier::new(struct_name))?;
    o.write_field_begin(&TFieldIdentifier::new(field_name, TType::Struct, id))?;
    value.write_to_out_protocol(o)?;
    o.write_field_end()?;
    o.write_field_stop()?;
    o.write_struct_end()
}

/// Read a struct and return its field `id` decoded as a `T` (other fields are skipped); `None`
/// when the field is absent. A field `id` that is not a struct is an error.
fn read_struct_field<T: TSerializable>(
    p: &mut dyn TInputProtocol,
    id: i16,
) -> thrift::Result<Option<T>> {
    let mut found = None;
    p.read_struct_begin()?;
    loop {
        let field = p.read_field_begin()?;
        if field.field_type == TType::Stop {
            break;
        }
        if field.id == Some(id) {
            if field.field_type != TType::Struct {
                return Err(thrift::Error::Protocol(thrift::ProtocolError::new(
                    thrift::ProtocolErrorKind::InvalidData,
                    format!("field {id} is a {:?}, expected a struct", field.field_type),
                )));
            }
            found = Some(T::read_from_in_protocol(p)?);
        } else {
            p.skip(field.field_type)?;
        }
        p.read_field_end()?;
    }
    p.read_struct_end()?;
    Ok(found)
}

/// A name from the wire, cut to a length fit for an error message.
fn truncate(name: &str) -> String {
    name.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::thrift::status::ok_status;
    use crate::thrift::tcli::{
        TGetOperationStatusReq, TGetOperationStatusResp, THandleIdentifier, TOpenSessionReq,
        TOpenSessionResp, TOperationHandle, TOperationState, TOperationType, TProtocolVersion,
        TSessionHandle,
    };
    use thrift::ApplicationErrorKind;

    fn open_session_req() -> TOpenSessionReq {
        TOpenSessionReq {
            client_protocol: Some(TProtocolVersion::__HIVE_JDBC_WORKAROUND),
            client_protocol_i64: Some(i64::from(TProtocolVersion::SPARK_CLI_SERVICE_PROTOCOL_V8.0)),
            can_use_multiple_catalogs: Some(true),
            ..Default::default()
        }
    }

    fn open_session_resp() -> TOpenSessionResp {
        TOpenSessionResp {
            status: ok_status(),
            server_protocol_version: TProtocolVersion::SPARK_CLI_SERVICE_PROTOCOL_V8,
            session_handle: Some(TSessionHandle::new(THandleIdentifier::new(
                vec![1; 16],
                vec![2; 16],
            ))),
            configuration: None,
            get_infos: None,
            initial_namespace: None,
            can_use_multiple_catalogs: Some(true),
        }
    }

    fn status_resp() -> TGetOperationStatusResp {
        TGetOperationStatusResp {
            status: ok_status(),
            operation_state: Some(TOperationState::RUNNING_STATE),
            sql_state: None,
            error_code: None,
            error_message: None,
            task_status: None,
            operation_started: None,
            operation_completed: None,
            has_result_set: None,
            progress_update_response: None,
            num_modified_rows: None,
            display_message: None,
            diagnostic_info: None,
            error_details_json: None,
        }
    }

    fn assert_protocol_error<T: std::fmt::Debug>(r: Result<T>) -> Error {
        match r {
            Err(e) if e.kind() == ErrorKind::Protocol => e,
            other => panic!("expected a protocol error, got {other:?}"),
        }
    }

    /// A tiny deterministic generator for the corruption tests (xorshift).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn call_round_trips_through_the_server_side_decoder() {
        let req = open_session_req();
        let body = encode_call("OpenSession", 7, &req).unwrap();
        let (method, seq, args) = decode_call(&body).unwrap();
        assert_eq!(method, "OpenSession");
        assert_eq!(seq, 7);
        assert_eq!(args.decode::<TOpenSessionReq>().unwrap(), req);
    }

    #[test]
    fn call_is_a_strict_binary_call_message() {
        let body = encode_call("CloseSession", 1, &open_session_req()).unwrap();
        // Strict header: version 0x8001, type CALL (1), then the length-prefixed name.
        assert_eq!(&body[..4], &[0x80, 0x01, 0x00, 0x01]);
        assert_eq!(&body[4..8], &12i32.to_be_bytes());
        assert_eq!(&body[8..20], b"CloseSession");
        assert_eq!(&body[20..24], &1i32.to_be_bytes());
        // Field 1 of the args struct is a struct.
        assert_eq!(&body[24..27], &[12, 0, 1]);
    }

    #[test]
    fn reply_round_trips() {
        let resp = open_session_resp();
        let body = encode_reply("OpenSession", 3, &resp).unwrap();
        let back: TOpenSessionResp = decode_reply("OpenSession", 3, &body).unwrap();
        assert_eq!(back, resp);
    }

    #[test]
    fn reply_with_wrong_sequence_id_is_a_protocol_error() {
        let body = encode_reply("OpenSession", 4, &open_session_resp()).unwrap();
        let e = assert_protocol_error(decode_reply::<TOpenSessionResp>("OpenSession", 5, &body));
        assert!(e.message().contains("sequence id 4, expected 5"), "{e}");
    }

    #[test]
    fn reply_to_another_method_is_a_protocol_error() {
        let body = encode_reply("CloseSession", 1, &open_session_resp()).unwrap();
        let e = assert_protocol_error(decode_reply::<TOpenSessionResp>("OpenSession", 1, &body));
        assert!(e.message().contains("CloseSession"), "{e}");
    }

    #[test]
    fn a_call_message_is_not_a_reply() {
        let body = encode_call("OpenSession", 1, &open_session_resp()).unwrap();
        assert_protocol_error(decode_reply::<TOpenSessionResp>("OpenSession", 1, &body));
    }

    #[test]
    fn application_exception_becomes_a_protocol_error_with_its_message() {
        let body = encode_exception(
            "GetOperationStatus",
            9,
            ApplicationErrorKind::InternalError,
            "boom: handle table corrupted",
        );
        let e = assert_protocol_error(decode_reply::<TGetOperationStatusResp>(
            "GetOperationStatus",
            9,
            &body,
        ));
        assert!(e.message().contains("boom: handle table corrupted"), "{e}");
        assert!(e.message().contains("InternalError"), "{e}");
        assert!(e.is_application_exception());
    }

    #[test]
    fn the_request_a_java_server_echoes_in_an_exception_is_left_out() {
        let body = encode_exception(
            "OpenSession",
            1,
            ApplicationErrorKind::ProtocolError,
            "Required field 'client_protocol' is unset! Struct:TOpenSessionReq(configuration:{spark.secret=abc})",
        );
        let e = assert_protocol_error(decode_reply::<TOpenSessionResp>("OpenSession", 1, &body));
        assert!(
            e.message()
                .ends_with("Required field 'client_protocol' is unset!"),
            "{e}"
        );
        assert!(!e.message().contains("abc"), "{e}");
    }

    #[test]
    fn reply_without_success_is_a_protocol_error() {
        let body = encode_message("OpenSession", TMessageType::Reply, 1, |o| {
            o.write_struct_begin(&TStructIdentifier::new("OpenSession_result"))?;
            o.write_field_stop()?;
            o.write_struct_end()
        })
        .unwrap();
        let e = assert_protocol_error(decode_reply::<TOpenSessionResp>("OpenSession", 1, &body));
        assert!(e.message().contains("success"), "{e}");
        assert!(
            !e.is_application_exception(),
            "the server did answer the call"
        );
    }

    #[test]
    fn unknown_fields_in_the_result_struct_are_skipped() {
        let resp = status_resp();
        let body = encode_message("GetOperationStatus", TMessageType::Reply, 2, |o| {
            o.write_struct_begin(&TStructIdentifier::new("GetOperationStatus_result"))?;
            o.write_field_begin(&TFieldIdentifier::new("declared_error", TType::String, 1))?;
            o.write_string("ignored")?;
            o.write_field_end()?;
            o.write_field_begin(&TFieldIdentifier::new("success", TType::Struct, 0))?;
            resp.write_to_out_protocol(o)?;
            o.write_field_end()?;
            o.write_field_stop()?;
            o.write_struct_end()
        })
        .unwrap();
        let back: TGetOperationStatusResp = decode_reply("GetOperationStatus", 2, &body).unwrap();
        assert_eq!(back, resp);
    }

    #[test]
    fn success_of_the_wrong_type_is_a_protocol_error() {
        let body = encode_message("OpenSession", TMessageType::Reply, 1, |o| {
            o.write_struct_begin(&TStructIdentifier::new("OpenSession_result"))?;
            o.write_field_begin(&TFieldIdentifier::new("success", TType::I32, 0))?;
            o.write_i32(1)?;
            o.write_field_end()?;
            o.write_field_stop()?;
            o.write_struct_end()
        })
        .unwrap();
        assert_protocol_error(decode_reply::<TOpenSessionResp>("OpenSession", 1, &body));
    }

    #[test]
    fn every_truncation_of_a_reply_is_a_protocol_error() {
        let body = encode_reply("OpenSession", 1, &open_session_resp()).unwrap();
        for cut in 0..body.len() {
            assert_protocol_error(decode_reply::<TOpenSessionResp>(
                "OpenSession",
                1,
                &body[..cut],
            ));
        }
    }

    #[test]
    fn every_truncation_of_a_call_is_a_protocol_error() {
        let body = encode_call("OpenSession", 1, &open_session_req()).unwrap();
        for cut in 0..body.len() {
            let r = decode_call(&body[..cut]).and_then(|(_, _, a)| a.decode::<TOpenSessionReq>());
            assert_protocol_error(r);
        }
    }

    #[test]
    fn non_thrift_bodies_are_protocol_errors() {
        for body in [
            &b""[..],
            b"<html><body>502 Bad Gateway</body></html>",
            b"{\"error\":\"nope\"}",
            &[0x80, 0x01, 0x00, 0x02, 0x7f, 0xff, 0xff, 0xff],
            &[0x80, 0x01, 0x00, 0x09, 0, 0, 0, 0],
        ] {
            assert_protocol_error(decode_reply::<TOpenSessionResp>("OpenSession", 1, body));
            let r = decode_call(body).and_then(|(_, _, a)| a.decode::<TOpenSessionReq>());
            assert_protocol_error(r);
        }
    }

    #[test]
    fn huge_length_claims_are_rejected_without_allocating() {
        // A reply whose success struct starts a list field claiming 2^31-1 i64 elements, and
        // one whose string claims 2 GiB: both must fail fast on a tiny body.
        let header = |o: &mut dyn TOutputProtocol| -> thrift::Result<()> {
            o.write_struct_begin(&TStructIdentifier::new("GetOperationStatus_result"))?;
            o.write_field_begin(&TFieldIdentifier::new("success", TType::Struct, 0))?;
            o.write_struct_begin(&TStructIdentifier::new("TGetOperationStatusResp"))
        };
        let mut list_body = encode_message("GetOperationStatus", TMessageType::Reply, 1, |o| {
            header(o)?;
            o.write_field_begin(&TFieldIdentifier::new("x", TType::List, 77))
        })
        .unwrap();
        list_body.extend_from_slice(&[TType::I64 as u8]);
        list_body.extend_from_slice(&i32::MAX.to_be_bytes());
        assert_protocol_error(decode_reply::<TGetOperationStatusResp>(
            "GetOperationStatus",
            1,
            &list_body,
        ));

        let mut string_body = encode_message("GetOperationStatus", TMessageType::Reply, 1, |o| {
            header(o)?;
            o.write_field_begin(&TFieldIdentifier::new("sqlState", TType::String, 3))
        })
        .unwrap();
        string_body.extend_from_slice(&i32::MAX.to_be_bytes());
        assert_protocol_error(decode_reply::<TGetOperationStatusResp>(
            "GetOperationStatus",
            1,
            &string_body,
        ));
    }

    #[test]
    fn deeply_nested_input_is_a_protocol_error_not_a_stack_overflow() {
        // success -> an unknown struct field nested 100 000 levels deep.
        let mut body = encode_message("GetOperationStatus", TMessageType::Reply, 1, |o| {
            o.write_struct_begin(&TStructIdentifier::new("r"))?;
            o.write_field_begin(&TFieldIdentifier::new("success", TType::Struct, 0))
        })
        .unwrap();
        for _ in 0..100_000 {
            body.extend_from_slice(&[12, 0x03, 0xE7]); // field 999: struct
        }
        assert_protocol_error(decode_reply::<TGetOperationStatusResp>(
            "GetOperationStatus",
            1,
            &body,
        ));
    }

    #[test]
    fn corrupted_replies_never_panic() {
        let good = encode_reply("GetOperationStatus", 1, &status_resp()).unwrap();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let mut body = good.clone();
            for _ in 0..(1 + rng.next() % 4) {
                let i = (rng.next() as usize) % body.len();
                body[i] = rng.next() as u8;
            }
            // Any outcome but a panic is fine; errors must be protocol errors.
            if let Err(e) = decode_reply::<TGetOperationStatusResp>("GetOperationStatus", 1, &body)
            {
                assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
            }
            if let Err(e) =
                decode_call(&body).and_then(|(_, _, a)| a.decode::<TGetOperationStatusReq>())
            {
                assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
            }
        }
    }

    #[test]
    fn call_without_request_field_is_a_protocol_error() {
        let body = encode_message("GetOperationStatus", TMessageType::Call, 1, |o| {
            o.write_struct_begin(&TStructIdentifier::new("GetOperationStatus_args"))?;
            o.write_field_stop()?;
            o.write_struct_end()
        })
        .unwrap();
        let (method, _, args) = decode_call(&body).unwrap();
        assert_eq!(method, "GetOperationStatus");
        assert_protocol_error(args.decode::<TGetOperationStatusReq>());
    }

    #[test]
    fn a_reply_message_is_not_a_call() {
        let body = encode_reply("OpenSession", 1, &open_session_resp()).unwrap();
        assert_protocol_error(decode_call(&body));
    }

    #[test]
    fn call_args_decode_as_the_type_the_method_names() {
        let req = TGetOperationStatusReq::new(
            TOperationHandle::new(
                THandleIdentifier::new(vec![3; 16], vec![4; 16]),
                TOperationType::EXECUTE_STATEMENT,
                true,
                None,
            ),
            None,
        );
        let body = encode_call("GetOperationStatus", i32::MAX, &req).unwrap();
        let (method, seq, args) = decode_call(&body).unwrap();
        assert_eq!((method.as_str(), seq), ("GetOperationStatus", i32::MAX));
        assert_eq!(args.decode::<TGetOperationStatusReq>().unwrap(), req);
        // The same bytes read as an unrelated request type fail cleanly.
        assert_protocol_error(args.decode::<TOpenSessionResp>());
    }
}
