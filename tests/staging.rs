//! Unity Catalog volume staging against the mock warehouse: `PUT`, `GET` and `REMOVE` statements
//! move files between allowed local directories and the mock's volumes, streamed, through the
//! presigned URLs the server answers with; paths outside the allowed directories are refused
//! before any transfer.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::mock;
use databricks_sql::mock::{endpoint, Fault, MockWarehouse};
use databricks_sql::{
    ErrorKind, ExecuteOptions, Session, StagingOperation, StagingSummary, STAGING_CHUNK_SIZE,
};

/// A directory of its own under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "databricks-sql-staging-{label}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// File names in the directory, sorted.
    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .expect("read the directory")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `len` pseudo-random bytes to `path` in pieces, and returns their SHA-256.
fn write_random_file(path: &Path, len: usize) -> Vec<u8> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut piece = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(piece.len());
        for chunk in piece[..n].chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        file.write_all(&piece[..n]).expect("write");
        digest.update(&piece[..n]);
        left -= n;
    }
    file.flush().expect("flush");
    digest.finish().as_ref().to_vec()
}

/// SHA-256 of a file, read in pieces.
fn sha256_of_file(path: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).expect("open");
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut piece = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut piece).expect("read");
        if n == 0 {
            break;
        }
        digest.update(&piece[..n]);
    }
    digest.finish().as_ref().to_vec()
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

/// A session of a client allowed to stage files under `dirs`.
async fn session_allowing(dirs: &[&Path]) -> (MockWarehouse, Session) {
    let (mock, builder) = mock().await;
    let client = builder
        .staging_allowed_local_paths(dirs.iter().copied())
        .build()
        .expect("client builds");
    let session = client.open_session().await.expect("session opens");
    (mock, session)
}

async fn stage(session: &Session, sql: &str) -> databricks_sql::Result<StagingSummary> {
    let mut op = session.execute_statement(sql).await?;
    let summary = op.staging_summary().cloned().expect("a staging summary");
    assert!(
        op.next_batch().await?.is_none(),
        "a staging operation leaves no rows"
    );
    op.close().await?;
    Ok(summary)
}

const VOLUME_FILE: &str = "/Volumes/main/default/files/data.bin";

#[tokio::test]
async fn put_then_get_of_a_50_mb_file_returns_identical_bytes_streamed_in_bounded_pieces() {
    let dir = TempDir::new("roundtrip");
    let len = 50 << 20;
    let source = dir.path().join("upload.bin");
    let written_hash = write_random_file(&source, len);
    let (mock, session) = session_allowing(&[dir.path()]).await;

    let put = stage(
        &session,
        &format!("PUT '{}' INTO '{VOLUME_FILE}' OVERWRITE", source.display()),
    )
    .await
    .expect("PUT succeeds");
    assert_eq!(put.operation, StagingOperation::Put);
    assert_eq!(put.bytes, len as u64);
    // The upload never held more than one piece of the file: its body was read in pieces of
    // at most STAGING_CHUNK_SIZE (256 KiB) as it was sent, against a 50 MiB file.
    assert!(
        put.largest_chunk > 0 && put.largest_chunk <= STAGING_CHUNK_SIZE,
        "largest piece {}",
        put.largest_chunk
    );
    let stored = mock
        .volume_file(VOLUME_FILE)
        .expect("the mock stored the file");
    assert_eq!(sha256(&stored), written_hash);
    // Sent with its length announced up front, not chunked.
    let put_request = mock
        .requests()
        .into_iter()
        .find(|r| r.name == endpoint::STAGING && r.method == "PUT")
        .expect("the PUT reached the mock");
    let header = |name: &str| {
        put_request
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("content-length"), Some(len.to_string()));
    assert_eq!(header("transfer-encoding"), None);

    let target = dir.path().join("download.bin");
    let get = stage(
        &session,
        &format!("GET '{VOLUME_FILE}' TO '{}'", target.display()),
    )
    .await
    .expect("GET succeeds");
    assert_eq!(get.operation, StagingOperation::Get);
    assert_eq!(get.bytes, len as u64);
    // The download was written as it arrived: no piece larger than 1 MiB was held.
    assert!(
        get.largest_chunk > 0 && get.largest_chunk <= 1 << 20,
        "largest piece {}",
        get.largest_chunk
    );
    assert_eq!(sha256_of_file(&target), written_hash);
    assert_eq!(
        dir.entries(),
        ["download.bin", "upload.bin"],
        "no .part file is left"
    );
    assert_eq!(mock.staging_requests_with_authorization(), 0);
}

