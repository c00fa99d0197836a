//! Which driver errors end a statement for good (terminal) and which may pass on a retry
//! (retryable). Anything else is neither: telemetry then waits for the statement to complete.

use crate::error::{Error, ErrorKind};

/// HTTP statuses after which repeating the request cannot help.
const TERMINAL_STATUSES: [u16; 4] = [400, 401, 403, 404];

/// Classifies a driver [`Error`] for telemetry.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ExceptionClassifier;

impl ExceptionClassifier {
    /// Authentication failures and HTTP 400, 401, 403 and 404.
    pub(crate) fn is_terminal(error: &Error) -> bool {
        error.kind() == ErrorKind::Auth
            || error
                .http_status()
                .is_some_and(|s| TERMINAL_STATUSES.contains(&s))
    }

    /// Connection failures (refused, reset), transport timeouts, and HTTP 429, 500, 502, 503
    /// and 504. Never true for a terminal error.
    pub(crate) fn is_retryable(error: &Error) -> bool {
        if Self::is_terminal(error) {
            return false;
        }
        matches!(error.kind(), ErrorKind::Connect | ErrorKind::Timeout) || error.is_retryable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authentication_errors_are_terminal() {
        let e = Error::new(ErrorKind::Auth, "the OAuth token could not be refreshed");
        assert!(ExceptionClassifier::is_terminal(&e));
        assert!(!ExceptionClassifier::is_retryable(&e));
    }

    #[test]
    fn http_400_401_403_404_are_terminal() {
        for status in [400, 401, 403, 404] {
            let e = Error::from_http_status(status, "x");
            assert!(ExceptionClassifier::is_terminal(&e), "{status}");
            assert!(!ExceptionClassifier::is_retryable(&e), "{status}");
        }
    }

    #[test]
    fn http_429_500_502_503_504_are_retryable() {
        for status in [429, 500, 502, 503, 504] {
            let e = Error::from_http_status(status, "x");
            assert!(ExceptionClassifier::is_retryable(&e), "{status}");
            assert!(!ExceptionClassifier::is_terminal(&e), "{status}");
        }
    }

    #[test]
    fn timeouts_and_refused_or_reset_connections_are_retryable() {
        let timeout = Error::new(ErrorKind::Timeout, "request timed out after 10 s");
        let refused = Error::new(ErrorKind::Connect, "connection refused");
        let reset = Error::new(ErrorKind::Connect, "connection reset by peer");
        for e in [timeout, refused, reset] {
            assert!(ExceptionClassifier::is_retryable(&e), "{e}");
            assert!(!ExceptionClassifier::is_terminal(&e), "{e}");
        }
    }

    #[test]
    fn unknown_errors_are_neither_terminal_nor_retryable() {
        let cases = [
            Error::new(ErrorKind::Server, "Table or view not found"),
            Error::new(ErrorKind::Protocol, "malformed reply"),
            Error::new(ErrorKind::QueryTimeout, "query ran too long"),
            Error::from_http_status(501, "not implemented"),
            Error::from_http_status(418, "teapot"),
            Error::new(ErrorKind::Http, "no status known"),
        ];
        for e in cases {
            assert!(!ExceptionClassifier::is_terminal(&e), "{e}");
            assert!(!ExceptionClassifier::is_retryable(&e), "{e}");
        }
    }
}
