//! `dbsql`: run one SQL statement on a Databricks SQL warehouse (or the embedded mock warehouse)
//! and write its result as an aligned table, CSV, JSON lines or an Arrow IPC stream.
//!
//! Built with the cargo feature `cli`:
//! `cargo run --features cli --bin dbsql -- --mock -e "SELECT * FROM mock.rows(5)"`.

mod output;

use std::future::Future;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use databricks_sql::mock::MockWarehouse;
use databricks_sql::{ClientBuilder, DBSQLClient, ErrorKind};

use crate::output::{Format, Progress, ResultWriter};

/// Run a SQL statement on a Databricks SQL warehouse and print its result.
///
/// The warehouse and the credentials come from the Databricks unified configuration, as for
/// the library's `ClientBuilder::from_env()`: the DATABRICKS_HOST, DATABRICKS_HTTP_PATH,
/// DATABRICKS_TOKEN (or DATABRICKS_CLIENT_ID / DATABRICKS_CLIENT_SECRET, DATABRICKS_AUTH_TYPE)
/// environment variables, then the profile DATABRICKS_CONFIG_PROFILE (default DEFAULT) of
/// ~/.databrickscfg (or DATABRICKS_CONFIG_FILE). --profile, --host and --http-path override
/// them. --mock runs against an embedded mock warehouse instead (no configuration needed).
///
/// One statement per run: the SQL comes from --execute, else from --file, else from standard
/// input; a trailing `;` is ignored. Statements separated by `;` are not split.
///
/// The table format reads the whole result before printing it (column widths depend on every
/// row); csv, json and ipc write each batch as it arrives. On a terminal, a progress line on
/// standard error counts the rows and the bytes of Arrow data read.
///
/// Exit status: 0 on success, 1 when the statement, the connection or the output failed, 2 for
/// a usage or configuration error (bad arguments, no SQL, no warehouse configured), 130 when
/// interrupted (the statement is cancelled on the server; a second Ctrl-C quits without waiting
/// for the server).
#[derive(Debug, Parser)]
#[command(name = "dbsql", version, about, long_about, max_term_width = 100)]
struct Args {
    /// The SQL statement to run.
    #[arg(
        short = 'e',
        long = "execute",
        value_name = "SQL",
        conflicts_with = "file"
    )]
    execute: Option<String>,

    /// Read the SQL statement from FILE.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    format: FormatArg,

    /// Write the result to FILE instead of standard output (removed again if the run fails).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,

    /// Run against an embedded mock warehouse (built-in statements such as `SELECT 1`,
    /// `SELECT * FROM range(N)`, `SELECT * FROM mock.rows(N)`, `SELECT * FROM mock.all_types`).
    #[arg(long, conflicts_with_all = ["profile", "host", "http_path"])]
    mock: bool,

    /// The profile of ~/.databrickscfg (or DATABRICKS_CONFIG_FILE) to read, under the
    /// DATABRICKS_* environment variables (default: DATABRICKS_CONFIG_PROFILE, else DEFAULT).
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,

    /// The workspace host (overrides DATABRICKS_HOST and the profile), e.g.
    /// adb-123.4.azuredatabricks.net.
    #[arg(long, value_name = "HOST")]
    host: Option<String>,

    /// The warehouse's HTTP path (overrides DATABRICKS_HTTP_PATH and the profile), e.g.
    /// /sql/1.0/warehouses/abc.
    #[arg(long = "http-path", value_name = "PATH")]
    http_path: Option<String>,

    /// Never show the progress line.
    #[arg(long)]
    no_progress: bool,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    /// An aligned table (arrow's pretty printer); the whole result is read first.
    Table,
    /// CSV with a header line (RFC 4180 quoting; NULL is an empty field).
    Csv,
    /// JSON lines: one object per row, NULLs written as `null`.
    Json,
    /// An Arrow IPC stream (schema, then the batches).
    Ipc,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Table => Format::Table,
            FormatArg::Csv => Format::Csv,
            FormatArg::Json => Format::Json,
            FormatArg::Ipc => Format::Ipc,
        }
    }
}

