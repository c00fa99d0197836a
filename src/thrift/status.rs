//! The one place that turns what the server reported into an [`Error`]: a response's `TStatus`
//! ([`check_status`]) and the terminal states of an operation ([`operation_state_error`]).
//!
//! Errors made here carry no session or statement id: callers attach them.

use crate::error::{Error, ErrorKind, Result};
use crate::thrift::tcli::{TGetOperationStatusResp, TOperationState, TStatus, TStatusCode};

/// `Ok` for SUCCESS, SUCCESS_WITH_INFO and STILL_EXECUTING; ERROR is an
/// [`ErrorKind::Server`] error carrying the SQLSTATE, error code, message and display message;
/// INVALID_HANDLE is [`ErrorKind::InvalidHandle`]; a code this driver does not know is
/// [`ErrorKind::Protocol`].
pub(crate) fn check_status(status: &TStatus) -> Result<()> {
    match status.status_code {
        TStatusCode::SUCCESS_STATUS
        | TStatusCode::SUCCESS_WITH_INFO_STATUS
        | TStatusCode::STILL_EXECUTING_STATUS => Ok(()),
        TStatusCode::ERROR_STATUS => Err(server_error(
            ErrorKind::Server,
            "the server reported an error without a message",
            &status.error_message,
            &status.display_message,
            &status.sql_state,
            status.error_code,
        )),
        TStatusCode::INVALID_HANDLE_STATUS => Err(server_error(
            ErrorKind::InvalidHandle,
            "the server does not know this session or operation handle",
            &status.error_message,
            &status.display_message,
            &status.sql_state,
            status.error_code,
        )),
        other => Err(Error::protocol(format!(
            "the server answered with an unknown status code {}",
            other.0
        ))),
    }
}

/// The error a terminal operation state stands for, or `None` while the operation is
/// INITIALIZED, PENDING or RUNNING, once it is FINISHED, and when the reply has no state or
/// a state this driver does not know (peers keep polling then):
/// - ERROR: [`ErrorKind::Server`] with the SQLSTATE, message, display message and error code;
/// - TIMEDOUT: [`ErrorKind::QueryTimeout`]; CANCELED: [`ErrorKind::Cancelled`];
///   CLOSED: [`ErrorKind::Closed`]; UKNOWN: [`ErrorKind::Protocol`].
///
/// The reply's own `status` is not looked at: pass it to [`check_status`] first.
pub(crate) fn operation_state_error(resp: &TGetOperationStatusResp) -> Option<Error> {
    let state = resp.operation_state?;
    let error = match state {
        TOperationState::ERROR_STATE => server_error(
            ErrorKind::Server,
            "the statement failed without an error message",
            &resp.error_message,
            &resp.display_message,
            &resp.sql_state,
            resp.error_code,
        ),
        TOperationState::TIMEDOUT_STATE => server_error(
            ErrorKind::QueryTimeout,
            "the statement ran longer than its query timeout",
            &resp.error_message,
            &resp.display_message,
            &resp.sql_state,
            resp.error_code,
        ),
        TOperationState::CANCELED_STATE => server_error(
            ErrorKind::Cancelled,
            "the statement was cancelled",
            &resp.error_message,
            &resp.display_message,
            &resp.sql_state,
            resp.error_code,
        ),
        TOperationState::CLOSED_STATE => Error::closed("the statement was closed on the server"),
        TOperationState::UKNOWN_STATE => {
            Error::protocol("the server reports the statement in the UNKNOWN state")
        }
        _ => return None,
    };
    Some(error)
}

