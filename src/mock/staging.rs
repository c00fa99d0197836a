//! Unity Catalog volume staging in the mock warehouse: `PUT`, `GET` and `REMOVE` statements
//! answered as staging operations with presigned URLs on the mock itself, the volume files held
//! in memory, and the checks a transfer to such a URL must pass.
//!
//! - `PUT '<local>' INTO '/Volumes/...' [OVERWRITE]`: without `OVERWRITE`, onto an existing
//!   file, the statement fails with SQLSTATE `42K04` (`FILE_ALREADY_EXISTS`).
//! - `GET '/Volumes/...' TO '<local>'`: of a missing file, the statement fails with SQLSTATE
//!   `42K03` (`FILE_NOT_FOUND`).
//! - `REMOVE '/Volumes/...'`: always answered; the `DELETE` of a missing file answers 404.
//!
//! A presigned URL is `/staging/<ticket>?exp=<ms>&sig=<signature>`, valid for 15 minutes and
//! for its own HTTP method only; it must be sent with the header
//! [`STAGING_HEADER`](super::STAGING_HEADER) and its value from the row's `headers`, and
//! without `Authorization` (answered 400, before any fault).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use http::Method;

use super::cloudfetch::now_ms;
use super::source::BatchesSource;
use super::state::{Config, Outcome, Shared, SqlError};
use super::STAGING_HEADER;

/// The path prefix of presigned staging URLs: `/staging/<ticket>`.
pub(crate) const PATH_PREFIX: &str = "/staging/";

/// How long a presigned staging URL is valid: 15 minutes.
const URL_LIFETIME_MS: i64 = 15 * 60 * 1000;

/// A staging statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    /// `PUT '<local>' INTO '<volume path>' [OVERWRITE]`.
    Put {
        local: String,
        volume: String,
        overwrite: bool,
    },
    /// `GET '<volume path>' TO '<local>'`.
    Get { volume: String, local: String },
    /// `REMOVE '<volume path>'`.
    Remove { volume: String },
}

/// The transfer one presigned URL allows.
#[derive(Debug, Clone)]
struct Ticket {
    method: Method,
    volume: String,
}

/// The volume files and the presigned URLs issued.
#[derive(Debug, Default)]
pub(crate) struct StagingState {
    /// Volume files by path (`/Volumes/<catalog>/<schema>/<volume>/...`).
    pub(crate) files: HashMap<String, Bytes>,
    tickets: HashMap<String, Ticket>,
    /// Requests to presigned staging URLs that carried an `Authorization` header (all
    /// answered 400).
    pub(crate) with_authorization: usize,
}

#[derive(Debug, PartialEq, Eq)]
enum Tok {
    Word(String),
    Str(String),
}

fn tokenize(sql: &str) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() || c == ';' {
            chars.next();
        } else if c == '\'' || c == '"' {
            chars.next();
            let mut s = String::new();
            let mut closed = false;
            while let Some(c2) = chars.next() {
                if c2 == '\\' {
                    if let Some(escaped) = chars.next() {
                        s.push(escaped);
                    }
                } else if c2 == c {
                    closed = true;
                    break;
                } else {
                    s.push(c2);
                }
            }
            if !closed {
                return Err("a string literal is not closed".into());
            }
            toks.push(Tok::Str(s));
        } else if c.is_ascii_alphanumeric() || c == '_' {
            let mut w = String::new();
            while let Some(&c2) = chars.peek() {
                if c2.is_ascii_alphanumeric() || c2 == '_' {
                    w.push(c2.to_ascii_lowercase());
                    chars.next();
                } else {
                    break;
                }
            }
            toks.push(Tok::Word(w));
        } else {
            return Err(format!("unexpected character `{c}`"));
        }
    }
    Ok(toks)
}

/// A volume path: `/Volumes/<catalog>/<schema>/<volume>/<file path>`.
fn volume_path(path: &str) -> Result<String, String> {
    let parts: Vec<&str> = path.split('/').collect();
    let ok = parts.len() >= 6
        && parts[0].is_empty()
        && parts[1].eq_ignore_ascii_case("volumes")
        && parts[2..]
            .iter()
            .all(|p| !p.is_empty() && *p != "." && *p != "..");
    if ok {
        Ok(path.to_string())
    } else {
        Err(format!(
            "`{path}` is not a volume file path (/Volumes/<catalog>/<schema>/<volume>/<file>)"
        ))
    }
}

