//! The Thrift side of the mock warehouse (temporary: answers every call with an application
//! exception until the generated types land).

use std::sync::Arc;

use bytes::Bytes;
use thrift::protocol::{
    TBinaryInputProtocol, TBinaryOutputProtocol, TInputProtocol, TMessageIdentifier, TMessageType,
    TOutputProtocol,
};

use super::state::Shared;

/// The method name of a strict binary Thrift call, or `None` when `body` is not one.
pub(crate) fn method_name(body: &[u8]) -> Option<String> {
    let mut p = TBinaryInputProtocol::new(body, true);
    let id = p.read_message_begin().ok()?;
    matches!(id.message_type, TMessageType::Call | TMessageType::OneWay).then_some(id.name)
}

/// Run one Thrift call and encode its reply.
pub(crate) async fn handle(_shared: &Arc<Shared>, body: Bytes) -> Vec<u8> {
    let mut p = TBinaryInputProtocol::new(&body[..], true);
    let (name, seq) = match p.read_message_begin() {
        Ok(id) => (id.name, id.sequence_number),
        Err(_) => (String::new(), 0),
    };
    let mut out = Vec::new();
    {
        let mut o = TBinaryOutputProtocol::new(&mut out, true);
        let _ = o.write_message_begin(&TMessageIdentifier::new(
            name.clone(),
            TMessageType::Exception,
            seq,
        ));
        let e = thrift::ApplicationError::new(
            thrift::ApplicationErrorKind::UnknownMethod,
            format!("unknown method {name}"),
        );
        let _ = thrift::Error::write_application_error_to_out_protocol(&e, &mut o);
        let _ = o.write_message_end();
        let _ = o.flush();
    }
    out
}
