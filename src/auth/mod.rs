//! Authentication: providers of the `Authorization` header. A personal access token today;
//! OAuth M2M/U2M providers implement the same trait.

use async_trait::async_trait;
use http::HeaderValue;

use crate::error::{Error, Result};

/// Supplies the `Authorization` header for requests to the workspace (never for presigned URLs).
#[async_trait]
pub trait AuthProvider: Send + Sync + std::fmt::Debug + 'static {
    /// The header value to send, e.g. `Bearer <token>`; `None` sends no `Authorization` header.
    async fn authorization(&self) -> Result<Option<HeaderValue>>;
    /// A short name of the method for telemetry, e.g. `pat`.
    fn auth_type(&self) -> &'static str;
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
