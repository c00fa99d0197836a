//! The session pool (feature `pool`) against the mock warehouse: sessions the server closed
//! are replaced, the pool never holds more sessions than its size, closing it closes them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use databricks_sql::mock::MockWarehouse;
use databricks_sql::pool::SessionPool;
use databricks_sql::{DBSQLClient, ErrorKind, SessionOptions};

async fn mock_and_client() -> (MockWarehouse, DBSQLClient) {
    let mock = MockWarehouse::start().await.unwrap();
    let client = mock
        .client_builder()
        .telemetry_enabled(false)
        .build()
        .unwrap();
    (mock, client)
}

/// `SELECT 1` on `session` answers 1.
async fn select_one(session: &databricks_sql::Session) -> databricks_sql::Result<()> {
    let batches = session.query("SELECT 1", Default::default()).await?;
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    Ok(())
}

#[tokio::test]
async fn a_session_the_server_closed_is_replaced_by_a_working_one() {
    let (mock, client) = mock_and_client().await;
    let pool = SessionPool::builder(client.clone())
        .max_size(1)
        .build()
        .unwrap();

    let first = {
        let session = pool.get().await.unwrap();
        select_one(&session).await.unwrap();
        session.id().to_string()
    };
    // Checked out again: the same session, after one health check.
    mock.reset_call_counts();
    {
        let session = pool.get().await.unwrap();
        assert_eq!(session.id(), first);
        assert_eq!(mock.call_count("GetInfo"), 1, "one GetInfo per checkout");
    }

    assert!(mock.expire_session(&first));
    let session = pool.get().await.unwrap();
    assert_ne!(session.id(), first);
    select_one(&session).await.unwrap();
    assert_eq!(mock.open_sessions(), 1);
    assert_eq!(mock.sessions().len(), 2);
    drop(session);

    pool.close().await.unwrap();
    client.close().await.unwrap();
    assert_eq!(mock.open_sessions(), 0);
    // The expired session was not closed again: its CloseSession would have been refused.
    assert_eq!(mock.call_count("CloseSession"), 1);
}

#[tokio::test]
async fn a_session_closed_by_its_user_is_replaced() {
    let (mock, client) = mock_and_client().await;
    let pool = SessionPool::builder(client.clone())
        .max_size(2)
        .build()
        .unwrap();
    let first = pool.get().await.unwrap();
    let first_id = first.id().to_string();
    first.close().await.unwrap();
    drop(first);
    let second = pool.get().await.unwrap();
    assert_ne!(second.id(), first_id);
    select_one(&second).await.unwrap();
    assert_eq!(pool.status().size, 1);
    drop(second);
    pool.close().await.unwrap();
    client.close().await.unwrap();
    assert_eq!(mock.open_sessions(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_checkouts_never_exceed_the_pool_size() {
    const SIZE: usize = 3;
    const TASKS: usize = 24;
    let (mock, client) = mock_and_client().await;
    let pool = SessionPool::builder(client.clone())
        .max_size(SIZE)
        .session_options(SessionOptions::new().schema("pooled"))
        .build()
        .unwrap();
    let checked_out = Arc::new(AtomicUsize::new(0));
    let most_checked_out = Arc::new(AtomicUsize::new(0));
    let most_open_on_server = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (pool, mock) = (pool.clone(), mock.clone());
        let (checked_out, most_checked_out, most_open_on_server) = (
            checked_out.clone(),
            most_checked_out.clone(),
            most_open_on_server.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let session = pool.get().await.unwrap();
            let now = checked_out.fetch_add(1, Ordering::SeqCst) + 1;
            most_checked_out.fetch_max(now, Ordering::SeqCst);
            most_open_on_server.fetch_max(mock.open_sessions(), Ordering::SeqCst);
            // A statement that yields to the other tasks while the session is held.
            let batches = session
                .query("SELECT current_schema()", Default::default())
                .await
                .unwrap();
            assert_eq!(batches[0].num_rows(), 1);
            checked_out.fetch_sub(1, Ordering::SeqCst);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(most_checked_out.load(Ordering::SeqCst) <= SIZE);
    assert!(most_open_on_server.load(Ordering::SeqCst) <= SIZE);
    let opened = mock.sessions();
    assert!(
        !opened.is_empty() && opened.len() <= SIZE,
        "{}",
        opened.len()
    );
    assert!(opened.iter().all(|s| s.schema.as_deref() == Some("pooled")));
    assert_eq!(mock.statements().len(), TASKS);
    let status = pool.status();
    assert_eq!(status.max_size, SIZE);
    assert_eq!(status.size, opened.len());
    assert_eq!(status.available, opened.len());
    assert_eq!(status.waiting, 0);

    pool.close().await.unwrap();
    assert_eq!(mock.open_sessions(), 0);
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_full_pool_fails_after_its_wait_timeout_and_serves_again_once_a_session_returns() {
    let (mock, client) = mock_and_client().await;
    let pool = SessionPool::builder(client.clone())
        .max_size(2)
        .wait_timeout(Some(Duration::ZERO))
        .build()
        .unwrap();
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    let e = pool.get().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(e.message().contains("wait timeout"), "{e}");
    assert_eq!(mock.open_sessions(), 2);
    let a_id = a.id().to_string();
    drop(a);
    let again = pool.get().await.unwrap();
    assert_eq!(again.id(), a_id);
    drop((again, b));
    pool.close().await.unwrap();
    client.close().await.unwrap();
}

#[tokio::test]
async fn closing_the_pool_closes_its_sessions_and_refuses_checkouts() {
    let (mock, client) = mock_and_client().await;
    let pool = SessionPool::builder(client.clone())
        .max_size(3)
        .build()
        .unwrap();
    let (a, b, c) = (
        pool.get().await.unwrap(),
        pool.get().await.unwrap(),
        pool.get().await.unwrap(),
    );
    drop((a, b));
    assert_eq!(mock.open_sessions(), 3);
    pool.close().await.unwrap();
    assert!(pool.is_closed());
    // The two idle sessions are closed; the one still checked out stays usable until returned.
    assert_eq!(mock.open_sessions(), 1);
    select_one(&c).await.unwrap();
    assert_eq!(pool.get().await.unwrap_err().kind(), ErrorKind::Closed);
    drop(c);
    // Returned after the close: closed in the background, which the client's close awaits.
    client.close().await.unwrap();
    assert_eq!(mock.open_sessions(), 0);
}

#[tokio::test]
async fn a_session_that_cannot_be_opened_is_the_error_of_get() {
    let mock = MockWarehouse::start().await.unwrap();
    let client = mock
        .client_builder()
        .token("not-the-token")
        .telemetry_enabled(false)
        .build()
        .unwrap();
    let pool = SessionPool::builder(client.clone()).build().unwrap();
    let e = pool.get().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert_eq!(pool.status().size, 0);
    assert!(SessionPool::builder(client.clone())
        .max_size(0)
        .build()
        .is_err());
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_detached_session_leaves_the_pool() {
    let (mock, client) = mock_and_client().await;
    let pool = SessionPool::builder(client.clone())
        .max_size(1)
        .build()
        .unwrap();
    let session = pool.get().await.unwrap().detach();
    assert_eq!(pool.status().size, 0);
    let other = pool.get().await.unwrap();
    assert_ne!(other.id(), session.id());
    session.close().await.unwrap();
    drop(other);
    pool.close().await.unwrap();
    client.close().await.unwrap();
    assert_eq!(mock.open_sessions(), 0);
}