#[tokio::test]
async fn a_get_cut_short_every_time_leaves_no_file_at_the_target_and_no_part_file() {
    let dir = TempDir::new("cut");
    let (mock, session) = session_allowing(&[dir.path()]).await;
    mock.put_volume_file(VOLUME_FILE, vec![7u8; 3 << 20]);
    mock.inject(Fault::truncated_body().on(endpoint::STAGING).times(10));
    let target = dir.path().join("download.bin");
    let err = session
        .execute_statement(&format!("GET '{VOLUME_FILE}' TO '{}'", target.display()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Staging, "{err}");
    assert!(err.message().contains("GET"), "{err}");
    assert!(!target.exists());
    assert!(dir.entries().is_empty(), "left behind: {:?}", dir.entries());
    // Every attempt of the client's retry policy (3) was made.
    assert_eq!(mock.call_count(endpoint::STAGING), 3);
}

#[tokio::test]
async fn a_get_cut_short_once_is_retried_and_completes() {
    let dir = TempDir::new("retry");
    let (mock, session) = session_allowing(&[dir.path()]).await;
    let contents: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    mock.put_volume_file(VOLUME_FILE, contents.clone());
    mock.inject(Fault::truncated_body().on(endpoint::STAGING));
    let target = dir.path().join("download.bin");
    let get = stage(
        &session,
        &format!("GET '{VOLUME_FILE}' TO '{}'", target.display()),
    )
    .await
    .expect("the second attempt succeeds");
    assert_eq!(get.attempts, 2);
    assert_eq!(std::fs::read(&target).unwrap(), contents);
    assert_eq!(dir.entries(), ["download.bin"]);
}

#[tokio::test]
async fn remove_deletes_the_volume_file_and_a_missing_file_is_success() {
    let (mock, session) = session_allowing(&[]).await;
    mock.put_volume_file(VOLUME_FILE, &b"bye"[..]);
    let removed = stage(&session, &format!("REMOVE '{VOLUME_FILE}'"))
        .await
        .expect("REMOVE succeeds");
    assert_eq!(removed.operation, StagingOperation::Remove);
    assert!(!removed.already_absent);
    assert_eq!(mock.volume_file(VOLUME_FILE), None);

    let again = stage(&session, &format!("REMOVE '{VOLUME_FILE}'"))
        .await
        .expect("REMOVE of a missing file succeeds");
    assert!(again.already_absent);
    assert_eq!(mock.call_count(endpoint::STAGING), 2);
}

#[tokio::test]
async fn local_paths_outside_the_allowed_directories_are_refused_before_any_transfer() {
    let allowed = TempDir::new("allowed");
    let elsewhere = TempDir::new("elsewhere");
    let outside_file = elsewhere.path().join("secret.txt");
    std::fs::write(&outside_file, b"not for upload").unwrap();
    let (mock, session) = session_allowing(&[allowed.path()]).await;
    mock.put_volume_file(VOLUME_FILE, &b"data"[..]);

    let escape = allowed
        .path()
        .join("..")
        .join(elsewhere.path().file_name().unwrap())
        .join("secret.txt");
    let mut refused = vec![
        (
            format!(
                "PUT '{}' INTO '{VOLUME_FILE}' OVERWRITE",
                outside_file.display()
            ),
            outside_file.display().to_string(),
        ),
        (
            format!("PUT '{}' INTO '{VOLUME_FILE}' OVERWRITE", escape.display()),
            escape.display().to_string(),
        ),
        (
            format!(
                "GET '{VOLUME_FILE}' TO '{}'",
                elsewhere.path().join("out.bin").display()
            ),
            elsewhere.path().join("out.bin").display().to_string(),
        ),
        (
            format!(
                "GET '{VOLUME_FILE}' TO '{}'",
                allowed.path().join("..").join("escaped.bin").display()
            ),
            allowed
                .path()
                .join("..")
                .join("escaped.bin")
                .display()
                .to_string(),
        ),
    ];
    #[cfg(unix)]
    {
        let file_link = allowed.path().join("link-to-secret");
        std::os::unix::fs::symlink(&outside_file, &file_link).unwrap();
        let dir_link = allowed.path().join("link-to-elsewhere");
        std::os::unix::fs::symlink(elsewhere.path(), &dir_link).unwrap();
        refused.push((
            format!(
                "PUT '{}' INTO '{VOLUME_FILE}' OVERWRITE",
                file_link.display()
            ),
            file_link.display().to_string(),
        ));
        refused.push((
            format!(
                "GET '{VOLUME_FILE}' TO '{}'",
                dir_link.join("out.bin").display()
            ),
            dir_link.join("out.bin").display().to_string(),
        ));
    }
    for (sql, path) in &refused {
        let err = session.execute_statement(sql).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{sql}: {err}");
        assert!(err.message().contains(path.as_str()), "{sql}: {err}");
    }
    assert_eq!(
        mock.call_count(endpoint::STAGING),
        0,
        "no request reached a presigned URL"
    );
    assert_eq!(mock.volume_file(VOLUME_FILE).as_deref(), Some(&b"data"[..]));
    assert_eq!(elsewhere.entries(), ["secret.txt"]);
}

#[tokio::test]
async fn put_and_get_without_an_allowed_directory_fail_with_a_config_error() {
    let dir = TempDir::new("none");
    let source = dir.path().join("a.txt");
    std::fs::write(&source, b"a").unwrap();
    let (mock, session) = session_allowing(&[]).await;
    mock.put_volume_file(VOLUME_FILE, &b"data"[..]);
    for sql in [
        format!("PUT '{}' INTO '{VOLUME_FILE}' OVERWRITE", source.display()),
        format!(
            "GET '{VOLUME_FILE}' TO '{}'",
            dir.path().join("b.txt").display()
        ),
    ] {
        let err = session.execute_statement(&sql).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        assert!(
            err.message().contains("staging_allowed_local_paths"),
            "{err}"
        );
    }
    assert_eq!(mock.call_count(endpoint::STAGING), 0);
}

#[tokio::test]
async fn a_statement_may_allow_its_own_directories() {
    let dir = TempDir::new("per-statement");
    let source = dir.path().join("a.txt");
    std::fs::write(&source, b"per statement").unwrap();
    let (mock, session) = session_allowing(&[]).await;
    let mut op = session
        .execute_statement_with(
            &format!("PUT '{}' INTO '{VOLUME_FILE}'", source.display()),
            ExecuteOptions::new().staging_allowed_local_paths([dir.path()]),
        )
        .await
        .expect("PUT succeeds");
    assert_eq!(op.staging_summary().map(|s| s.bytes), Some(13));
    op.close().await.unwrap();
    assert_eq!(
        mock.volume_file(VOLUME_FILE).as_deref(),
        Some(&b"per statement"[..])
    );
}

#[tokio::test]
async fn the_servers_refusals_are_server_errors_with_their_sqlstate() {
    let dir = TempDir::new("refusals");
    let source = dir.path().join("a.txt");
    std::fs::write(&source, b"a").unwrap();
    let (mock, session) = session_allowing(&[dir.path()]).await;
    mock.put_volume_file(VOLUME_FILE, &b"existing"[..]);

    let exists = session
        .execute_statement(&format!("PUT '{}' INTO '{VOLUME_FILE}'", source.display()))
        .await
        .unwrap_err();
    assert_eq!(exists.kind(), ErrorKind::Server, "{exists}");
    assert_eq!(exists.sql_state(), Some("42K04"));

    let missing = session
        .execute_statement(&format!(
            "GET '/Volumes/main/default/files/missing.bin' TO '{}'",
            dir.path().join("m.bin").display()
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::Server, "{missing}");
    assert_eq!(missing.sql_state(), Some("42K03"));
    assert_eq!(mock.call_count(endpoint::STAGING), 0);
    assert_eq!(
        mock.volume_file(VOLUME_FILE).as_deref(),
        Some(&b"existing"[..])
    );
}

#[tokio::test]
async fn an_http_error_of_the_presigned_url_names_the_operation_and_status_but_no_secret() {
    let dir = TempDir::new("http-error");
    let source = dir.path().join("a.txt");
    std::fs::write(&source, b"a").unwrap();
    let (mock, session) = session_allowing(&[dir.path()]).await;
    mock.inject(Fault::http_status(500).on(endpoint::STAGING).times(10));
    let err = session
        .execute_statement(&format!(
            "PUT '{}' INTO '{VOLUME_FILE}' OVERWRITE",
            source.display()
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Staging, "{err}");
    assert_eq!(err.http_status(), Some(500));
    let text = err.to_string();
    assert!(text.contains("PUT") && text.contains("500"), "{text}");
    assert!(!text.contains("sig=") && !text.contains("exp="), "{text}");
    assert!(text.contains("REDACTED"), "{text}");
    assert_eq!(
        mock.call_count(endpoint::STAGING),
        3,
        "retried per the policy"
    );
    assert_eq!(mock.volume_file(VOLUME_FILE), None);
}

#[tokio::test]
async fn the_workspace_token_never_reaches_a_presigned_url() {
    let dir = TempDir::new("token");
    let source = dir.path().join("a.txt");
    std::fs::write(&source, b"abc").unwrap();
    let (mock, session) = session_allowing(&[dir.path()]).await;
    stage(
        &session,
        &format!("PUT '{}' INTO '{VOLUME_FILE}'", source.display()),
    )
    .await
    .unwrap();
    stage(
        &session,
        &format!(
            "GET '{VOLUME_FILE}' TO '{}'",
            dir.path().join("b.txt").display()
        ),
    )
    .await
    .unwrap();
    stage(&session, &format!("REMOVE '{VOLUME_FILE}'"))
        .await
        .unwrap();
    assert_eq!(mock.handled_count(endpoint::STAGING), 3);
    assert_eq!(mock.staging_requests_with_authorization(), 0);
    let token = mock.token().to_string();
    for request in mock.requests() {
        if request.name == endpoint::STAGING {
            assert!(
                request.headers.iter().all(|(_, v)| !v.contains(&token)),
                "a staging request carried the token"
            );
        }
    }
}

/// A transport that adds the workspace token to every request, presigned ones included: what
/// a careless driver would do.
#[derive(Debug)]
struct LeakingTransport {
    inner: databricks_sql::http::HyperTransport,
    authorization: http::HeaderValue,
}

#[async_trait::async_trait]
impl databricks_sql::http::HttpTransport for LeakingTransport {
    async fn send(
        &self,
        mut request: databricks_sql::http::HttpRequest,
    ) -> databricks_sql::Result<databricks_sql::http::HttpResponse> {
        request
            .headers
            .insert(http::header::AUTHORIZATION, self.authorization.clone());
        self.inner.send(request).await
    }

    async fn send_streamed(
        &self,
        mut request: databricks_sql::http::HttpRequest,
        upload: Option<databricks_sql::http::BodyStream>,
    ) -> databricks_sql::Result<databricks_sql::http::StreamedResponse> {
        request
            .headers
            .insert(http::header::AUTHORIZATION, self.authorization.clone());
        self.inner.send_streamed(request, upload).await
    }
}

#[tokio::test]
async fn a_presigned_url_refuses_a_request_that_carries_the_token() {
    let dir = TempDir::new("leak");
    let source = dir.path().join("a.txt");
    std::fs::write(&source, b"abc").unwrap();
    let (mock, builder) = mock().await;
    let transport = LeakingTransport {
        inner: databricks_sql::http::HyperTransport::new(&Default::default()).unwrap(),
        authorization: http::HeaderValue::from_str(&format!("Bearer {}", mock.token())).unwrap(),
    };
    let client = builder
        .transport(std::sync::Arc::new(transport))
        .staging_allowed_local_paths([dir.path()])
        .build()
        .unwrap();
    let session = client.open_session().await.unwrap();
    let err = session
        .execute_statement(&format!("PUT '{}' INTO '{VOLUME_FILE}'", source.display()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Staging, "{err}");
    assert_eq!(err.http_status(), Some(400));
    assert!(!err.to_string().contains(mock.token()), "{err}");
    assert_eq!(mock.staging_requests_with_authorization(), 1);
    assert_eq!(mock.volume_file(VOLUME_FILE), None);
}

/// A transport that keeps a copy of every streamed request (the presigned ones).
#[derive(Debug)]
struct RecordingTransport {
    inner: databricks_sql::http::HyperTransport,
    seen: std::sync::Mutex<Vec<databricks_sql::http::HttpRequest>>,
}

#[async_trait::async_trait]
impl databricks_sql::http::HttpTransport for RecordingTransport {
    async fn send(
        &self,
        request: databricks_sql::http::HttpRequest,
    ) -> databricks_sql::Result<databricks_sql::http::HttpResponse> {
        self.inner.send(request).await
    }

    async fn send_streamed(
        &self,
        request: databricks_sql::http::HttpRequest,
        upload: Option<databricks_sql::http::BodyStream>,
    ) -> databricks_sql::Result<databricks_sql::http::StreamedResponse> {
        self.seen.lock().unwrap().push(request.clone());
        self.inner.send_streamed(request, upload).await
    }
}

#[tokio::test]
async fn the_mock_checks_a_presigned_urls_header_signature_and_method() {
    use databricks_sql::http::{HttpRequest, HttpTransport, HyperTransport};

    let dir = TempDir::new("mock-checks");
    let (mock, builder) = mock().await;
    mock.put_volume_file(VOLUME_FILE, &b"volume data"[..]);
    let recorder = std::sync::Arc::new(RecordingTransport {
        inner: HyperTransport::new(&Default::default()).unwrap(),
        seen: Default::default(),
    });
    let client = builder
        .transport(recorder.clone())
        .staging_allowed_local_paths([dir.path()])
        .build()
        .unwrap();
    let session = client.open_session().await.unwrap();
    stage(
        &session,
        &format!(
            "GET '{VOLUME_FILE}' TO '{}'",
            dir.path().join("copy").display()
        ),
    )
    .await
    .unwrap();
    let issued = recorder.seen.lock().unwrap()[0].clone();
    assert!(issued
        .headers
        .contains_key(databricks_sql::mock::STAGING_HEADER));

    let plain = HyperTransport::new(&Default::default()).unwrap();
    let status = |request: HttpRequest| {
        let plain = &plain;
        async move { plain.send(request).await.unwrap().status.as_u16() }
    };
    let again = plain.send(issued.clone()).await.unwrap();
    assert_eq!(again.status.as_u16(), 200);
    assert_eq!(&again.body[..], b"volume data");

    let mut no_header = issued.clone();
    no_header.headers.clear();
    assert_eq!(status(no_header).await, 400);

    let mut other_method = issued.clone();
    other_method.method = http::Method::DELETE;
    assert_eq!(status(other_method).await, 403);

    let mut tampered = issued.clone();
    let url = issued.url.to_string();
    let (path, query) = url.split_once('?').unwrap();
    let query = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some(("sig", _)) => "sig=0000000000000000".to_string(),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&");
    tampered.url = format!("{path}?{query}").parse().unwrap();
    assert_eq!(status(tampered).await, 403);
    assert_eq!(
        mock.volume_file(VOLUME_FILE).as_deref(),
        Some(&b"volume data"[..])
    );
}
