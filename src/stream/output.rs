//! Where `sluice stream` writes: stdout line by line, a file appended line by line, or — for
//! formats consumed as whole files (Zeek intel, RPZ zones) — a file rewritten atomically with
//! every indicator seen in the last day, at most every `--output-interval`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use domain::export::Format;
use domain::Indicator;

/// How long an indicator stays in a whole-file output after it was last seen.
const KEEP: Duration = Duration::from_secs(24 * 3600);

pub struct Output {
    format: Format,
    sink: Sink,
}

enum Sink {
    Lines(Box<dyn Write + Send>),
    WholeFile {
        path: PathBuf,
        interval: Duration,
        /// indicator → (its lines, when last seen)
        entries: BTreeMap<String, (Vec<String>, Instant)>,
        dirty: bool,
        written: Option<Instant>,
    },
}

impl Output {
    pub fn new(
        format: Format,
        path: Option<PathBuf>,
        interval: Duration,
    ) -> anyhow::Result<Output> {
        let sink = match path {
            Some(path) if format.is_whole_file() => {
                let sink = Sink::WholeFile {
                    path,
                    interval,
                    entries: BTreeMap::new(),
                    dirty: true,
                    written: None,
                };
                return Ok(Output { format, sink });
            }
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .with_context(|| {
                        format!("--output {}: cannot open for appending", path.display())
                    })?;
                let header_needed = file.metadata().map(|m| m.len() == 0).unwrap_or(true);
                let mut sink: Box<dyn Write + Send> = Box::new(std::io::LineWriter::new(file));
                if header_needed {
                    write_lines(&mut sink, &format.header(serial()))?;
                }
                Sink::Lines(sink)
            }
            None => {
                let mut sink: Box<dyn Write + Send> =
                    Box::new(std::io::LineWriter::new(std::io::stdout()));
                write_lines(&mut sink, &format.header(serial()))?;
                Sink::Lines(sink)
            }
        };
        Ok(Output { format, sink })
    }

    pub fn write(&mut self, indicator: &Indicator) -> anyhow::Result<()> {
        let lines = self.format.lines(indicator);
        match &mut self.sink {
            Sink::Lines(sink) => write_lines(sink, &lines),
            Sink::WholeFile { entries, dirty, .. } => {
                if !lines.is_empty() {
                    entries.insert(indicator.indicator().to_owned(), (lines, Instant::now()));
                    *dirty = true;
                }
                Ok(())
            }
        }
    }

    /// Rewrites a whole-file output when it changed and the interval has passed.
    pub fn tick(&mut self) -> anyhow::Result<()> {
        if let Sink::WholeFile {
            interval,
            written,
            dirty,
            ..
        } = &self.sink
        {
            if *dirty && written.is_none_or(|at| at.elapsed() >= *interval) {
                self.rewrite()?;
            }
        }
        Ok(())
    }

    /// Flushes everything (the whole file is rewritten if anything changed).
    pub fn finish(&mut self) -> anyhow::Result<()> {
        match &mut self.sink {
            Sink::Lines(sink) => sink.flush().context("cannot flush the output"),
            Sink::WholeFile { dirty, .. } if *dirty => self.rewrite(),
            Sink::WholeFile { .. } => Ok(()),
        }
    }

    fn rewrite(&mut self) -> anyhow::Result<()> {
        let format = self.format;
        let Sink::WholeFile {
            path,
            entries,
            dirty,
            written,
            ..
        } = &mut self.sink
        else {
            return Ok(());
        };
        entries.retain(|_, (_, seen)| seen.elapsed() < KEEP);
        let mut text = String::new();
        for line in format
            .header(serial())
            .iter()
            .chain(entries.values().flat_map(|(lines, _)| lines))
        {
            text.push_str(line);
            text.push('\n');
        }
        write_atomically(path, text.as_bytes())
            .with_context(|| format!("--output {}: cannot write", path.display()))?;
        *dirty = false;
        *written = Some(Instant::now());
        Ok(())
    }
}

fn write_lines(sink: &mut Box<dyn Write + Send>, lines: &[String]) -> anyhow::Result<()> {
    for line in lines {
        writeln!(sink, "{line}").context("cannot write the output")?;
    }
    Ok(())
}

/// A zone serial that grows with time (seconds since 2020, fits in 32 bits until 2156).
fn serial() -> u32 {
    let since_2020 = chrono::Utc::now().timestamp() - 1_577_836_800;
    u32::try_from(since_2020.max(1)).unwrap_or(u32::MAX)
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`: readers see
/// the old file or the new one, never half of one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let directory = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sluice".into());
    let temporary = directory.join(format!(".{name}.{}.tmp", std::process::id()));
    {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)
}
