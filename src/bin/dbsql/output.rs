//! Writing a result: one [`ResultWriter`] per output format (arrow's own writers), and the
//! progress line on standard error.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, SchemaRef};
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An aligned table: the batches are kept until the end, then printed at once.
    Table,
    /// CSV with a header line, written batch by batch.
    Csv,
    /// JSON lines, written batch by batch.
    Json,
    /// An Arrow IPC stream, written batch by batch.
    Ipc,
}

/// Writes a result's batches in one format.
pub enum ResultWriter {
    Table {
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        sink: Sink,
    },
    Csv(Box<arrow_csv::Writer<Sink>>),
    Json(arrow_json::Writer<Sink, arrow_json::writer::LineDelimited>),
    Ipc(arrow_ipc::writer::StreamWriter<Sink>),
}

impl ResultWriter {
    /// A writer of results of `schema` in `format` to `sink`. Arrow IPC writes the schema
    /// message at once.
    pub fn new(format: Format, schema: SchemaRef, sink: Sink) -> Result<Self, ArrowError> {
        Ok(match format {
            Format::Table => ResultWriter::Table {
                schema,
                batches: Vec::new(),
                sink,
            },
            Format::Csv => {
                let mut writer = arrow_csv::WriterBuilder::new()
                    .with_header(true)
                    .build(sink);
                // The header goes out even when the result has no rows.
                writer.write(&RecordBatch::new_empty(schema))?;
                ResultWriter::Csv(Box::new(writer))
            }
            Format::Json => ResultWriter::Json(
                arrow_json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build(sink),
            ),
            Format::Ipc => {
                ResultWriter::Ipc(arrow_ipc::writer::StreamWriter::try_new(sink, &schema)?)
            }
        })
    }

    /// Write (or, for the table, keep) one batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ArrowError> {
        match self {
            ResultWriter::Table { batches, .. } => {
                batches.push(batch.clone());
                Ok(())
            }
            ResultWriter::Csv(w) => w.write(batch),
            ResultWriter::Json(w) => w.write(batch),
            ResultWriter::Ipc(w) => w.write(batch),
        }
    }

    /// Write what is left (the whole table; the end of the IPC stream) and flush.
    pub fn finish(self) -> Result<(), ArrowError> {
        match self {
            ResultWriter::Table {
                schema,
                batches,
                mut sink,
            } => {
                let table =
                    arrow_cast::pretty::pretty_format_batches_with_schema(schema, &batches)?;
                let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
                writeln!(sink, "{table}")?;
                sink.flush()?;
                let noun = if rows == 1 { "row" } else { "rows" };
                // The count goes to standard error, so that the table alone can be redirected.
                let _ = writeln!(std::io::stderr(), "{rows} {noun}");
                Ok(())
            }
            ResultWriter::Csv(w) => w.into_inner().flush().map_err(ArrowError::from),
            ResultWriter::Json(mut w) => {
                w.finish()?;
                w.into_inner().flush().map_err(ArrowError::from)
            }
            ResultWriter::Ipc(mut w) => {
                w.finish()?;
                w.into_inner()?.flush().map_err(ArrowError::from)
            }
        }
    }
}

/// The output stream: notes whether a write failed because the reader went away (a pipe
/// closed by `head`), which arrow's writers do not always pass on as an I/O error.
pub struct Sink {
    inner: Box<dyn Write + Send>,
    broken_pipe: Arc<AtomicBool>,
}

impl Sink {
    /// `inner`, and the flag set when a write to it finds the pipe closed.
    pub fn new(inner: Box<dyn Write + Send>) -> (Self, Arc<AtomicBool>) {
        let flag = Arc::new(AtomicBool::new(false));
        (
            Sink {
                inner,
                broken_pipe: flag.clone(),
            },
            flag,
        )
    }

    fn note<T>(&self, result: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &result {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                self.broken_pipe.store(true, Ordering::Relaxed);
            }
        }
        result
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let result = self.inner.write(buf);
        self.note(result)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let result = self.inner.flush();
        self.note(result)
    }
}

/// The progress line: rows read and bytes of Arrow data, redrawn a few times a second on
/// standard error; hidden when standard error is not a terminal.
pub struct Progress {
    bar: ProgressBar,
    /// Bytes of Arrow data counted so far.
    bytes: AtomicU64,
}

impl Progress {
    /// A progress line that is never drawn.
    pub fn hidden() -> Self {
        Progress {
            bar: ProgressBar::hidden(),
            bytes: AtomicU64::new(0),
        }
    }

    /// A progress line on standard error (at most 10 redraws a second).
    pub fn on_stderr() -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(10));
        let style = ProgressStyle::with_template("{spinner} {human_pos} rows, {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_message(HumanBytes(0).to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress {
            bar,
            bytes: AtomicU64::new(0),
        }
    }

    /// Count one batch.
    pub fn add(&self, batch: &RecordBatch) {
        if self.bar.is_hidden() {
            return;
        }
        let bytes: usize = batch
            .columns()
            .iter()
            .map(|c| c.to_data().get_slice_memory_size().unwrap_or(0))
            .sum();
        let total = self.bytes.fetch_add(bytes as u64, Ordering::Relaxed) + bytes as u64;
        self.bar.inc(batch.num_rows() as u64);
        self.bar.set_message(HumanBytes(total).to_string());
    }

    /// Remove the progress line (before the result or an error is printed).
    pub fn clear(&self) {
        self.bar.finish_and_clear();
    }
}
