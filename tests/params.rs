//! Statement features through the public API against the mock warehouse: native query
//! parameters, `Session::query` / `Session::execute`, row limits, asynchronous submission and
//! query tags.

mod common;

use chrono::{FixedOffset, NaiveDate, TimeZone, Utc};
use common::{client, count_and_sum_ids};
use databricks_sql::mock::{protocol_version, MockWarehouse, ParameterInfo};
use databricks_sql::{
    params, Decimal, ErrorKind, ExecuteOptions, OperationState, Params, SessionOptions, SqlValue,
};

/// `(name, sql type, value)` of each parameter the mock received for its last statement.
fn received(mock: &MockWarehouse) -> Vec<(Option<String>, Option<String>, Option<String>)> {
    let statements = mock.statements();
    let last = statements.last().expect("a statement was sent");
    last.parameters
        .iter()
        .map(|p: &ParameterInfo| (p.name.clone(), p.sql_type.clone(), p.value.clone()))
        .collect()
}

fn named(
    name: &str,
    sql_type: &str,
    value: Option<&str>,
) -> (Option<String>, Option<String>, Option<String>) {
    (
        Some(name.to_string()),
        Some(sql_type.to_string()),
        value.map(str::to_string),
    )
}

#[tokio::test]
async fn every_parameter_type_reaches_the_server_with_its_sql_type() {
    let (mock, client) = client().await;
    let session = client.open_session().await.unwrap();
    let date = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    let ntz = date.and_hms_micro_opt(13, 14, 15, 16).unwrap();
    let zoned = FixedOffset::east_opt(9 * 3600)
        .unwrap()
        .from_local_datetime(&ntz)
        .unwrap();
    let price: Decimal = "12345678901234567890123456789012.345678".parse().unwrap();
    let p = params![
        b => true,
        i8v => -8_i8,
        i16v => 16_i16,
        i32v => -32_i32,
        i64v => i64::MIN,
        f32v => 0.5_f32,
        f64v => 0.1_f64,
        s => "O'Reilly; DROP TABLE x --",
        owned => String::from("owned"),
        bytes => b"raw".to_vec(),
        price => price,
        day => date,
        local => ntz,
        zoned => zoned,
        utc => Utc.timestamp_opt(0, 0).unwrap(),
        interval => SqlValue::new("INTERVAL DAY TO SECOND", "1 02:03:04"),
    ];
    let batches = session
        .query("SELECT 1", p)
        .await
        .expect("the statement runs");
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    assert_eq!(
        received(&mock),
        vec![
            named("b", "BOOLEAN", Some("true")),
            named("i8v", "TINYINT", Some("-8")),
            named("i16v", "SMALLINT", Some("16")),
            named("i32v", "INT", Some("-32")),
            named("i64v", "BIGINT", Some("-9223372036854775808")),
            named("f32v", "FLOAT", Some("0.5")),
            named("f64v", "DOUBLE", Some("0.1")),
            named("s", "STRING", Some("O'Reilly; DROP TABLE x --")),
            named("owned", "STRING", Some("owned")),
            named("bytes", "BINARY", Some("raw")),
            named(
                "price",
                "DECIMAL(38,6)",
                Some("12345678901234567890123456789012.345678")
            ),
            named("day", "DATE", Some("2024-02-29")),
            named("local", "TIMESTAMP_NTZ", Some("2024-02-29 13:14:15.000016")),
            named(
                "zoned",
                "TIMESTAMP",
                Some("2024-02-29T13:14:15.000016+09:00")
            ),
            named("utc", "TIMESTAMP", Some("1970-01-01T00:00:00+00:00")),
            named("interval", "INTERVAL DAY TO SECOND", Some("1 02:03:04")),
        ]
    );
    // The SQL text is sent as written: values never reach it.
    assert_eq!(mock.statements().last().unwrap().sql, "SELECT 1");
    session.close().await.unwrap();
}

