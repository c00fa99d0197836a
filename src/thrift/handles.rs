//! Session and operation handle ids: the text users see for a `THandleIdentifier`, and fresh
//! identifiers for the mock warehouse.

use uuid::Uuid;

#[cfg(any(test, feature = "mock"))]
use crate::thrift::tcli::THandleIdentifier;

/// The text form of a handle's guid: UUID text (`01ef5c2a-...`) for 16 bytes, lowercase hex for
/// any other length (servers send 16; this never fails on what the wire brings).
pub(crate) fn guid_to_string(guid: &[u8]) -> String {
    match Uuid::from_slice(guid) {
        Ok(uuid) => uuid.hyphenated().to_string(),
        Err(_) => guid.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// A new random handle identifier: a version-4 UUID as guid and 16 random bytes as secret.
#[cfg(any(test, feature = "mock"))]
pub(crate) fn new_handle_identifier() -> THandleIdentifier {
    THandleIdentifier::new(
        Uuid::new_v4().as_bytes().to_vec(),
        Uuid::new_v4().as_bytes().to_vec(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_bytes_print_as_uuid_text() {
        let guid = [
            0x01, 0xef, 0x5c, 0x2a, 0x9b, 0x3d, 0x1a, 0x2b, 0x8c, 0x4d, 0x00, 0x11, 0x22, 0x33,
            0x44, 0x55,
        ];
        assert_eq!(
            guid_to_string(&guid),
            "01ef5c2a-9b3d-1a2b-8c4d-001122334455"
        );
    }

    #[test]
    fn other_lengths_print_as_hex() {
        assert_eq!(guid_to_string(&[]), "");
        assert_eq!(guid_to_string(&[0xab, 0x01]), "ab01");
        assert_eq!(guid_to_string(&[0u8; 17]), "00".repeat(17));
    }

    #[test]
    fn new_identifiers_are_random_16_byte_uuids() {
        let a = new_handle_identifier();
        let b = new_handle_identifier();
        assert_eq!(a.guid.len(), 16);
        assert_eq!(a.secret.len(), 16);
        assert_ne!(a.guid, b.guid);
        assert_ne!(a.guid, a.secret);
        let parsed = Uuid::parse_str(&guid_to_string(&a.guid)).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
    }
}
