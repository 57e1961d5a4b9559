//! `ward import patients` and `ward export patients`: the file handling and progress display
//! around [`ward_serve::PatientsBulk`].

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::task::JoinHandle;
use ward_core::WardResult;
use ward_core::config::Config;
use ward_serve::{ImportOutcome, NumberedLine, PatientsBulk};

/// Lines sent to the module per call (one transaction each).
const IMPORT_BATCH_LINES: usize = 1_000;
/// Batches in progress at once: one's statements run while the other holds the number counter
/// (see the benchmark in BENCHMARKS.md).
const IN_FLIGHT_BATCHES: usize = 2;
/// From this many new patients on, an import refreshes the planner statistics at the end.
const ANALYZE_AFTER_CREATED: u64 = 10_000;
/// The longest line read into memory; a FHIR Patient is a few hundred bytes, and the mapping
/// refuses anything over the API's body limit anyway.
const LINE_MAX_BYTES: usize = 1024 * 1024;

/// What an import did, line by line.
#[derive(Debug, Default)]
pub struct ImportSummary {
    pub num_read: u64,
    pub num_created: u64,
    pub num_already_present: u64,
    pub num_failed: u64,
}

impl std::fmt::Display for ImportSummary {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "read {}, created {}, already present {}, failed {}",
            self.num_read, self.num_created, self.num_already_present, self.num_failed
        )
    }
}

/// One line as read: its text, or why it cannot be used.
enum RawLine {
    Text(String),
    Unreadable(&'static str),
}

/// Imports the FHIR Patient NDJSON at `source` (`-` for standard input) in batches, two in
/// progress at once; a line that fails is reported as `line N: message` on standard error and the import goes on.
/// A failure of the module itself (database unavailable) stops it: batches already sent stay.
pub async fn import_patients(config: &Config, source: &str) -> anyhow::Result<ImportSummary> {
    let bulk = Arc::new(PatientsBulk::open(config).await?);
    let (mut reader, total_bytes_opt): (Box<dyn AsyncBufRead + Unpin + Send>, Option<u64>) =
        if source == "-" {
            (Box::new(BufReader::new(tokio::io::stdin())), None)
        } else {
            let file = tokio::fs::File::open(source)
                .await
                .with_context(|| format!("cannot open {source}"))?;
            let total_bytes = file.metadata().await?.len();
            (Box::new(BufReader::new(file)), Some(total_bytes))
        };
    let progress = import_progress(total_bytes_opt);
    let today = Utc::now().date_naive();
    let mut summary = ImportSummary::default();
    let mut batch = Vec::with_capacity(IMPORT_BATCH_LINES);
    let mut number = 0;
    let mut buffer = Vec::new();
    let mut in_flight = VecDeque::new();
    while let Some((num_bytes, line)) = read_line(&mut reader, &mut buffer).await? {
        number += 1;
        progress.inc(num_bytes as u64);
        match line {
            RawLine::Text(text) if text.trim().is_empty() => {}
            RawLine::Text(text) => batch.push(NumberedLine { number, text }),
            RawLine::Unreadable(reason) => {
                summary.num_read += 1;
                summary.num_failed += 1;
                progress.suspend(|| eprintln!("line {number}: {reason}"));
            }
        }
        if batch.len() == IMPORT_BATCH_LINES {
            if in_flight.len() == IN_FLIGHT_BATCHES
                && let Some(oldest) = in_flight.pop_front()
            {
                finish_batch(oldest, &mut summary, &progress).await?;
            }
            in_flight.push_back(start_batch(&bulk, std::mem::take(&mut batch), today));
        }
    }
    if !batch.is_empty() {
        in_flight.push_back(start_batch(&bulk, batch, today));
    }
    while let Some(oldest) = in_flight.pop_front() {
        finish_batch(oldest, &mut summary, &progress).await?;
    }
    if summary.num_created >= ANALYZE_AFTER_CREATED {
        progress.set_message("refreshing the search statistics");
        bulk.refresh_statistics().await?;
    }
    progress.finish_and_clear();
    Ok(summary)
}

/// A batch sent to the module: its line numbers and the task awaiting the outcomes.
struct InFlight {
    numbers: Vec<u64>,
    task: JoinHandle<WardResult<Vec<ImportOutcome>>>,
}

fn start_batch(bulk: &Arc<PatientsBulk>, batch: Vec<NumberedLine>, today: NaiveDate) -> InFlight {
    let numbers = batch.iter().map(|line| line.number).collect();
    let bulk = bulk.clone();
    let task = tokio::spawn(async move { bulk.import_lines(&batch, today).await });
    InFlight { numbers, task }
}

/// Waits for a batch, counts its outcomes and prints its failed lines.
async fn finish_batch(
    in_flight: InFlight,
    summary: &mut ImportSummary,
    progress: &ProgressBar,
) -> anyhow::Result<()> {
    let first = in_flight.numbers.first().copied().unwrap_or_default();
    let last = in_flight.numbers.last().copied().unwrap_or_default();
    let outcomes = in_flight
        .task
        .await
        .context("an import task stopped")?
        .with_context(|| format!("importing lines {first} to {last}"))?;
    for (number, outcome) in in_flight.numbers.iter().zip(outcomes) {
        summary.num_read += 1;
        match outcome {
            ImportOutcome::Created => summary.num_created += 1,
            ImportOutcome::AlreadyPresent => summary.num_already_present += 1,
            ImportOutcome::Failed(message) => {
                summary.num_failed += 1;
                progress.suspend(|| eprintln!("line {number}: {message}"));
            }
        }
    }
    progress.set_message(format!("{} patients created", summary.num_created));
    Ok(())
}

/// Reads the next line (without its `\n` or `\r\n`) and how many bytes it took; `None` at the
/// end. A line longer than [`LINE_MAX_BYTES`] is skipped without being held in memory.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buffer: &mut Vec<u8>,
) -> anyhow::Result<Option<(usize, RawLine)>> {
    buffer.clear();
    let mut num_bytes = 0;
    let mut is_too_long = false;
    loop {
        let available = reader.fill_buf().await.context("reading the input")?;
        if available.is_empty() {
            if num_bytes == 0 {
                return Ok(None);
            }
            break;
        }
        let (taken, is_end) = match available.iter().position(|byte| *byte == b'\n') {
            Some(end) => (end + 1, true),
            None => (available.len(), false),
        };
        if !is_too_long && buffer.len() + taken <= LINE_MAX_BYTES + 1 {
            buffer.extend_from_slice(&available[..taken]);
        } else {
            is_too_long = true;
        }
        reader.consume(taken);
        num_bytes += taken;
        if is_end {
            break;
        }
    }
    if is_too_long {
        return Ok(Some((
            num_bytes,
            RawLine::Unreadable("the line is longer than 1 MiB"),
        )));
    }
    while matches!(buffer.last(), Some(b'\n' | b'\r')) {
        buffer.pop();
    }
    let line = match String::from_utf8(std::mem::take(buffer)) {
        Ok(text) => RawLine::Text(text),
        Err(_) => RawLine::Unreadable("the line is not UTF-8"),
    };
    Ok(Some((num_bytes, line)))
}