#[tokio::test]
async fn bound_values_come_back_from_the_server_and_unbound_markers_fail() {
    let (_mock, client) = client().await;
    let session = client.open_session().await.unwrap();
    let batches = session
        .query(
            "SELECT :who AS who, :n, :missing_value",
            params![who => "x' OR '1'='1", n => 7_i64, missing_value => None::<i32>],
        )
        .await
        .unwrap();
    let batch = &batches[0];
    let text = |i: usize| {
        let column = batch
            .column(i)
            .as_any()
            .downcast_ref::<databricks_sql::arrow::array::StringArray>()
            .unwrap();
        use databricks_sql::arrow::array::Array;
        (!column.is_null(0)).then(|| column.value(0).to_string())
    };
    assert_eq!(text(0).as_deref(), Some("x' OR '1'='1"));
    assert_eq!(text(1).as_deref(), Some("7"));
    assert_eq!(text(2), None);
    assert_eq!(batch.schema().field(0).name(), "who");
    let err = session
        .query("SELECT ?, ?", params![1_i32])
        .await
        .expect_err("the second marker is unbound");
    assert_eq!(err.sql_state(), Some("42P02"), "{err}");
    session.close().await.unwrap();
}

#[tokio::test]
async fn nulls_keep_their_types_and_positional_parameters_their_order() {
    let (mock, client) = client().await;
    let session = client.open_session().await.unwrap();
    let op = session
        .execute_statement_with(
            "SELECT 1",
            ExecuteOptions::new()
                .bind(None::<i64>)
                .bind(None::<String>)
                .bind(None::<Decimal>)
                .bind(None::<NaiveDate>)
                .bind(SqlValue::void())
                .bind(Some(7_i32)),
        )
        .await
        .unwrap();
    drop(op);
    let statements = mock.statements();
    let params = &statements.last().unwrap().parameters;
    let seen: Vec<_> = params
        .iter()
        .map(|p| {
            (
                p.ordinal,
                p.name.clone(),
                p.sql_type.clone(),
                p.value.clone(),
            )
        })
        .collect();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        seen,
        vec![
            (Some(1), None, s("BIGINT"), None),
            (Some(2), None, s("STRING"), None),
            (Some(3), None, s("DECIMAL(38,18)"), None),
            (Some(4), None, s("DATE"), None),
            (Some(5), None, s("VOID"), None),
            (Some(6), None, s("INT"), s("7")),
        ]
    );
    session.close().await.unwrap();
}

#[tokio::test]
async fn invalid_parameters_fail_before_any_request() {
    let (mock, client) = client().await;
    let session = client.open_session().await.unwrap();
    let cases: Vec<(Params, &str)> = vec![
        (
            Params::new().named("a", 1_i32).positional(2_i32),
            "cannot be mixed",
        ),
        (Params::new().named(":a", 1_i32), "not an identifier"),
        (Params::new().positional(vec![0xff_u8, 0xfe]), "not UTF-8"),
        (
            (0..300).fold(Params::new(), |p, i| p.positional(i)),
            "at most 256",
        ),
    ];
    for (params, expected) in cases {
        let err = session
            .query("SELECT 1", params)
            .await
            .expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        assert!(err.message().contains(expected), "{err}");
        assert_eq!(err.session_id(), Some(session.id()));
    }
    assert_eq!(mock.call_count("ExecuteStatement"), 0);
    session.close().await.unwrap();
}

#[tokio::test]
async fn parameters_below_spark_v8_are_a_clear_error_not_interpolation() {
    let mock = MockWarehouse::builder()
        .server_protocol_version(protocol_version::SPARK_V7)
        .start()
        .await
        .unwrap();
    let client = mock.client_builder().build().unwrap();
    let session = client.open_session().await.unwrap();
    let err = session
        .query("SELECT :x", params![x => 1_i32])
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.message().contains("SPARK V8"), "{err}");
    assert!(err.message().contains("SPARK V7"), "{err}");
    assert_eq!(mock.call_count("ExecuteStatement"), 0);
    // Without parameters the same server runs statements.
    assert_eq!(session.query("SELECT 1", params![]).await.unwrap().len(), 1);
    session.close().await.unwrap();
}

#[tokio::test]
async fn execute_returns_rows_affected_from_the_count_or_the_result_set() {
    let (_mock, client) = client().await;
    let session = client.open_session().await.unwrap();
    let n = session
        .execute("INSERT INTO t VALUES (1), (2), (3)", params![])
        .await
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(
        session
            .execute("SELECT * FROM range(25)", params![])
            .await
            .unwrap(),
        25,
        "a query: the rows it returned"
    );
    assert_eq!(session.execute("SET x = 1", params![]).await.unwrap(), 0);
    session.close().await.unwrap();

    // A real warehouse answers DML with a num_affected_rows result set instead.
    let mock = MockWarehouse::builder()
        .dml_result_set(true)
        .start()
        .await
        .unwrap();
    let client = mock.client_builder().build().unwrap();
    let session = client.open_session().await.unwrap();
    let n = session
        .execute(
            "INSERT INTO t VALUES (:a), (:b)",
            params![a => 1_i32, b => 2_i32],
        )
        .await
        .unwrap();
    assert_eq!(n, 2);
    let batches = session
        .query("UPDATE t SET x = 1", params![])
        .await
        .unwrap();
    assert_eq!(batches[0].schema().field(0).name(), "num_affected_rows");
    session.close().await.unwrap();
}

