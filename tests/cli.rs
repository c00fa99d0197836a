//! The `dbsql` command-line tool (feature `cli`), run as a user would: its table, CSV, JSON
//! lines and Arrow IPC output checked against the same result read through the library, CSV and
//! JSON parsed back by Python's `csv` and `json` modules.

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use databricks_sql::mock::MockWarehouse;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// One row of `mock.rows`: id, name, amount, ts (µs since the epoch), flag.
type Row = (i64, Option<String>, f64, i64, bool);

/// A `dbsql` command with no Databricks configuration from the environment or a profile.
fn dbsql(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dbsql"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", scratch_dir("home"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

async fn run(mut cmd: Command) -> Output {
    cmd.output().await.expect("dbsql runs")
}

/// Run `cmd` with `input` on its standard input.
async fn run_with_stdin(mut cmd: Command, input: &str) -> Output {
    let mut child = cmd.stdin(Stdio::piped()).spawn().expect("dbsql starts");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    child.wait_with_output().await.expect("dbsql runs")
}

/// A directory of this test process under the system's temporary directory.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dbsql-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "dbsql failed ({:?}): {}",
        out.status,
        stderr(out)
    );
}

/// The batches of `sql` as the library reads them from a mock warehouse.
async fn library_batches(sql: &str) -> Vec<RecordBatch> {
    let mock = MockWarehouse::start().await.unwrap();
    let client = mock.client_builder().build().unwrap();
    let session = client.open_session().await.unwrap();
    let batches = session
        .execute_statement(sql)
        .await
        .unwrap()
        .fetch_all()
        .await
        .unwrap();
    session.close().await.unwrap();
    client.close().await.unwrap();
    batches
}

/// The rows of `mock.rows(n)` as the library reads them.
async fn library_rows(n: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    for batch in library_batches(&format!("SELECT * FROM mock.rows({n})")).await {
        let id = batch.column(0).as_primitive::<Int64Type>();
        let name = batch.column(1).as_string::<i32>();
        let amount = batch.column(2).as_primitive::<Float64Type>();
        let ts = batch.column(3).as_primitive::<TimestampMicrosecondType>();
        let flag = batch.column(4).as_boolean();
        for i in 0..batch.num_rows() {
            rows.push((
                id.value(i),
                (!name.is_null(i)).then(|| name.value(i).to_string()),
                amount.value(i),
                ts.value(i),
                flag.value(i),
            ));
        }
    }
    assert_eq!(rows.len(), n);
    rows
}

/// Fail the test, naming the cause, when python3 cannot be run: the CSV and JSON checks parse
/// the output back with it (python3 is part of the development and CI machines).
async fn require_python() {
    let version = Command::new("python3").arg("--version").output().await;
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "python3 is needed to parse the CSV/JSON output back, and `python3 --version` failed: {version:?}"
    );
}

/// Python code that reads `rows` (a list of dicts of strings or JSON values) and prints them as
/// a JSON list of `[id, name, amount, ts in µs, flag]`.
const TO_ROWS: &str = r#"
import datetime, json
def to_row(r, text):
    ts = datetime.datetime.fromisoformat(r["ts"].replace("Z", "+00:00"))
    us = (ts - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)) // datetime.timedelta(microseconds=1)
    name = r["name"]
    flag = r["flag"]
    if text:
        name = None if name == "" else name
        flag = {"true": True, "false": False}[flag]
    return [int(r["id"]), name, float(r["amount"]), us, flag]
"#;