/// Why a run failed: what to print and the exit status.
#[derive(Debug)]
struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    /// A usage or configuration error (exit status 2).
    fn usage(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            code: 2,
        }
    }

    /// A failure at run time (exit status 1).
    fn run(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            code: 1,
        }
    }

    /// An interruption by Ctrl-C (exit status 130).
    fn interrupted(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            code: INTERRUPTED,
        }
    }

    /// A driver error: configuration errors are usage errors, the rest run-time failures.
    fn driver(error: databricks_sql::Error) -> Self {
        let message = error_chain(&error);
        if error.kind() == ErrorKind::Config {
            Failure::usage(message)
        } else {
            Failure::run(message)
        }
    }
}

/// An error and its causes, on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    one_line(&text)
}

/// `text` with its line breaks (and runs of white space around them) made single spaces.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The exit status of an interrupted run (128 + SIGINT).
const INTERRUPTED: u8 = 130;

/// Ctrl-C (SIGINT), listened for from [`Interrupt::listen`] on: from then on the signal no
/// longer ends the process. The first one stops the work [`unless_interrupted`] runs; a later
/// one (or a first one during the closes at the end of a run) stops the clean-up that
/// [`unless_interrupted_again`] runs, and every clean-up after it, so that a server slow to
/// answer never holds the user.
struct Interrupt {
    /// How many Ctrl-Cs came, counted by a listener task that runs from [`listen`](Self::listen)
    /// on (so that none is missed however busy the run is).
    count: tokio::sync::watch::Receiver<u64>,
    /// How many of them were taken, by [`fired`](Self::fired) or [`next`](Self::next).
    taken: u64,
    /// A Ctrl-C stopped a clean-up: skip the others.
    quit: bool,
}

impl Interrupt {
    /// Start listening for Ctrl-C now (inside the runtime). When the handler cannot be
    /// installed, Ctrl-C keeps its default action (it ends the process) and none is counted.
    fn listen() -> Self {
        let (tx, count) = tokio::sync::watch::channel(0u64);
        #[cfg(unix)]
        let signals = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
        #[cfg(windows)]
        let signals = tokio::signal::windows::ctrl_c();
        match signals {
            Ok(mut signals) => {
                tokio::spawn(async move {
                    while signals.recv().await.is_some() {
                        tx.send_modify(|n| *n += 1);
                    }
                });
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot listen for Ctrl-C: it ends the process");
            }
        }
        Interrupt {
            count,
            taken: 0,
            quit: false,
        }
    }

    /// Wait for a Ctrl-C not yet taken, and take it. Never resolves when the listener is gone.
    async fn next(&mut self) {
        let taken = self.taken;
        let counted = match self.count.wait_for(|&n| n > taken).await {
            Ok(n) => *n,
            Err(_) => std::future::pending().await,
        };
        self.taken = counted;
    }

    /// Wait for the first Ctrl-C; at once when it already came.
    async fn fired(&mut self) {
        if self.taken == 0 {
            self.next().await;
        }
    }
}

/// The output of `work`, or `None` when Ctrl-C comes first (`work` is then dropped).
async fn unless_interrupted<T>(
    interrupt: &mut Interrupt,
    work: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        biased;
        () = interrupt.fired() => None,
        out = work => Some(out),
    }
}

/// The output of the clean-up `work` (cancelling, closing), or `None` when a Ctrl-C not taken
/// yet comes first, or one already stopped an earlier clean-up: the user does not want to wait
/// for the server.
async fn unless_interrupted_again<T>(
    interrupt: &mut Interrupt,
    work: impl Future<Output = T>,
) -> Option<T> {
    if interrupt.quit {
        return None;
    }
    let out = tokio::select! {
        biased;
        () = interrupt.next() => None,
        out = work => Some(out),
    };
    interrupt.quit = out.is_none();
    out
}

/// The failure of an interrupted run whose clean-up a second Ctrl-C stopped.
fn quit_without_waiting() -> Failure {
    Failure::interrupted("interrupted: quit without waiting for the server")
}

/// After a run that succeeded, a Ctrl-C stopped the closes: said, not a failure.
fn warn_not_closed() {
    let _ = writeln!(
        std::io::stderr(),
        "dbsql: warning: interrupted: quit without closing the session"
    );
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => return clap_exit(e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return report(Failure::run(format!("cannot start the runtime: {e}"))),
    };
    let outcome = runtime.block_on(run(args));
    // Whatever still runs (a host name lookup on a blocking thread, say) is not waited for.
    runtime.shutdown_background();
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(failure) => report(failure),
    }
}

