//! The mock's HTTPS: a certificate authority and a server certificate signed by it, made with
//! rcgen when the mock starts (no key is stored anywhere), served with rustls; optionally a
//! client certificate signed by a given authority is required.

use std::sync::Arc;

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use crate::error::{Error, Result};
use crate::http::Pem;

/// What a mock serving HTTPS holds: the acceptor of its connections and its CA certificate.
pub(crate) struct MockTls {
    pub(crate) acceptor: TlsAcceptor,
    /// The PEM of the certificate authority that signed the server certificate.
    pub(crate) ca_pem: String,
}

/// A new certificate authority, a server certificate for `names` (host names or IP addresses)
/// signed by it, and the acceptor serving it; with `client_ca` (PEM), clients must present a
/// certificate signed by one of its certificates.
pub(crate) fn server(names: &[String], client_ca: Option<&[u8]>) -> Result<MockTls> {
    let failed = |e: rcgen::Error| {
        Error::config("the mock could not make its TLS certificates").with_cause(&e)
    };

    let ca_key = KeyPair::generate().map_err(failed)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "databricks-sql mock warehouse CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(failed)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().map_err(failed)?;
    let mut params = CertificateParams::new(names.to_vec()).map_err(failed)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "databricks-sql mock warehouse");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = params.signed_by(&server_key, &issuer).map_err(failed)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config("the mock's TLS configuration is invalid").with_cause(&e))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for certificate in Pem::from_bytes(pem).certificates()? {
                roots.add(certificate).map_err(|e| {
                    Error::config("the client CA certificate of the mock cannot be used")
                        .with_cause(&e)
                })?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .map_err(|e| {
                        Error::config("the mock cannot verify client certificates").with_cause(&e)
                    })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let chain = vec![server_cert.der().clone(), ca_cert.der().clone()];
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| Error::config("the mock's server certificate is unusable").with_cause(&e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(MockTls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        ca_pem: pem_encode("CERTIFICATE", ca_cert.der()),
    })
}

/// `der` as a PEM block labelled `label` (`CERTIFICATE`, `PRIVATE KEY`...), 64 characters a line.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The certificates of a PEM text, for tests that inspect what the mock made.
#[cfg(test)]
pub(crate) fn certificates(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    Pem::from_bytes(pem).certificates().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_encoding_round_trips_through_the_driver_parser() {
        let der: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let pem = pem_encode("CERTIFICATE", &der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        let parsed = certificates(&pem);
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].as_ref(), der.as_slice());
    }

    #[test]
    fn a_client_ca_without_certificates_is_a_config_error() {
        let err = server(&["localhost".to_string()], Some(b"nothing"))
            .err()
            .map(|e| e.kind());
        assert_eq!(err, Some(crate::ErrorKind::Config));
    }
}