#[tokio::test]
async fn the_row_limit_is_sent_and_honoured() {
    let (mock, client) = client().await;
    let session = client.open_session().await.unwrap();
    let mut op = session
        .execute_statement_with(
            "SELECT * FROM range(1000)",
            ExecuteOptions::new().row_limit(123),
        )
        .await
        .unwrap();
    let batches = op.fetch_all().await.unwrap();
    assert_eq!(count_and_sum_ids(&batches), (123, 122 * 123 / 2));
    assert_eq!(mock.statements()[0].result_row_limit, Some(123));
    op.close().await.unwrap();
    session.close().await.unwrap();
}

#[tokio::test]
async fn a_statement_submitted_without_waiting_is_polled_to_completion_by_the_caller() {
    let (mock, client) = client().await;
    mock.set_running_polls(3);
    let session = client.open_session().await.unwrap();
    let mut op = session
        .execute_statement_with(
            "SELECT * FROM range(10)",
            ExecuteOptions::new().direct_results(false),
        )
        .await
        .unwrap();
    // The statement id is there at once, before the statement finished.
    assert_eq!(op.id().len(), 36);
    assert_eq!(mock.statements()[0].statement_id, op.id());
    let mut states = Vec::new();
    loop {
        let status = op.status().await.unwrap();
        states.push(status.state);
        if status.state.is_terminal() {
            break;
        }
        assert!(states.len() < 50, "never finished: {states:?}");
    }
    assert_eq!(states.last(), Some(&OperationState::Finished));
    assert!(states.len() > 1, "{states:?}");
    op.wait().await.unwrap();
    assert_eq!(count_and_sum_ids(&op.fetch_all().await.unwrap()), (10, 45));
    op.close().await.unwrap();
    session.close().await.unwrap();
}

#[tokio::test]
async fn query_tags_arrive_escaped_for_the_session_and_each_statement() {
    let (mock, client) = client().await;
    let session = client
        .open_session_with(
            SessionOptions::new()
                .query_tag("team", "data,eng")
                .query_tag(r"cost\center", r"a:b\c")
                .query_tag("flag", ""),
        )
        .await
        .unwrap();
    assert_eq!(
        mock.sessions()[0]
            .configuration
            .get("QUERY_TAGS")
            .map(String::as_str),
        Some(r"team:data\,eng,cost\\center:a\:b\\c,flag")
    );
    let mut op = session
        .execute_statement_with(
            "SELECT 1",
            ExecuteOptions::new().query_tag("job", "nightly:1"),
        )
        .await
        .unwrap();
    op.fetch_all().await.unwrap();
    op.close().await.unwrap();
    // A statement's own tags go in its configuration under `query_tags`.
    let overlay = &mock.statements()[0].conf_overlay;
    assert_eq!(
        overlay.get("query_tags").map(String::as_str),
        Some(r"job:nightly\:1")
    );
    assert!(!overlay.contains_key("QUERY_TAGS"));
    // A statement without tags of its own sends none.
    session.query("SELECT 1", params![]).await.unwrap();
    assert!(mock.statements()[1].conf_overlay.is_empty());
    // A key that could not be read back is refused before anything is sent.
    let err = session
        .execute_statement_with("SELECT 1", ExecuteOptions::new().query_tag("a:b", "x"))
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert_eq!(mock.call_count("ExecuteStatement"), 2);
    let err = client
        .open_session_with(SessionOptions::new().query_tag("", "x"))
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    session.close().await.unwrap();
}

#[tokio::test]
async fn the_initial_catalog_and_schema_reach_the_server() {
    let (mock, client) = client().await;
    let session = client
        .open_session_with(SessionOptions::new().catalog("sales").schema("eu"))
        .await
        .unwrap();
    let info = &mock.sessions()[0];
    assert_eq!(info.catalog.as_deref(), Some("sales"));
    assert_eq!(info.schema.as_deref(), Some("eu"));
    session.close().await.unwrap();
}