/// `--help` and `--version` print as clap writes them; any other argument error is one line
/// and exit status 2.
fn clap_exit(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind as Kind;
    match e.kind() {
        Kind::DisplayHelp | Kind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        _ => {
            let rendered = e.render().to_string();
            let first = rendered
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            report(Failure::usage(format!("{first} (see dbsql --help)")))
        }
    }
}

fn report(failure: Failure) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "dbsql: error: {}", failure.message);
    ExitCode::from(failure.code)
}

/// The SQL to run: `--execute`, else `--file`, else standard input; trimmed, a trailing `;`
/// removed.
fn read_sql(args: &Args) -> Result<String, Failure> {
    let text = match (&args.execute, &args.file) {
        (Some(sql), _) => sql.clone(),
        (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
            Failure::usage(format!("cannot read the SQL file {}: {e}", path.display()))
        })?,
        (None, None) => {
            let mut stdin = std::io::stdin();
            if stdin.is_terminal() {
                return Err(Failure::usage(
                    "no SQL given: use -e \"SQL\", -f FILE, or pipe the statement to standard input",
                ));
            }
            let mut text = String::new();
            stdin
                .read_to_string(&mut text)
                .map_err(|e| Failure::usage(format!("cannot read standard input: {e}")))?;
            text
        }
    };
    let sql = text.trim().trim_end_matches(';').trim_end();
    if sql.is_empty() {
        return Err(Failure::usage("the SQL statement is empty"));
    }
    Ok(sql.to_string())
}

/// The client the arguments ask for, and the mock warehouse it talks to for `--mock`.
async fn connect(args: &Args) -> Result<(DBSQLClient, Option<MockWarehouse>), Failure> {
    if args.mock {
        let mock = MockWarehouse::start().await.map_err(Failure::driver)?;
        let client = mock
            .client_builder()
            .telemetry_enabled(false)
            .build()
            .map_err(Failure::driver)?;
        return Ok((client, Some(mock)));
    }
    let mut builder = match &args.profile {
        Some(profile) => ClientBuilder::from_profile(profile),
        None => ClientBuilder::from_env(),
    };
    if let Some(host) = &args.host {
        builder = builder.host(host);
    }
    if let Some(path) = &args.http_path {
        builder = builder.http_path(path);
    }
    let client = builder
        .user_agent_entry("dbsql")
        .build()
        .map_err(Failure::driver)?;
    Ok((client, None))
}

async fn run(args: Args) -> Result<u8, Failure> {
    let sql = read_sql(&args)?;
    let mut interrupt = Interrupt::listen();
    let (client, mock) = unless_interrupted(&mut interrupt, connect(&args))
        .await
        .unwrap_or_else(|| Err(Failure::interrupted("interrupted before connecting")))?;
    let progress = if args.no_progress || !std::io::stderr().is_terminal() {
        Progress::hidden()
    } else {
        Progress::on_stderr()
    };
    let result = execute(&client, &sql, &args, &progress, &mut interrupt).await;
    progress.clear();
    // Closing frees the session on the server; its failure matters less than the statement's.
    let closing = async {
        let closed = client.close().await;
        if let Some(mock) = mock {
            mock.shutdown().await;
        }
        closed
    };
    let Some(closed) = unless_interrupted_again(&mut interrupt, closing).await else {
        // The run's own outcome stands; only the closes were skipped.
        if result.is_ok() {
            warn_not_closed();
        }
        return result;
    };
    let code = result?;
    if let Err(e) = closed {
        let _ = writeln!(
            std::io::stderr(),
            "dbsql: warning: closing the session failed: {}",
            error_chain(&e)
        );
    }
    Ok(code)
}

