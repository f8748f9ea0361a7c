//! Where `sluice stream` writes: stdout line by line, a file appended line by line, or — for
//! formats consumed as whole files (Zeek intel, RPZ zones, Suricata datasets) — a file
//! rewritten atomically with every line seen in the last day, at most every `--output-interval`.
//! A whole file's existing lines are read back at start, so a restart (which resumes from the
//! cursor) keeps them; and the cursor is saved only once a rewrite has them on disk, so nothing
//! the file lacks is skipped.
//!
//! A whole file also drops a line once it expires (`domain::validity`: the indicator's own
//! `valid_until`, or `reporttime` plus `--default-validity`'s default for its itype): a line
//! holds until the latest expiry of the reports that gave it (one without an expiry holds it
//! for the day), and a report that arrives expired adds nothing. The file cannot say when a
//! line read back at start expires, so such a line takes the expiry of its next report, or
//! stays for the day.
//!
//! A withdrawal (docs/protocol.md §2.10) takes its provider's report out of a whole file: a
//! line remembers which providers gave it (a hash of each name) and goes when the last of them
//! withdraws; a line read back at start, whose providers are unknown, goes at the first
//! withdrawal that gives it. A withdrawal removes the lines its own fields give (the report at
//! the most shareable level the provider used); a line from another report of the same
//! provider with other fields (a Zeek description it changed) stays until it expires.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use domain::{Indicator, Validity};

use super::format::OutputFormat;
use crate::exit;

/// How long a line stays in a whole-file output after it was last seen.
const KEEP: Duration = Duration::from_secs(24 * 3600);
/// Lines a whole-file output keeps at most (the least recently seen go first).
const MAX_LINES: usize = 2_000_000;

pub struct Output {
    format: OutputFormat,
    validity: Validity,
    sink: Sink,
}

enum Sink {
    Lines(Box<dyn Write + Send>),
    WholeFile {
        path: PathBuf,
        interval: Duration,
        entries: BTreeMap<String, Line>,
        dirty: bool,
        written: Option<Instant>,
    },
}

/// One line of a whole file: when it was last seen, until when it holds, and who gave it.
#[derive(Debug, Clone, PartialEq)]
struct Line {
    seen: Instant,
    expires: Expiry,
    /// A hash of each provider whose report gave the line (empty: read back at start).
    providers: Vec<u64>,
}

/// Until when a line of a whole file holds, by the reports that gave it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expiry {
    /// Read back from the file at start: the next report decides.
    Unknown,
    /// Some report has no expiry.
    Never,
    At(DateTime<Utc>),
}

impl Expiry {
    fn of(expires: Option<DateTime<Utc>>) -> Expiry {
        expires.map_or(Expiry::Never, Expiry::At)
    }

    /// The line holds while any of its reports does.
    fn merge(self, report: Expiry) -> Expiry {
        match (self, report) {
            (Expiry::Unknown, report) => report,
            (Expiry::At(old), Expiry::At(new)) => Expiry::At(old.max(new)),
            (Expiry::Never, _) | (_, Expiry::Never) => Expiry::Never,
            (kept, Expiry::Unknown) => kept,
        }
    }

    fn has_passed(self, now: DateTime<Utc>) -> bool {
        matches!(self, Expiry::At(at) if at <= now)
    }
}

impl Line {
    /// Still in the file at `now` (wall clock, for expiries) and `instant` (monotonic, for
    /// the day a line stays after it was last seen).
    fn holds(&self, now: DateTime<Utc>, instant: Instant) -> bool {
        instant.saturating_duration_since(self.seen) < KEEP && !self.expires.has_passed(now)
    }
}