/// Parse `output` with Python: `reader` is the code that makes `records` from `sys.stdin`.
async fn parse_with_python(output: &[u8], reader: &str, text: bool) -> Vec<Row> {
    let script = format!(
        "{TO_ROWS}\nimport sys\n{reader}\nprint(json.dumps([to_row(r, {}) for r in records]))",
        if text { "True" } else { "False" }
    );
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(script)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run_with_stdin(cmd, std::str::from_utf8(output).unwrap()).await;
    assert!(out.status.success(), "python failed: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("python printed JSON rows")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_query_prints_an_aligned_table() {
    let out = run(dbsql(&["--mock", "-e", "SELECT * FROM mock.rows(5)"])).await;
    assert_success(&out);
    let table = String::from_utf8(out.stdout.clone()).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    // Border, header, border, five rows, border; every line as wide as the others.
    assert_eq!(lines.len(), 9, "{table}");
    assert!(lines
        .iter()
        .all(|l| l.chars().count() == lines[0].chars().count()));
    let cells = |line: &str| -> Vec<String> {
        line.trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    assert_eq!(cells(lines[1]), ["id", "name", "amount", "ts", "flag"]);
    for (line, row) in lines[3..8].iter().zip(library_rows(5).await) {
        let cells = cells(line);
        assert_eq!(cells[0], row.0.to_string());
        assert_eq!(cells[1], row.1.unwrap_or_default());
        assert_eq!(cells[2].parse::<f64>().unwrap(), row.2);
        assert_eq!(cells[4], row.4.to_string());
    }
    assert_eq!(stderr(&out).trim(), "5 rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_output_parses_back_with_pythons_csv_module() {
    require_python().await;
    let out = run(dbsql(&[
        "--mock",
        "--format",
        "csv",
        "-e",
        "SELECT * FROM mock.rows(1000)",
    ]))
    .await;
    assert_success(&out);
    let rows = parse_with_python(
        &out.stdout,
        "import csv\nrecords = list(csv.DictReader(sys.stdin))",
        true,
    )
    .await;
    assert_eq!(rows, library_rows(1000).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_output_parses_back_with_pythons_json_module() {
    require_python().await;
    let out = run(dbsql(&[
        "--mock",
        "--format",
        "json",
        "-e",
        "SELECT * FROM mock.rows(1000)",
    ]))
    .await;
    assert_success(&out);
    let rows = parse_with_python(
        &out.stdout,
        "records = [json.loads(line) for line in sys.stdin if line.strip()]",
        false,
    )
    .await;
    let expected = library_rows(1000).await;
    assert!(expected.iter().any(|r| r.1.is_none()), "NULLs are covered");
    assert_eq!(rows, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipc_output_round_trips_through_the_arrow_stream_reader() {
    let sql = "SELECT * FROM mock.all_types";
    let out = run(dbsql(&["--mock", "--format", "ipc", "-e", sql])).await;
    assert_success(&out);
    let reader =
        arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(out.stdout), None).unwrap();
    let schema = reader.schema();
    let read: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    let expected = library_batches(sql).await;
    assert_eq!(schema, expected[0].schema());
    let concat = |b: &[RecordBatch]| arrow_select::concat::concat_batches(&schema, b).unwrap();
    assert_eq!(concat(&read), concat(&expected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_comes_from_a_file_or_standard_input() {
    let by_argument = run(dbsql(&[
        "--mock",
        "--format",
        "csv",
        "-e",
        "SELECT * FROM mock.rows(20)",
    ]))
    .await;
    assert_success(&by_argument);
    let file = scratch_dir("sql").join("query.sql");
    std::fs::write(&file, "SELECT *\nFROM mock.rows(20);\n").unwrap();
    let by_file = run(dbsql(&[
        "--mock",
        "--format",
        "csv",
        "-f",
        file.to_str().unwrap(),
    ]))
    .await;
    assert_success(&by_file);
    let by_stdin = run_with_stdin(
        dbsql(&["--mock", "--format", "csv"]),
        "select * from MOCK.ROWS(20);",
    )
    .await;
    assert_success(&by_stdin);
    assert_eq!(by_file.stdout, by_argument.stdout);
    assert_eq!(by_stdin.stdout, by_argument.stdout);
    assert_eq!(String::from_utf8_lossy(&by_file.stdout).lines().count(), 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_goes_to_a_file_and_a_failed_run_leaves_none() {
    let dir = scratch_dir("out");
    let path = dir.join("rows.csv");
    let out = run(dbsql(&[
        "--mock",
        "--format",
        "csv",
        "-o",
        path.to_str().unwrap(),
        "-e",
        "SELECT * FROM range(3)",
    ]))
    .await;
    assert_success(&out);
    assert!(out.stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "id\n0\n1\n2\n");

    let failed = dir.join("failed.csv");
    let out = run(dbsql(&[
        "--mock",
        "--format",
        "csv",
        "-o",
        failed.to_str().unwrap(),
        "-e",
        "SELECT * FROM no_such_table",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(!failed.exists());
}

/// The whole of standard error is one line `dbsql: error: ...`.
fn assert_one_error_line(out: &Output) -> String {
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("dbsql: error: "), "{err}");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sql_is_one_error_line_and_exit_status_1() {
    let out = run(dbsql(&["--mock", "-e", "SELEC 1 FROM"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = assert_one_error_line(&out);
    assert!(err.contains("42601"), "the SQLSTATE is named: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_are_one_line_and_exit_status_2() {
    for args in [
        &["--mock", "--format", "xml", "-e", "SELECT 1"][..],
        &["--mock", "--no-such-flag"],
        &["--mock", "-e", "  ;  "],
        &["--mock", "-f", "/nonexistent/query.sql"],
        // No warehouse configured.
        &["-e", "SELECT 1"],
    ] {
        let out = run(dbsql(args)).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert_one_error_line(&out);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_without_rows_reports_the_rows_affected() {
    let out = run(dbsql(&[
        "--mock",
        "-e",
        "INSERT INTO t VALUES (1), (2), (3)",
    ]))
    .await;
    assert_success(&out);
    assert!(out.stdout.is_empty());
    assert_eq!(stderr(&out).trim(), "OK, 3 rows affected");
}

/// Without `--mock`, the warehouse and the token come from `DATABRICKS_*`; a refused token
/// is an error that does not show it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_comes_from_the_environment_and_the_token_is_never_printed() {
    let mock = Arc::new(MockWarehouse::start().await.unwrap());
    let configured = |token: &str| {
        let mut cmd = dbsql(&["--format", "csv", "-e", "SELECT * FROM range(2)"]);
        cmd.env(
            "DATABRICKS_HOST",
            format!("http://127.0.0.1:{}", mock.port()),
        )
        .env("DATABRICKS_HTTP_PATH", mock.http_path())
        .env("DATABRICKS_TOKEN", token)
        .env("DATABRICKS_TELEMETRY_DISABLED", "1");
        cmd
    };
    let out = run(configured(mock.token())).await;
    assert_success(&out);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "id\n0\n1\n");
    assert_eq!(mock.open_sessions(), 0, "dbsql closed its session");

    let secret = "dapi-not-the-token-0123456789";
    let out = run(configured(secret)).await;
    assert_eq!(out.status.code(), Some(1));
    let err = assert_one_error_line(&out);
    assert!(err.contains("authentication"), "{err}");
    assert!(!err.contains(secret));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(secret));

    // --host and --http-path override the environment.
    let mut cmd = configured(mock.token());
    cmd.env("DATABRICKS_HOST", "http://127.0.0.1:9")
        .args(["--host", &format!("http://127.0.0.1:{}", mock.port())])
        .args(["--http-path", mock.http_path()]);
    let out = run(cmd).await;
    assert_success(&out);
    mock.shutdown().await;
}

/// Send SIGINT (what Ctrl-C sends) to the running `child`.
#[cfg(unix)]
fn interrupt(child: &tokio::process::Child) {
    let pid = child.id().expect("dbsql is still running");
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -INT {pid} failed: {status:?}");
}

/// Wait until `ready()` holds, failing the test if `child` ends first.
#[cfg(unix)]
async fn wait_until(child: &mut tokio::process::Child, what: &str, ready: impl Fn() -> bool) {
    while !ready() {
        if let Some(status) = child.try_wait().expect("dbsql can be waited for") {
            panic!("dbsql ended ({status:?}) before {what}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Ctrl-C while a large result is written to `-o FILE`: exit status 130, one error line, and
/// the partial file removed.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_writing_a_file_removes_it_and_exits_130() {
    let path = scratch_dir("interrupted").join("rows.csv");
    let _ = std::fs::remove_file(&path);
    let mut child = dbsql(&[
        "--mock",
        "--format",
        "csv",
        "-o",
        path.to_str().unwrap(),
        "-e",
        "SELECT * FROM mock.rows(5000000)",
    ])
    .spawn()
    .expect("dbsql starts");
    wait_until(&mut child, "writing its output file", || {
        std::fs::metadata(&path).is_ok_and(|m| m.len() > 0)
    })
    .await;
    interrupt(&child);
    let out = child.wait_with_output().await.expect("dbsql runs");
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let err = assert_one_error_line(&out);
    assert!(err.contains("interrupted"), "{err}");
    assert!(!path.exists(), "the partial output file was removed");
}

/// Ctrl-C while ExecuteStatement waits for its reply: exit status 130 and the session closed
/// on the server (the default action of SIGINT would end the process with it left open).
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_before_the_statement_returns_closes_the_session_and_exits_130() {
    let mock = MockWarehouse::start().await.unwrap();
    mock.inject(
        databricks_sql::mock::Fault::delay(std::time::Duration::from_secs(60))
            .on("ExecuteStatement"),
    );
    let mut child = dbsql_on(&mock, &["--format", "csv", "-e", "SELECT * FROM range(2)"]);
    wait_until(&mut child, "sending ExecuteStatement", || {
        mock.call_count("ExecuteStatement") == 1
    })
    .await;
    assert_eq!(mock.open_sessions(), 1);
    interrupt(&child);
    let out = child.wait_with_output().await.expect("dbsql runs");
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let err = assert_one_error_line(&out);
    assert!(err.contains("interrupted"), "{err}");
    assert!(out.stdout.is_empty());
    assert_eq!(mock.open_sessions(), 0, "dbsql closed its session");
    mock.shutdown().await;
}

/// `dbsql args...` against `mock` through the `DATABRICKS_*` variables, killed if dropped.
#[cfg(unix)]
fn dbsql_on(mock: &MockWarehouse, args: &[&str]) -> tokio::process::Child {
    let mut cmd = dbsql(args);
    cmd.env(
        "DATABRICKS_HOST",
        format!("http://127.0.0.1:{}", mock.port()),
    )
    .env("DATABRICKS_HTTP_PATH", mock.http_path())
    .env("DATABRICKS_TOKEN", mock.token())
    .env("DATABRICKS_TELEMETRY_DISABLED", "1")
    .kill_on_drop(true);
    cmd.spawn().expect("dbsql starts")
}

/// The output of `child`, which must end well before the 600 s a slowed request takes.
#[cfg(unix)]
async fn output_soon(child: tokio::process::Child) -> Output {
    tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("dbsql did not wait for the slowed request")
        .expect("dbsql runs")
}

/// A fault that holds `method`'s reply for 600 s.
#[cfg(unix)]
fn slow(method: &str) -> databricks_sql::mock::Fault {
    databricks_sql::mock::Fault::delay(std::time::Duration::from_secs(600)).on(method)
}

/// A Ctrl-C while the session is closed after a failed statement: dbsql quits without waiting
/// and reports the statement's failure (exit status 1), not the interruption.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_the_close_after_a_failure_keeps_the_failure() {
    let mock = MockWarehouse::start().await.unwrap();
    mock.inject(slow("CloseSession"));
    let mut child = dbsql_on(&mock, &["-e", "SELECT * FROM no_such_table"]);
    wait_until(&mut child, "sending CloseSession", || {
        mock.call_count("CloseSession") == 1
    })
    .await;
    interrupt(&child);
    let out = output_soon(child).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = assert_one_error_line(&out);
    assert!(err.contains("no_such_table"), "{err}");
    mock.shutdown().await;
}

/// A Ctrl-C while the session is closed after a statement that succeeded: the result is out,
/// dbsql quits without waiting, warns that the session was not closed, and exits 0.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_the_close_after_a_success_warns_and_exits_0() {
    let mock = MockWarehouse::start().await.unwrap();
    mock.inject(slow("CloseSession"));
    let mut child = dbsql_on(&mock, &["--format", "csv", "-e", "SELECT * FROM range(3)"]);
    wait_until(&mut child, "sending CloseSession", || {
        mock.call_count("CloseSession") == 1
    })
    .await;
    interrupt(&child);
    let out = output_soon(child).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        4,
        "header and 3 rows"
    );
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("dbsql: warning: ") && err.contains("without closing"),
        "{err}"
    );
    mock.shutdown().await;
}

/// A second Ctrl-C while dbsql waits for the server to close the session after the first:
/// dbsql quits at once (exit status 130) instead of waiting for the reply.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ctrl_c_quits_without_waiting_for_the_server() {
    let mock = MockWarehouse::start().await.unwrap();
    mock.inject(slow("ExecuteStatement"));
    mock.inject(slow("CloseSession"));
    let mut child = dbsql_on(&mock, &["--format", "csv", "-e", "SELECT * FROM range(2)"]);
    wait_until(&mut child, "sending ExecuteStatement", || {
        mock.call_count("ExecuteStatement") == 1
    })
    .await;
    interrupt(&child);
    wait_until(&mut child, "sending CloseSession", || {
        mock.call_count("CloseSession") == 1
    })
    .await;
    interrupt(&child);
    let out = output_soon(child).await;
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let err = assert_one_error_line(&out);
    assert!(err.contains("quit without waiting"), "{err}");
    assert!(out.stdout.is_empty());
    mock.shutdown().await;
}
