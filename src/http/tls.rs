//! The transport's TLS: where its trusted certificates and client certificate come from
//! ([`Pem`], [`ClientCertificate`]) and the one rustls `ClientConfig` built from
//! [`HttpConfig`], which every request of the transport uses.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::config::{HttpConfig, TlsRoots};
use crate::error::{Error, Result};

/// PEM text (`-----BEGIN CERTIFICATE-----` ...), held in memory or read from a file when the
/// transport is built.
///
/// ```
/// use databricks_sql::http::Pem;
///
/// let from_file = Pem::from_file("/etc/ssl/corporate-ca.pem");
/// let in_memory = Pem::from_bytes(b"-----BEGIN CERTIFICATE-----\n...".to_vec());
/// ```
#[derive(Clone)]
pub struct Pem {
    source: PemSource,
}

#[derive(Clone)]
enum PemSource {
    Bytes(Arc<[u8]>),
    File(PathBuf),
}

impl Pem {
    /// PEM text in memory (from `include_bytes!`, a secrets store...).
    pub fn from_bytes(pem: impl Into<Vec<u8>>) -> Pem {
        Pem {
            source: PemSource::Bytes(pem.into().into()),
        }
    }

    /// A PEM file, read when the transport is built (by
    /// [`ClientBuilder::build`](crate::ClientBuilder::build) or [`HyperTransport::new`](super::HyperTransport::new)).
    /// A file that cannot be read is a [`Config`](crate::ErrorKind::Config) error naming it.
    pub fn from_file(path: impl Into<PathBuf>) -> Pem {
        Pem {
            source: PemSource::File(path.into()),
        }
    }

    /// How errors name this PEM.
    fn describe(&self) -> String {
        match &self.source {
            PemSource::Bytes(_) => "the PEM data given in memory".to_string(),
            PemSource::File(path) => format!("the PEM file {}", path.display()),
        }
    }

    fn read(&self) -> Result<Cow<'_, [u8]>> {
        match &self.source {
            PemSource::Bytes(bytes) => Ok(Cow::Borrowed(bytes)),
            PemSource::File(path) => std::fs::read(path).map(Cow::Owned).map_err(|e| {
                Error::config(format!("{} cannot be read", self.describe())).with_cause(&e)
            }),
        }
    }

    /// Every certificate of the PEM, in order; none is an error.
    pub(crate) fn certificates(&self) -> Result<Vec<CertificateDer<'static>>> {
        let bytes = self.read()?;
        let certificates = CertificateDer::pem_slice_iter(&bytes)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| {
                Error::config(format!("{} is not valid PEM", self.describe())).with_cause(&e)
            })?;
        if certificates.is_empty() {
            return Err(Error::config(format!(
                "{} holds no certificate (no -----BEGIN CERTIFICATE----- block)",
                self.describe()
            )));
        }
        Ok(certificates)
    }

    /// The first private key of the PEM (PKCS#8, PKCS#1 or SEC1). Errors never quote the PEM.
    fn private_key(&self) -> Result<PrivateKeyDer<'static>> {
        let bytes = self.read()?;
        PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| {
            Error::config(format!(
                "{} holds no usable private key (a PKCS#8, PKCS#1 or SEC1 PEM block)",
                self.describe()
            ))
        })
    }
}

/// Shows the file name, or only the length of PEM given in memory (it may be a private key).
impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            PemSource::Bytes(bytes) => write!(f, "Pem::Bytes(<{} bytes>)", bytes.len()),
            PemSource::File(path) => f.debug_tuple("Pem::File").field(path).finish(),
        }
    }
}

/// A client certificate and its private key, presented to a server that asks for one (mutual
/// TLS, e.g. behind a gateway that authenticates clients by certificate).
///
/// ```
/// use databricks_sql::http::{ClientCertificate, Pem};
///
/// let identity = ClientCertificate::new(
///     Pem::from_file("/etc/app/client.pem"),
///     Pem::from_file("/etc/app/client.key"),
/// );
/// ```
#[derive(Debug, Clone)]
pub struct ClientCertificate {
    chain: Pem,
    key: Pem,
}

impl ClientCertificate {
    /// `chain`: the client's certificate first, then any intermediate certificates; `key`: its
    /// private key (PKCS#8, PKCS#1 or SEC1). Both are read and checked when the transport is
    /// built: a key that does not match the certificate is a
    /// [`Config`](crate::ErrorKind::Config) error.
    pub fn new(chain: Pem, key: Pem) -> ClientCertificate {
        ClientCertificate { chain, key }
    }
}

