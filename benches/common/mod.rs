//! The mock warehouse in a process of its own, for benchmarks that measure the client alone:
//! the benchmark binary re-executes itself with [`SERVER_ENV`] set, and that child serves the
//! mock until its stdin closes.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};

use databricks_sql::mock::MockWarehouseBuilder;

/// Set in the child process: serve the mock instead of benchmarking.
pub const SERVER_ENV: &str = "DBSQL_BENCH_MOCK_SERVER";

/// In the child process (when [`SERVER_ENV`] is set): runs the mock `builder` makes, prints
/// its port, serves until stdin closes (the parent is gone), and returns true. Otherwise
/// returns false at once.
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
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await;
        mock.shutdown().await;
    });
    true
}

/// The mock's process; killed when dropped.
pub struct MockProcess {
    child: Child,
    /// The port it listens on, on 127.0.0.1, plain HTTP.
    pub port: u16,
}

impl MockProcess {
    /// Starts this executable again as the mock's process and waits for its port.
    pub fn spawn() -> MockProcess {
        let exe = std::env::current_exe().expect("own executable");
        let mut child = Command::new(exe)
            .env(SERVER_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("mock process starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout piped"))
            .read_line(&mut line)
            .expect("mock prints its port");
        let port = line.trim().parse().expect("a port number");
        MockProcess { child, port }
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
    }
}