/// Recognises a staging statement; `Err` holds what is wrong with one that starts with `PUT`,
/// `GET` or `REMOVE` but does not parse.
pub(crate) fn parse(sql: &str) -> Result<Command, String> {
    let toks = tokenize(sql)?;
    let word = |i: usize| match toks.get(i) {
        Some(Tok::Word(w)) => Some(w.as_str()),
        _ => None,
    };
    let string = |i: usize| match toks.get(i) {
        Some(Tok::Str(s)) => Some(s.clone()),
        _ => None,
    };
    match word(0) {
        Some("put") => match (string(1), word(2), string(3)) {
            (Some(local), Some("into"), Some(volume)) => {
                let overwrite = match (toks.len(), word(4)) {
                    (4, _) => false,
                    (5, Some("overwrite")) => true,
                    _ => return Err("PUT takes only OVERWRITE after its volume path".into()),
                };
                Ok(Command::Put {
                    local,
                    volume: volume_path(&volume)?,
                    overwrite,
                })
            }
            _ => Err("expected PUT '<local file>' INTO '<volume path>' [OVERWRITE]".into()),
        },
        Some("get") => match (string(1), word(2), string(3), toks.len()) {
            (Some(volume), Some("to"), Some(local), 4) => Ok(Command::Get {
                volume: volume_path(&volume)?,
                local,
            }),
            _ => Err("expected GET '<volume path>' TO '<local file>'".into()),
        },
        Some("remove") => match (string(1), toks.len()) {
            (Some(volume), 2) => Ok(Command::Remove {
                volume: volume_path(&volume)?,
            }),
            _ => Err("expected REMOVE '<volume path>'".into()),
        },
        _ => Err("not a staging statement".into()),
    }
}

fn failed(sql_state: &str, message: String, display: String) -> Outcome {
    Outcome::Failed(SqlError {
        sql_state: sql_state.into(),
        message,
        display_message: display,
    })
}

/// What a staging statement produces: its one row of instructions with a fresh presigned URL,
/// or the error a warehouse answers (see the module docs).
pub(crate) fn plan(state: &mut StagingState, config: &Config, command: Command) -> Outcome {
    let (operation, method, volume, local) = match command {
        Command::Put {
            local,
            volume,
            overwrite,
        } => {
            if !overwrite && state.files.contains_key(&volume) {
                return failed(
                    "42K04",
                    format!(
                        "[FILE_ALREADY_EXISTS] The file {volume} already exists. Use PUT ... \
                         OVERWRITE to replace it."
                    ),
                    format!("The file {volume} already exists"),
                );
            }
            ("PUT", Method::PUT, volume, Some(local))
        }
        Command::Get { volume, local } => {
            if !state.files.contains_key(&volume) {
                return failed(
                    "42K03",
                    format!("[FILE_NOT_FOUND] The file {volume} does not exist."),
                    format!("The file {volume} does not exist"),
                );
            }
            ("GET", Method::GET, volume, Some(local))
        }
        Command::Remove { volume } => ("REMOVE", Method::DELETE, volume, None),
    };
    let ticket = uuid::Uuid::new_v4().simple().to_string();
    let exp = now_ms().saturating_add(URL_LIFETIME_MS);
    let sig = sign(config, &ticket, exp);
    let url = format!(
        "{}{PATH_PREFIX}{ticket}?exp={exp}&sig={sig}",
        config.base_url
    );
    state.tickets.insert(ticket, Ticket { method, volume });
    let headers = serde_json::json!({ STAGING_HEADER: config.signer.header_value() }).to_string();
    let field = |name: &str| Field::new(name, DataType::Utf8, true);
    let schema = Arc::new(Schema::new(vec![
        field("operation"),
        field("presignedUrl"),
        field("localFile"),
        field("headers"),
    ]));
    let columns: Vec<arrow_array::ArrayRef> = vec![
        Arc::new(StringArray::from(vec![Some(operation)])),
        Arc::new(StringArray::from(vec![Some(url)])),
        Arc::new(StringArray::from(vec![local])),
        Arc::new(StringArray::from(vec![Some(headers)])),
    ];
    let source = RecordBatch::try_new(schema.clone(), columns)
        .map_err(crate::Error::from)
        .and_then(|batch| BatchesSource::new(schema, vec![batch]));
    match source {
        Ok(source) => Outcome::Rows(Arc::new(source)),
        Err(e) => failed("XX000", e.to_string(), e.to_string()),
    }
}