/// The TLS settings of `config` as one rustls `ClientConfig`: the ring provider, TLS 1.2 and 1.3
/// only, the trusted roots plus the extra ones (or no verification at all when asked), and the
/// client certificate when one is set.
pub(super) fn client_config(config: &HttpConfig) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // Read and checked even when verification is off: a wrong path is reported either way.
    let mut extra = Vec::new();
    for pem in &config.extra_root_certificates {
        extra.extend(pem.certificates()?);
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config("the TLS configuration is invalid").with_cause(&e))?;
    let builder = if config.danger_accept_invalid_certificates {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
    } else {
        let mut roots = roots(config.tls_roots, !extra.is_empty())?;
        for (i, certificate) in extra.into_iter().enumerate() {
            roots.add(certificate).map_err(|e| {
                Error::config(format!(
                    "extra root certificate {} cannot be used as a trust anchor",
                    i + 1
                ))
                .with_cause(&e)
            })?;
        }
        builder.with_root_certificates(roots)
    };
    match &config.client_certificate {
        None => Ok(builder.with_no_client_auth()),
        Some(identity) => {
            let chain = identity.chain.certificates()?;
            let key = identity.key.private_key()?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                Error::config(format!(
                    "the client certificate ({}) and private key ({}) cannot be used together",
                    identity.chain.describe(),
                    identity.key.describe()
                ))
                .with_cause(&e)
            })
        }
    }
}

/// The trust store `roots` names; `has_extra`: extra roots will be added to it (then an
/// empty system store is no error: a minimal container with only a corporate CA works).
fn roots(roots: TlsRoots, has_extra: bool) -> Result<rustls::RootCertStore> {
    match roots {
        TlsRoots::Webpki => {
            let _ = has_extra;
            Ok(rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            })
        }
        #[cfg(feature = "native-roots")]
        TlsRoots::Native => native_roots(has_extra),
    }
}

/// The operating system's trusted roots; an error when none can be loaded and no extra root
/// will be added (`has_extra`).
#[cfg(feature = "native-roots")]
fn native_roots(has_extra: bool) -> Result<rustls::RootCertStore> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut store = rustls::RootCertStore::empty();
    let (added, ignored) = store.add_parsable_certificates(loaded.certs);
    if added == 0 && !has_extra {
        return Err(Error::config(format!(
            "no usable root certificate in the operating system's store \
             ({ignored} unparsable, {} load errors)",
            loaded.errors.len()
        )));
    }
    if ignored > 0 || !loaded.errors.is_empty() {
        tracing::debug!(
            added,
            ignored,
            errors = loaded.errors.len(),
            "loaded native root certificates"
        );
    }
    Ok(store)
}

/// The verifier of [`HttpConfig::danger_accept_invalid_certificates`]: any certificate chain
/// for any name is accepted. The handshake signatures are still checked against the
/// certificate presented, so the peer holds that certificate's key, whoever it is.
#[derive(Debug)]
struct AcceptAnyServerCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn self_signed_pem() -> String {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        crate::mock::pem_encode("CERTIFICATE", generated.cert.der())
    }

    #[test]
    fn certificates_are_read_from_bytes_and_files() {
        let pem = format!("{}{}", self_signed_pem(), self_signed_pem());
        let from_bytes = Pem::from_bytes(pem.clone()).certificates().unwrap();
        assert_eq!(from_bytes.len(), 2);
        let dir = std::env::temp_dir().join(format!("dbsql-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ca.pem");
        std::fs::write(&file, &pem).unwrap();
        let from_file = Pem::from_file(&file).certificates().unwrap();
        assert_eq!(from_file, from_bytes);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_file_is_a_config_error_naming_it() {
        let path = std::env::temp_dir().join("dbsql-no-such-dir/none.pem");
        let err = Pem::from_file(&path).certificates().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("none.pem"), "{err}");
        assert!(err.to_string().contains("cannot be read"), "{err}");
    }

    #[test]
    fn pem_without_a_certificate_is_a_config_error() {
        for text in [
            "",
            "not pem at all",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ] {
            let err = Pem::from_bytes(text).certificates().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config, "{text:?}");
            assert!(err.to_string().contains("no certificate"), "{err}");
        }
    }

    #[test]
    fn a_private_key_error_never_quotes_the_pem() {
        let secret = "-----BEGIN CERTIFICATE-----\nU0VDUkVUU0VDUkVU\n-----END CERTIFICATE-----\n";
        let err = Pem::from_bytes(secret).private_key().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(!format!("{err} {err:?}").contains("U0VDUkVU"), "{err:?}");
    }

    #[test]
    fn debug_of_pem_in_memory_shows_only_its_length() {
        let shown = format!(
            "{:?}",
            Pem::from_bytes("-----BEGIN PRIVATE KEY-----\nSECRET")
        );
        assert_eq!(shown, "Pem::Bytes(<34 bytes>)");
        let shown = format!("{:?}", Pem::from_file("/etc/ca.pem"));
        assert!(shown.contains("/etc/ca.pem"), "{shown}");
    }

    #[test]
    fn a_client_key_that_does_not_match_its_certificate_is_a_config_error() {
        let cert = rcgen::generate_simple_self_signed(vec!["client".to_string()]).unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let config = HttpConfig {
            client_certificate: Some(ClientCertificate::new(
                Pem::from_bytes(crate::mock::pem_encode("CERTIFICATE", cert.cert.der())),
                Pem::from_bytes(crate::mock::pem_encode(
                    "PRIVATE KEY",
                    &other.serialize_der(),
                )),
            )),
            ..HttpConfig::default()
        };
        let err = client_config(&config).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("cannot be used together"), "{err}");
    }
}