/// An error of `kind` whose message is the server's message (or its display message, or
/// `fallback`), with the server's SQLSTATE, code and display message attached.
fn server_error(
    kind: ErrorKind,
    fallback: &str,
    message: &Option<String>,
    display_message: &Option<String>,
    sql_state: &Option<String>,
    error_code: Option<i32>,
) -> Error {
    let text = non_empty(message)
        .or_else(|| non_empty(display_message))
        .unwrap_or(fallback);
    Error::new(kind, text)
        .with_sql_state(sql_state.clone())
        .with_error_code(error_code)
        .with_display_message(display_message.clone())
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A `TStatus` of SUCCESS, as a server sends it with a reply (the mock's replies, tests).
#[cfg(any(test, feature = "mock"))]
pub(crate) fn ok_status() -> TStatus {
    TStatus {
        status_code: TStatusCode::SUCCESS_STATUS,
        info_messages: None,
        sql_state: None,
        error_code: None,
        error_message: None,
        display_message: None,
        error_details_json: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: TStatusCode) -> TStatus {
        TStatus {
            status_code: code,
            info_messages: None,
            sql_state: None,
            error_code: None,
            error_message: None,
            display_message: None,
            error_details_json: None,
        }
    }

    fn op_status(state: Option<TOperationState>) -> TGetOperationStatusResp {
        TGetOperationStatusResp {
            status: status(TStatusCode::SUCCESS_STATUS),
            operation_state: state,
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

    #[test]
    fn success_info_and_still_executing_are_ok() {
        assert!(check_status(&status(TStatusCode::SUCCESS_STATUS)).is_ok());
        let mut info = status(TStatusCode::SUCCESS_WITH_INFO_STATUS);
        info.info_messages = Some(vec!["note".into()]);
        assert!(check_status(&info).is_ok());
        assert!(check_status(&status(TStatusCode::STILL_EXECUTING_STATUS)).is_ok());
    }

    #[test]
    fn error_status_is_a_server_error_with_everything_the_server_said() {
        let mut s = status(TStatusCode::ERROR_STATUS);
        s.sql_state = Some("42P01".into());
        s.error_code = Some(1234);
        s.error_message = Some("[TABLE_OR_VIEW_NOT_FOUND] The table `t` cannot be found.".into());
        s.display_message = Some("Table t not found".into());
        let e = check_status(&s).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Server);
        assert_eq!(e.sql_state(), Some("42P01"));
        assert_eq!(e.error_code(), Some(1234));
        assert_eq!(
            e.message(),
            "[TABLE_OR_VIEW_NOT_FOUND] The table `t` cannot be found."
        );
        assert_eq!(e.display_message(), Some("Table t not found"));
        assert!(!e.is_retryable());
    }

    #[test]
    fn error_status_without_message_falls_back_to_display_message_then_to_ours() {
        let mut s = status(TStatusCode::ERROR_STATUS);
        s.display_message = Some("shown to users".into());
        assert_eq!(check_status(&s).unwrap_err().message(), "shown to users");
        s.display_message = None;
        s.error_message = Some("  ".into());
        let e = check_status(&s).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Server);
        assert!(e.message().contains("without a message"), "{e}");
        assert_eq!(e.sql_state(), None);
    }

    #[test]
    fn invalid_handle_status_is_an_invalid_handle_error() {
        let mut s = status(TStatusCode::INVALID_HANDLE_STATUS);
        s.error_message = Some("Invalid SessionHandle".into());
        let e = check_status(&s).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidHandle);
        assert_eq!(e.message(), "Invalid SessionHandle");
        let e = check_status(&status(TStatusCode::INVALID_HANDLE_STATUS)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidHandle);
    }

    #[test]
    fn unknown_status_code_is_a_protocol_error() {
        let e = check_status(&status(TStatusCode(42))).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        assert!(e.message().contains("42"), "{e}");
    }

    #[test]
    fn running_pending_finished_and_missing_states_are_not_errors() {
        for state in [
            Some(TOperationState::INITIALIZED_STATE),
            Some(TOperationState::PENDING_STATE),
            Some(TOperationState::RUNNING_STATE),
            Some(TOperationState::FINISHED_STATE),
            Some(TOperationState(99)),
            None,
        ] {
            assert!(
                operation_state_error(&op_status(state)).is_none(),
                "{state:?}"
            );
        }
    }

    #[test]
    fn error_state_is_a_server_error_with_sql_state_and_messages() {
        let mut r = op_status(Some(TOperationState::ERROR_STATE));
        r.sql_state = Some("22012".into());
        r.error_code = Some(7);
        r.error_message =
            Some("org.apache.spark.SparkArithmeticException: division by zero".into());
        r.display_message = Some("[DIVIDE_BY_ZERO] Division by zero.".into());
        let e = operation_state_error(&r).unwrap();
        assert_eq!(e.kind(), ErrorKind::Server);
        assert_eq!(e.sql_state(), Some("22012"));
        assert_eq!(e.error_code(), Some(7));
        assert!(e.message().contains("division by zero"), "{e}");
        assert_eq!(
            e.display_message(),
            Some("[DIVIDE_BY_ZERO] Division by zero.")
        );
    }

    #[test]
    fn terminal_states_map_to_their_kinds() {
        let kind = |s| operation_state_error(&op_status(Some(s))).map(|e| e.kind());
        assert_eq!(
            kind(TOperationState::TIMEDOUT_STATE),
            Some(ErrorKind::QueryTimeout)
        );
        assert_eq!(
            kind(TOperationState::CANCELED_STATE),
            Some(ErrorKind::Cancelled)
        );
        assert_eq!(kind(TOperationState::CLOSED_STATE), Some(ErrorKind::Closed));
        assert_eq!(
            kind(TOperationState::UKNOWN_STATE),
            Some(ErrorKind::Protocol)
        );
        assert_eq!(kind(TOperationState::ERROR_STATE), Some(ErrorKind::Server));
    }

    #[test]
    fn timed_out_state_keeps_the_servers_message() {
        let mut r = op_status(Some(TOperationState::TIMEDOUT_STATE));
        r.error_message = Some("Query exceeded the 10 s timeout".into());
        let e = operation_state_error(&r).unwrap();
        assert!(e.is_timeout());
        assert_eq!(e.message(), "Query exceeded the 10 s timeout");
    }
}