/// Run `sql` in a new session and write its result where the arguments say. On Ctrl-C, what
/// runs is stopped: the statement is cancelled, the session closed, the output file removed.
async fn execute(
    client: &DBSQLClient,
    sql: &str,
    args: &Args,
    progress: &Progress,
    interrupt: &mut Interrupt,
) -> Result<u8, Failure> {
    let interrupted = || Failure::interrupted("interrupted: the statement was cancelled");
    let session = unless_interrupted(interrupt, client.open_session())
        .await
        .ok_or_else(|| Failure::interrupted("interrupted before the statement was sent"))?
        .map_err(Failure::driver)?;
    // Closing the session also ends a statement whose ExecuteStatement reply never came.
    let mut op = match unless_interrupted(interrupt, session.execute_statement(sql)).await {
        Some(Ok(op)) => op,
        Some(Err(e)) => {
            // The statement's failure is what is reported, whether the close ends or a Ctrl-C
            // stops it.
            let _ = unless_interrupted_again(interrupt, session.close()).await;
            return Err(Failure::driver(e));
        }
        None => {
            cancelling_hint();
            return match unless_interrupted_again(interrupt, session.close()).await {
                Some(_) => Err(interrupted()),
                None => Err(quit_without_waiting()),
            };
        }
    };
    let outcome = match unless_interrupted(interrupt, write_result(&mut op, args, progress)).await {
        Some(outcome) => outcome,
        None => {
            progress.clear();
            cancelling_hint();
            let cancel = op.cancel_handle();
            match unless_interrupted_again(interrupt, cancel.cancel()).await {
                Some(_) => Err(interrupted()),
                None => Err(quit_without_waiting()),
            }
        }
    };
    let closing = async {
        let _ = op.close().await;
        let _ = session.close().await;
    };
    // When a Ctrl-C stops the closes, `run` says so once it has skipped its own.
    let _ = unless_interrupted_again(interrupt, closing).await;
    outcome
}

/// On a terminal, after the first Ctrl-C: what happens now, and how not to wait for it.
fn cancelling_hint() {
    let mut stderr = std::io::stderr();
    if stderr.is_terminal() {
        let _ = writeln!(
            stderr,
            "dbsql: cancelling the statement (Ctrl-C again to quit without waiting)"
        );
    }
}

/// The output file while it is written: removed when dropped before [`keep`](Self::keep), so
/// a run that fails or is interrupted after creating it leaves none. Only a regular file is
/// removed (never a device such as `/dev/stdout`, a FIFO or a symbolic link).
struct OutputFile<'a> {
    path: Option<&'a Path>,
}

impl OutputFile<'_> {
    /// The run succeeded: leave the file.
    fn keep(mut self) {
        self.path = None;
    }
}

impl Drop for OutputFile<'_> {
    fn drop(&mut self) {
        if let Some(path) = self.path {
            if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Read the result of `op` and write it in the format asked for, to the output asked for.
async fn write_result(
    op: &mut databricks_sql::Operation,
    args: &Args,
    progress: &Progress,
) -> Result<u8, Failure> {
    let schema = op.schema().await.map_err(Failure::driver)?;
    if schema.fields().is_empty() {
        // No result set (DML, DDL): say what happened on standard error, write nothing.
        let message = match op.rows_affected() {
            Some(n) => format!("OK, {n} rows affected"),
            None => "OK".to_string(),
        };
        let _ = writeln!(std::io::stderr(), "{message}");
        return Ok(0);
    }
    // Outlives the writer of the file (also when this future is dropped on Ctrl-C), so the
    // file is closed before it is removed.
    let mut created = OutputFile { path: None };
    let sink: Box<dyn Write + Send> = match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path).map_err(|e| {
                Failure::run(format!(
                    "cannot create the output file {}: {e}",
                    path.display()
                ))
            })?;
            created.path = Some(path);
            Box::new(std::io::BufWriter::new(file))
        }
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let (sink, broken_pipe) = output::Sink::new(sink);
    let outcome = copy_result(op, schema, sink, args.format.into(), progress).await;
    // The reader went away (`dbsql ... | head`, also through `-o /dev/stdout`): stop without
    // an error.
    let broken_pipe = broken_pipe.load(std::sync::atomic::Ordering::Relaxed);
    if outcome.is_ok() || broken_pipe {
        created.keep();
    }
    if broken_pipe {
        return Ok(0);
    }
    outcome
}

/// Copy every batch of `op` through a [`ResultWriter`].
async fn copy_result(
    op: &mut databricks_sql::Operation,
    schema: arrow_schema::SchemaRef,
    sink: output::Sink,
    format: Format,
    progress: &Progress,
) -> Result<u8, Failure> {
    let mut writer = ResultWriter::new(format, schema, sink).map_err(output_failure)?;
    loop {
        let batch = match op.next_batch().await {
            Ok(Some(batch)) => batch,
            Ok(None) => break,
            Err(e) => return Err(Failure::driver(e)),
        };
        progress.add(&batch);
        writer.write(&batch).map_err(output_failure)?;
    }
    progress.clear();
    writer.finish().map_err(output_failure)?;
    Ok(0)
}

fn output_failure(e: arrow_schema::ArrowError) -> Failure {
    Failure::run(format!("writing the result failed: {}", error_chain(&e)))
}