/// Writes every live patient (changed at or after `since_opt` when given) as FHIR Patient
/// NDJSON to `output_opt`, else to standard output; returns how many. A file is written under
/// a temporary name and renamed when complete, so a failed export leaves no partial file.
pub async fn export_patients(
    config: &Config,
    since_opt: Option<DateTime<Utc>>,
    output_opt: Option<&Path>,
) -> anyhow::Result<u64> {
    let bulk = PatientsBulk::open(config).await?;
    let partial_opt = output_opt.map(partial_path);
    let mut writer: Box<dyn AsyncWrite + Unpin + Send> = match &partial_opt {
        Some(partial) => {
            let file = tokio::fs::File::create(partial)
                .await
                .with_context(|| format!("cannot create {}", partial.display()))?;
            Box::new(BufWriter::new(file))
        }
        None => Box::new(BufWriter::new(tokio::io::stdout())),
    };
    let progress = export_progress();
    let mut num_exported = 0;
    let mut cursor_opt: Option<String> = None;
    loop {
        let chunk = bulk.export_page(since_opt, cursor_opt.as_deref()).await?;
        writer
            .write_all(chunk.ndjson.as_bytes())
            .await
            .context("writing the export")?;
        num_exported += chunk.num_patients as u64;
        progress.set_position(num_exported);
        match chunk.next_cursor_opt {
            Some(next) => cursor_opt = Some(next),
            None => break,
        }
    }
    writer.flush().await.context("writing the export")?;
    drop(writer);
    if let (Some(partial), Some(output)) = (partial_opt, output_opt) {
        tokio::fs::rename(&partial, output)
            .await
            .with_context(|| format!("cannot move the export to {}", output.display()))?;
    }
    progress.finish_and_clear();
    Ok(num_exported)
}

fn partial_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// A bar over the file's bytes, or a spinner for standard input; hidden unless standard error
/// is a terminal, so logs and pipes stay clean.
fn import_progress(total_bytes_opt: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let progress = match total_bytes_opt {
        Some(total_bytes) => {
            let bar = ProgressBar::new(total_bytes);
            if let Ok(style) =
                ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} ({eta} left) {msg}")
            {
                bar.set_style(style);
            }
            bar
        }
        None => ProgressBar::new_spinner(),
    };
    progress.enable_steady_tick(Duration::from_millis(200));
    progress
}

fn export_progress() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let spinner = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {pos} patients exported ({per_sec})")
    {
        spinner.set_style(style);
    }
    spinner.enable_steady_tick(Duration::from_millis(200));
    spinner
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines_of(input: &[u8]) -> Vec<(usize, Result<String, &'static str>)> {
        let mut reader = BufReader::with_capacity(16, input);
        let mut buffer = Vec::new();
        let mut lines = Vec::new();
        while let Some((num_bytes, line)) = read_line(&mut reader, &mut buffer).await.unwrap() {
            let text = match line {
                RawLine::Text(text) => Ok(text),
                RawLine::Unreadable(reason) => Err(reason),
            };
            lines.push((num_bytes, text));
        }
        lines
    }

    #[tokio::test]
    async fn lines_are_split_on_newlines_with_or_without_a_last_one() {
        let lines = lines_of(b"{\"a\":1}\r\n\nlast line without newline").await;
        assert_eq!(
            lines,
            vec![
                (9, Ok("{\"a\":1}".to_string())),
                (1, Ok(String::new())),
                (25, Ok("last line without newline".to_string())),
            ]
        );
    }

    #[tokio::test]
    async fn overlong_and_non_utf8_lines_are_reported_and_skipped() {
        let mut input = vec![b'x'; LINE_MAX_BYTES + 10];
        input.extend_from_slice(b"\n\xff\xfe\nok\n");
        let lines = lines_of(&input).await;
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0],
            (LINE_MAX_BYTES + 11, Err("the line is longer than 1 MiB"))
        );
        assert_eq!(lines[1].1, Err("the line is not UTF-8"));
        assert_eq!(lines[2].1, Ok("ok".to_string()));
    }

    #[test]
    fn the_summary_reads_as_one_line() {
        let summary = ImportSummary {
            num_read: 5,
            num_created: 2,
            num_already_present: 1,
            num_failed: 2,
        };
        assert_eq!(
            summary.to_string(),
            "read 5, created 2, already present 1, failed 2"
        );
    }
}
