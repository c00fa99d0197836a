//! The mock warehouse in a process of its own, for benchmarks that measure the client alone:
//! the benchmark binary re-executes itself with [`SERVER_ENV`] set, and that child serves the
//! mock until its stdin closes. The parent can ask what the mock holds and received
//! ([`MockProcess::stats`]).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use databricks_sql::mock::{MockWarehouse, MockWarehouseBuilder};

/// Set in the child process: serve the mock instead of benchmarking.
pub const SERVER_ENV: &str = "DBSQL_BENCH_MOCK_SERVER";

/// Pins the calling thread (and the threads it starts from now on) to the first CPU; false
/// where that cannot be done.
fn pin_to_first_cpu() -> bool {
    core_affinity::get_core_ids()
        .and_then(|ids| ids.into_iter().next())
        .is_some_and(core_affinity::set_for_current)
}

/// In the child process (when [`SERVER_ENV`] is set): runs the mock `builder` makes, prints
/// its port, answers each line the parent writes with the mock's [`stats`](MockProcess::stats),
/// serves until stdin closes (the parent is gone), and returns true. Otherwise returns false at
/// once.
pub fn serve_if_child(builder: impl FnOnce() -> MockWarehouseBuilder) -> bool {
    if std::env::var_os(SERVER_ENV).is_none() {
        return false;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mock = builder().start().await.expect("mock starts");
        println!("{}", mock.port());
        std::io::stdout().flush().expect("stdout");
        let answering = mock.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for line in std::io::stdin().lock().lines() {
                if line.is_err() {
                    break;
                }
                println!("{}", stats_line(&answering));
                let _ = std::io::stdout().flush();
            }
        })
        .await;
        mock.shutdown().await;
    });
    true
}

/// The mock's process; killed when dropped.
pub struct MockProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// The port it listens on, on 127.0.0.1, plain HTTP.
    pub port: u16,
}

impl MockProcess {
    /// Starts this executable again as the mock's process and waits for its port. With
    /// `one_cpu`, the calling thread is pinned to the first CPU first, and the mock's process
    /// inherits that: both run there only (for a benchmark whose client is that one thread), so
    /// that no round trip waits for the other process to be woken on another CPU.
    pub fn spawn(one_cpu: bool) -> MockProcess {
        let exe = std::env::current_exe().expect("own executable");
        let mut command = Command::new(exe);
        command.env(SERVER_ENV, "1");
        if one_cpu && !pin_to_first_cpu() {
            eprintln!("the benchmark thread could not be pinned to the first CPU");
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("mock process starts");
        let stdin = child.stdin.take().expect("stdin piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("mock prints its port");
        let port = line.trim().parse().expect("a port number");
        MockProcess {
            child,
            stdin,
            stdout,
            port,
        }
    }

    /// What the mock holds and received so far, by name: `sessions` and `operations` still
    /// open, `protoLogs` and `flag_requests` (telemetry) received.
    pub fn stats(&mut self) -> BTreeMap<String, usize> {
        writeln!(self.stdin, "stats").expect("ask the mock");
        self.stdin.flush().expect("ask the mock");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("the mock answers");
        line.split_whitespace()
            .map(|pair| {
                let (name, n) = pair.split_once('=').expect("name=count");
                (name.to_string(), n.parse().expect("a count"))
            })
            .collect()
    }

    /// Panics when the mock still holds a session or an operation: what a benchmark opened,
    /// it closed.
    pub fn assert_nothing_left_open(&mut self) {
        let stats = self.stats();
        assert_eq!(
            (stats["sessions"], stats["operations"]),
            (0, 0),
            "sessions and operations left open on the mock"
        );
    }

    /// A client builder pointed at it.
    pub fn client_builder(&self) -> databricks_sql::ClientBuilder {
        databricks_sql::DBSQLClient::builder()
            .host("127.0.0.1")
            .port(self.port)
            .http_path(databricks_sql::mock::DEFAULT_HTTP_PATH)
            .token(databricks_sql::mock::DEFAULT_TOKEN)
            .plain_http(true)
    }
}

impl Drop for MockProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Drain what is left so that nothing blocks on a full pipe.
        let _ = self.stdout.read_to_end(&mut Vec::new());
    }
}

/// The mock's figures as `name=count` pairs (see [`MockProcess::stats`]).
fn stats_line(mock: &MockWarehouse) -> String {
    format!(
        "sessions={} operations={} protoLogs={} flag_requests={}",
        mock.open_sessions(),
        mock.open_operations(),
        mock.telemetry_logs().len(),
        mock.feature_flag_requests().len()
    )
}