fn sign(config: &Config, ticket: &str, exp: i64) -> String {
    config.signer.sign(ticket, 0, exp, "staging")
}

/// The answer to a request to a presigned staging URL: an HTTP status and a body.
#[derive(Debug)]
pub(crate) struct Served {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
}

fn refused(status: u16, message: &'static str) -> Served {
    Served {
        status,
        body: Bytes::from_static(message.as_bytes()),
    }
}

/// A request to `/staging/<ticket>?<query>`: the header present and right (else 400), the
/// signature valid and unexpired and the method the URL was issued for (else 403); then the
/// transfer itself (`PUT` stores `body`, `GET` serves the file, `DELETE` removes it; a missing
/// file is 404).
pub(crate) fn serve(
    shared: &Shared,
    ticket: &str,
    method: &Method,
    query: Option<&str>,
    header: Option<&str>,
    body: Bytes,
) -> Served {
    let config = &shared.config;
    if header != Some(config.signer.header_value()) {
        return refused(
            400,
            "MissingRequiredHeader: the presigned URL's headers were not sent",
        );
    }
    let mut exp = None;
    let mut sig = None;
    for pair in query.unwrap_or("").split('&') {
        match pair.split_once('=') {
            Some(("exp", v)) => exp = v.parse::<i64>().ok(),
            Some(("sig", v)) => sig = Some(v),
            _ => {}
        }
    }
    let (Some(exp), Some(sig)) = (exp, sig) else {
        return refused(403, "AuthenticationFailed: the URL is not signed");
    };
    if sign(config, ticket, exp) != sig {
        return refused(
            403,
            "SignatureDoesNotMatch: the URL's signature is not valid",
        );
    }
    if now_ms() > exp {
        return refused(403, "AccessDenied: Request has expired");
    }
    let mut st = shared.lock();
    let staging = &mut st.staging;
    let Some(ticket) = staging.tickets.get(ticket).cloned() else {
        return refused(403, "AccessDenied: the URL was not issued");
    };
    if ticket.method != method {
        return refused(
            403,
            "SignatureDoesNotMatch: the URL was signed for another method",
        );
    }
    let found = |file: Option<Bytes>| match file {
        Some(body) => Served { status: 200, body },
        None => refused(404, "NoSuchKey: the file does not exist"),
    };
    match *method {
        Method::PUT => {
            staging.files.insert(ticket.volume, body);
            Served {
                status: 200,
                body: Bytes::new(),
            }
        }
        Method::GET => found(staging.files.get(&ticket.volume).cloned()),
        _ => match staging.files.remove(&ticket.volume) {
            Some(_) => Served {
                status: 204,
                body: Bytes::new(),
            },
            None => found(None),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_statements_parse_with_quotes_case_and_overwrite() {
        assert_eq!(
            parse("put '/tmp/a.csv' INTO \"/Volumes/c/s/v/a.csv\" overwrite;"),
            Ok(Command::Put {
                local: "/tmp/a.csv".into(),
                volume: "/Volumes/c/s/v/a.csv".into(),
                overwrite: true
            })
        );
        assert_eq!(
            parse("GET '/Volumes/c/s/v/d/a.csv' TO '/tmp/it''s'").ok(),
            None,
            "two adjacent literals are not one path"
        );
        assert_eq!(
            parse("GET '/Volumes/c/s/v/d/a.csv' TO '/tmp/b'"),
            Ok(Command::Get {
                volume: "/Volumes/c/s/v/d/a.csv".into(),
                local: "/tmp/b".into()
            })
        );
        assert_eq!(
            parse("REMOVE '/Volumes/c/s/v/a'"),
            Ok(Command::Remove {
                volume: "/Volumes/c/s/v/a".into()
            })
        );
    }

    #[test]
    fn bad_staging_statements_say_what_is_wrong() {
        assert!(parse("PUT '/tmp/a' INTO '/tmp/b'")
            .unwrap_err()
            .contains("not a volume file path"));
        assert!(parse("REMOVE '/Volumes/c/s/v'").is_err());
        assert!(parse("REMOVE '/Volumes/c/s/v/../x'").is_err());
        assert!(parse("PUT '/tmp/a' INTO '/Volumes/c/s/v/a' REPLACE")
            .unwrap_err()
            .contains("OVERWRITE"));
        assert!(parse("GET '/Volumes/c/s/v/a")
            .unwrap_err()
            .contains("not closed"));
    }
}