impl Output {
    pub fn new(
        format: OutputFormat,
        path: Option<PathBuf>,
        interval: Duration,
        validity: Validity,
    ) -> anyhow::Result<Output> {
        let sink = match path {
            Some(path) if format.is_whole_file() => {
                check_writable("--output", &path)?;
                Sink::WholeFile {
                    entries: read_back(&path, format)?,
                    path,
                    interval,
                    dirty: true,
                    written: None,
                }
            }
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|error| {
                        exit::config(format!(
                            "--output {}: cannot open it for appending ({error})",
                            path.display()
                        ))
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
        Ok(Output {
            format,
            validity,
            sink,
        })
    }

    /// Writes the indicator's lines; returns how many (none: the format has no place for it).
    /// A whole file takes no line from a report that has already expired.
    pub fn write(&mut self, indicator: &Indicator) -> anyhow::Result<usize> {
        let expires = self.validity.expires(indicator);
        let lines = self.format.lines_expiring(indicator, expires);
        let count = lines.len();
        match &mut self.sink {
            Sink::Lines(sink) => write_lines(sink, &lines)?,
            Sink::WholeFile { entries, dirty, .. } if indicator.is_withdrawn() => {
                let provider = provider_hash(indicator.provider());
                for text in lines {
                    let Some(line) = entries.get_mut(&text) else {
                        continue;
                    };
                    line.providers.retain(|given| *given != provider);
                    if line.providers.is_empty() {
                        entries.remove(&text);
                        *dirty = true;
                    }
                }
            }
            Sink::WholeFile { entries, dirty, .. } => {
                let provider = provider_hash(indicator.provider());
                let seen = Instant::now();
                let expires = Expiry::of(expires);
                if expires.has_passed(Utc::now()) {
                    return Ok(count);
                }
                for text in lines {
                    let line = entries.entry(text).or_insert(Line {
                        seen,
                        expires: Expiry::Unknown,
                        providers: Vec::new(),
                    });
                    line.seen = seen;
                    line.expires = line.expires.merge(expires);
                    if !line.providers.contains(&provider) {
                        line.providers.push(provider);
                    }
                    *dirty = true;
                }
            }
        }
        Ok(count)
    }

    /// Rewrites a whole-file output when it changed (or lines expired) and the interval has
    /// passed. Returns whether everything written so far is on disk.
    pub fn tick(&mut self) -> anyhow::Result<bool> {
        let due = match &mut self.sink {
            Sink::Lines(_) => return Ok(true),
            Sink::WholeFile {
                interval,
                written,
                dirty,
                entries,
                ..
            } => {
                if written.is_none_or(|at| at.elapsed() >= *interval) {
                    let before = entries.len();
                    let (now, instant) = (Utc::now(), Instant::now());
                    entries.retain(|_, line| line.holds(now, instant));
                    *dirty |= entries.len() != before;
                    *dirty
                } else {
                    return Ok(!*dirty);
                }
            }
        };
        if due {
            self.rewrite()?;
        }
        Ok(true)
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
        let (now, instant) = (Utc::now(), Instant::now());
        entries.retain(|_, line| line.holds(now, instant));
        if entries.len() > MAX_LINES {
            let mut by_age: Vec<(Instant, String)> = entries
                .iter()
                .map(|(text, line)| (line.seen, text.clone()))
                .collect();
            by_age.sort();
            for (_, line) in by_age.iter().take(entries.len() - MAX_LINES) {
                entries.remove(line);
            }
        }
        let mut text = String::new();
        for line in format.header(serial()).iter().chain(entries.keys()) {
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

/// Which provider gave a line, in 8 bytes (a collision keeps a withdrawn line for its day).
fn provider_hash(provider: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    provider.hash(&mut hasher);
    hasher.finish()
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

/// The lines of an existing whole-file output (its header left out), as seen now.
fn read_back(path: &Path, format: OutputFormat) -> anyhow::Result<BTreeMap<String, Line>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(error) => {
            return Err(error)
                .with_context(|| format!("--output {}: cannot read it back", path.display()))
        }
    };
    let header = format.header(0);
    // The RPZ serial changes from one rewrite to the next; every other header line is fixed.
    let is_header = |line: &str| {
        header
            .iter()
            .any(|h| h == line || (h.starts_with("@ IN SOA") && line.starts_with("@ IN SOA")))
    };
    let seen = Instant::now();
    Ok(text
        .lines()
        .filter(|line| !line.is_empty() && !is_header(line))
        .map(|line| {
            let line_of = Line {
                seen,
                expires: Expiry::Unknown,
                providers: Vec::new(),
            };
            (line.to_owned(), line_of)
        })
        .collect())
}

/// Checks, before anything connects, that a file can be written at `path` the way
/// [`write_atomically`] writes it: `path` is not a directory and its directory takes a new file.
/// A path that fails is a configuration error (exit 64) naming `flag`.
pub fn check_writable(flag: &str, path: &Path) -> anyhow::Result<()> {
    if path.is_dir() {
        return Err(exit::config(format!(
            "{flag} {}: is a directory; give the path of a file",
            path.display()
        )));
    }
    tempfile::NamedTempFile::new_in(directory_of(path))
        .map(drop)
        .map_err(|error| {
            exit::config(format!(
                "{flag} {}: cannot write there ({error}); create the directory or pick another path",
                path.display()
            ))
        })
}

/// The directory a file at `path` goes in (`.` for a bare name).
fn directory_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Writes `bytes` to a fresh temporary file beside `path` (created exclusively, with the old
/// file's permissions), then renames it over `path`: readers see the old file or the new one,
/// never half of one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = tempfile::NamedTempFile::new_in(directory_of(path))?;
    file.write_all(bytes)?;
    if let Ok(metadata) = std::fs::metadata(path) {
        file.as_file().set_permissions(metadata.permissions())?;
    }
    file.as_file().sync_all()?;
    file.persist(path).map_err(|error| error.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use domain::export::Format;
    use domain::Provenance;

    use super::*;

    #[test]
    fn a_line_holds_while_any_of_its_reports_does() {
        let now = Utc::now();
        let soon = Expiry::At(now + TimeDelta::hours(1));
        let later = Expiry::At(now + TimeDelta::hours(2));
        assert_eq!(soon.merge(later), later);
        assert_eq!(later.merge(soon), later);
        assert_eq!(soon.merge(Expiry::Never), Expiry::Never);
        assert_eq!(Expiry::Never.merge(soon), Expiry::Never);
        assert_eq!(
            Expiry::Unknown.merge(soon),
            soon,
            "read back: the report decides"
        );
        assert_eq!(soon.merge(Expiry::Unknown), soon);
        assert!(!soon.has_passed(now) && soon.has_passed(now + TimeDelta::hours(1)));
        assert!(!Expiry::Never.has_passed(DateTime::<Utc>::MAX_UTC));
        assert!(!Expiry::Unknown.has_passed(DateTime::<Utc>::MAX_UTC));
        let instant = Instant::now();
        let line = Line {
            seen: instant,
            expires: soon,
            providers: Vec::new(),
        };
        assert!(line.holds(now, instant));
        assert!(!line.holds(now + TimeDelta::hours(1), instant));
        assert!(
            !line.holds(now, instant + KEEP),
            "a day after it was last seen"
        );
    }

    #[test]
    fn a_whole_file_leaves_out_what_has_expired() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("intel");
        let zeek = OutputFormat::Export(Format::Zeek);
        let validity = Validity::none().with(domain::Itype::Fqdn, Some(Duration::from_secs(3600)));
        let mut output = Output::new(zeek, Some(path.clone()), Duration::ZERO, validity).unwrap();
        let now = Utc::now();
        let at = |time: DateTime<Utc>| time.to_rfc3339();
        let report = |value: serde_json::Value| {
            Indicator::from_json(value, Provenance::Authenticated("p"), now).unwrap()
        };
        for indicator in [
            report(serde_json::json!({"indicator": "185.220.101.1"})),
            report(
                serde_json::json!({"indicator": "185.220.101.2", "valid_until": at(now + TimeDelta::hours(1))}),
            ),
            report(
                serde_json::json!({"indicator": "185.220.101.3", "reporttime": at(now - TimeDelta::hours(2)), "ttl": "1h"}),
            ),
            report(serde_json::json!({"indicator": "fresh.example.net"})),
            report(
                serde_json::json!({"indicator": "stale.example.net", "reporttime": at(now - TimeDelta::hours(2))}),
            ),
        ] {
            assert_eq!(output.write(&indicator).unwrap(), 1);
        }
        output.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let listed: Vec<&str> = text
            .lines()
            .skip(1)
            .map(|line| line.split('\t').next().unwrap())
            .collect();
        assert_eq!(
            listed,
            ["185.220.101.1", "185.220.101.2", "fresh.example.net"],
            "{text}"
        );
    }

    #[test]
    fn a_withdrawal_takes_its_providers_line_out_of_a_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zone");
        let rpz = OutputFormat::Export(Format::Bindrpz);
        let names = |path: &Path| -> Vec<String> {
            let text = std::fs::read_to_string(path).unwrap();
            let mut names: Vec<String> = text
                .lines()
                .filter(|line| line.ends_with("CNAME ."))
                .filter_map(|line| line.split(' ').next().map(str::to_owned))
                .collect();
            names.sort();
            names
        };
        let now = Utc::now();
        let by = |provider: &str, name: &str| {
            Indicator::from_json(
                serde_json::json!({"indicator": name, "provider": provider}),
                Provenance::Trusted,
                now,
            )
            .unwrap()
        };
        let withdrawal = |report: &Indicator| Indicator::withdrawal_of(report, now);
        std::fs::write(&path, "left.example.net CNAME .\n").unwrap();
        let mut output =
            Output::new(rpz, Some(path.clone()), Duration::ZERO, Validity::none()).unwrap();
        output.write(&by("a", "shared.example.net")).unwrap();
        output.write(&by("b", "shared.example.net")).unwrap();
        output.write(&by("a", "own.example.net")).unwrap();
        output
            .write(&withdrawal(&by("a", "shared.example.net")))
            .unwrap();
        output
            .write(&withdrawal(&by("a", "own.example.net")))
            .unwrap();
        output
            .write(&withdrawal(&by("z", "left.example.net")))
            .unwrap();
        output.tick().unwrap();
        assert_eq!(
            names(&path),
            ["*.shared.example.net", "shared.example.net"],
            "b still reports it; a's own name and the line read back are gone"
        );
        output
            .write(&withdrawal(&by("b", "shared.example.net")))
            .unwrap();
        output.tick().unwrap();
        assert!(names(&path).is_empty());
    }
}
