//! Authentication: providers of the `Authorization` header.
//!
//! Every request to the workspace (Thrift calls, telemetry, feature flags, OAuth discovery
//! excepted) asks its provider for the header on each attempt, so a token refreshed meanwhile is
//! the one sent; presigned CloudFetch URLs never get it.

mod oauth;
mod token;
mod u2m;

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use oauth::{parse_discovery_document, read_refusal, read_token_answer};

use async_trait::async_trait;
use http::HeaderValue;

use crate::error::{Error, Result};

pub use oauth::{OAuthM2M, DEFAULT_SCOPE};
pub use token::{AccessToken, TokenProviderAuth, DEFAULT_REFRESH_MARGIN};
pub use u2m::{OAuthU2M, DEFAULT_REDIRECT_PORT, DEFAULT_U2M_CLIENT_ID};

/// Supplies the `Authorization` header for requests to the workspace (never for presigned URLs).
#[async_trait]
pub trait AuthProvider: Send + Sync + std::fmt::Debug + 'static {
    /// The header value to send, e.g. `Bearer <token>`; `None` sends no `Authorization` header.
    async fn authorization(&self) -> Result<Option<HeaderValue>>;
    /// A short name of the method for telemetry, e.g. `pat`.
    fn auth_type(&self) -> &'static str;
    /// The server answered HTTP 401 to a request sent with `rejected`. Return `true` when
    /// [`authorization`](Self::authorization) may now give a header worth one more attempt
    /// (a cached token was dropped and a fresh one can be had); the request is then sent once
    /// more. Default `false`: a fixed credential that was refused stays refused.
    fn rejected(&self, rejected: &HeaderValue) -> bool {
        let _ = rejected;
        false
    }
    /// Whether getting a credential may need a person (a browser login). Background requests
    /// (telemetry, feature flags) then use only [`cached_authorization`](Self::cached_authorization),
    /// so that they never start a login. Default `false`.
    fn interactive(&self) -> bool {
        false
    }
    /// A credential at hand now, without any network round trip or interaction (`None`: none).
    /// Default `None`.
    fn cached_authorization(&self) -> Option<HeaderValue> {
        None
    }
}

/// A personal access token, sent as `Authorization: Bearer <token>`.
#[derive(Clone)]
pub struct TokenAuth {
    header: HeaderValue,
}

impl TokenAuth {
    /// A provider for `token`. Fails when the token is empty or not a valid header value.
    pub fn new(token: &str) -> Result<Self> {
        if token.trim().is_empty() {
            return Err(Error::config("the access token is empty"));
        }
        let mut header = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            Error::config("the access token contains characters not allowed in an HTTP header")
        })?;
        header.set_sensitive(true);
        Ok(TokenAuth { header })
    }
}

impl std::fmt::Debug for TokenAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenAuth(REDACTED)")
    }
}

#[async_trait]
impl AuthProvider for TokenAuth {
    async fn authorization(&self) -> Result<Option<HeaderValue>> {
        Ok(Some(self.header.clone()))
    }
    fn auth_type(&self) -> &'static str {
        "pat"
    }
}

/// The value of an `Authorization: Basic` (or `Proxy-Authorization: Basic`) header for
/// `user` and `password` (RFC 7617: base64 of `user:password` in UTF-8), marked sensitive so
/// that it is hidden when headers are logged. `None` when it would not be a valid header value
/// (never for base64 text; kept for the type's sake).
pub(crate) fn basic_header(user: &str, password: &str) -> Option<HeaderValue> {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// A user name and password, sent as `Authorization: Basic` (the HTTP transport of
/// HiveServer2: Apache Spark Thrift Server, Apache Hive, Kyuubi).
#[derive(Clone)]
pub struct BasicAuth {
    header: HeaderValue,
}

impl BasicAuth {
    /// A provider for `user` and `password`. Fails when the user name is empty or contains a
    /// `:` (which Basic authentication cannot carry).
    pub fn new(user: &str, password: &str) -> Result<Self> {
        if user.is_empty() {
            return Err(Error::config("the Basic authentication user name is empty"));
        }
        if user.contains(':') {
            return Err(Error::config(
                "the Basic authentication user name contains ':', which Basic authentication cannot carry",
            ));
        }
        let header = basic_header(user, password)
            .ok_or_else(|| Error::config("the Basic authentication credentials cannot be sent"))?;
        Ok(BasicAuth { header })
    }
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BasicAuth(REDACTED)")
    }
}

#[async_trait]
impl AuthProvider for BasicAuth {
    async fn authorization(&self) -> Result<Option<HeaderValue>> {
        Ok(Some(self.header.clone()))
    }
    fn auth_type(&self) -> &'static str {
        "basic"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[tokio::test]
    async fn basic_auth_sends_base64_of_user_colon_password_as_a_sensitive_header() {
        let auth = BasicAuth::new("alice", "pä:ss word").unwrap();
        let header = auth.authorization().await.unwrap().unwrap();
        // base64("alice:pä:ss word") with the password in UTF-8.
        assert_eq!(header, "Basic YWxpY2U6cMOkOnNzIHdvcmQ=");
        assert!(header.is_sensitive());
        assert_eq!(auth.auth_type(), "basic");
        let debug = format!("{auth:?} {header:?}");
        assert!(
            !debug.contains("YWxpY2U6") && !debug.contains("ss word"),
            "{debug}"
        );
    }

    #[test]
    fn basic_auth_refuses_an_empty_user_or_one_with_a_colon() {
        for user in ["", "al:ice"] {
            let err = BasicAuth::new(user, "secret-pw").expect_err("refused");
            assert_eq!(err.kind(), ErrorKind::Config, "{user:?}");
            assert!(!err.to_string().contains("secret-pw"));
        }
    }

    #[test]
    fn empty_or_blank_token_is_rejected() {
        for token in ["", "   ", "\t"] {
            let kind = TokenAuth::new(token).err().map(|e| e.kind());
            assert_eq!(kind, Some(ErrorKind::Config), "{token:?}");
        }
    }

    #[test]
    fn token_with_a_line_break_is_rejected() {
        let err = TokenAuth::new("dapi123\r\nX-Evil: 1").err();
        assert_eq!(err.as_ref().map(Error::kind), Some(ErrorKind::Config));
        // The message says what is wrong without quoting the token.
        assert!(!err
            .map(|e| e.to_string())
            .unwrap_or_default()
            .contains("dapi123"));
    }

    #[test]
    fn debug_does_not_print_the_token() {
        let auth = TokenAuth::new("dapi-secret-123").unwrap();
        let text = format!("{auth:?}");
        assert!(!text.contains("dapi-secret-123"), "{text}");
        assert_eq!(text, "TokenAuth(REDACTED)");
    }

    #[tokio::test]
    async fn header_is_a_sensitive_bearer_token() {
        let auth = TokenAuth::new("dapi-secret-123").unwrap();
        let header = auth.authorization().await.unwrap().unwrap();
        assert_eq!(header, "Bearer dapi-secret-123");
        assert!(header.is_sensitive());
        // http hides sensitive values in Debug, e.g. when a HeaderMap is logged.
        assert!(!format!("{header:?}").contains("dapi-secret-123"));
        assert_eq!(auth.auth_type(), "pat");
    }
}
