//! README.md's shell blocks, run as written and in order, against the servers their own commands
//! start: what a reader does in a fresh clone, with one terminal per server.
//!
//! Each command (a line, or lines joined by a trailing `\` or a `for … done`) runs in `bash` with
//! `set -euo pipefail`, in a scratch directory that stands for the clone (the servers make their
//! `sluice-data` there, and `data` links to the repository's `data/`), with `HOME` in it too.
//! Shell variables that a command sets (`TOKEN=…`, `export SLUICE_URL=…`) carry over to the
//! next commands, as in one terminal.
//!
//! The substitutions, the only changes made to the commands' text:
//! - `cargo run -q --` and `cargo run --` become the `sluice` binary that cargo built for this
//!   test, which is what `cargo run` runs (running cargo itself would wait on the build lock);
//! - `127.0.0.1:8080` becomes the address of this test's server (`SLUICE_LISTEN` in the
//!   commands' environment makes the README's `cargo run -- up` listen there), and the Redis
//!   port `6380` a free port;
//! - `/opt/zeek/intel/` becomes `opt/zeek/intel/` in the scratch directory, made beforehand as a
//!   Zeek install has it.
//!
//! The commands' environment is this process's without any `SLUICE_*` or `RUST_LOG` variable.
//! The tools come from `PATH`, with cargo's `bin` and the CIF client's virtualenv
//! (`target/compat/cif/bin`, or under `SLUICE_COMPAT_DIR`) added after it: scripts/test installs
//! wscat and websocat the way the README says, and the CIF client as tests/it/compat.rs uses it.
//!
//! How each command runs ([`RULES`]):
//! - a server (`cargo run -- up …`, `redis-server …`) keeps running, a new `up` in place of the
//!   previous one (stopped with SIGINT, as with Ctrl-C); the next command runs once it answers
//!   (an `up` on Redis once it also logs its upstream subscription, which a `PUBLISH` needs, as
//!   a reader would see it in that terminal);
//! - a stream (`wscat`, `websocat`, `curl -N`, `sluice stream`, `cif-firehose`) runs until its
//!   output shows what the README says it shows, or, where the README's next command is what the
//!   stream shows the effect of, until after that command; then it is stopped with SIGINT;
//! - any other command must exit 0 within a minute, and must not print an API error body; the
//!   outputs the README describes are checked.
//!
//! A command that fails, a stream that ends or shows nothing in time, or a server that exits or
//! never answers fails the test, and so does a rule that matches no command any more. The
//! commands that cannot run here are the rules of kind [`Kind::Skip`], each with its reason.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, ChildStdin, Command};
use tokio::time::Instant;

use crate::harness::*;

/// How long a plain command may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stream may take to show what it should.
const STREAM_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server may take to answer.
const SERVER_TIMEOUT: Duration = Duration::from_secs(60);

/// What a command's output must show.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Its stdout contains this.
    Stdout(&'static str),
    /// At least this many stdout lines contain this.
    Lines(usize, &'static str),
    /// Its stdout, trimmed, is this.
    StdoutIs(&'static str),
    /// This file of the scratch directory contains this.
    File(&'static str, &'static str),
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Must exit 0 (and show these, if any).
    Run(&'static [Expect]),
    /// Runs on: `up` in place of the previous `up`, or `redis-server`.
    Server,
    /// Runs until `until` holds, then (when `after_next` is not empty) until the next command
    /// has run and `after_next` holds too.
    Stream {
        until: &'static [Expect],
        after_next: &'static [Expect],
    },
    /// Not run, for this reason.
    Skip(&'static str),
}

/// How the README's commands run, by how their text starts; the first rule that matches wins,
/// and a command no rule matches is `Kind::Run(&[])`.
const RULES: &[(&str, Kind)] = &[
    (
        "scripts/test",
        Kind::Skip("the whole test suite, this test included: it would run itself"),
    ),
    (
        "pip install cifsdk",
        Kind::Skip(
            "installs into the reader's Python; scripts/test installs cifsdk 4.0 into \
             target/compat/cif, whose cif-firehose the next command runs",
        ),
    ),
    (
        "pip install csirtgsdk",
        Kind::Skip(
            "installs into the reader's Python; scripts/test installs csirtgsdk 1.1.5 into \
             target/compat/csirtg for tests/it/compat.rs",
        ),
    ),
    (
        "CSIRTG_TOKEN=",
        Kind::Skip(
            "csirtg-firehose's URL is fixed to wss://csirtg.io/firehose, which takes DNS and TLS \
             for that name (as the README says); tests/it/compat.rs runs it with that one value \
             rebound",
        ),
    ),
    ("cargo run -- up", Kind::Server),
    ("redis-server", Kind::Server),
    (
        "wscat ",
        Kind::Stream {
            until: &[Expect::Stdout(r#""type":"hello""#), Expect::Stdout(r#""itype":"cidr""#)],
            after_next: &[],
        },
    ),
    (
        r#"websocat -H="Authorization: Bearer $TOKEN""#,
        Kind::Stream {
            until: &[Expect::Stdout(r#""tags":["phishing""#)],
            after_next: &[],
        },
    ),
    (
        // The free account of the plans section: demo data it may see, then the plan change
        // of the next command.
        r#"websocat -H="Authorization: Bearer $ACME""#,
        Kind::Stream {
            until: &[
                Expect::Stdout(r#""plan":"free""#),
                Expect::Stdout(r#""type":"indicator""#),
            ],
            after_next: &[Expect::Stdout(r#""type":"plan","plan":"pro""#)],
        },
    ),
    (
        "curl -N -H \"Authorization: Bearer $TOKEN\" 'http://127.0.0.1:8080/v1/stream?correlated=true'",
        Kind::Stream {
            until: &[Expect::Stdout("event: hello")],
            // The next command reports 185.220.101.42 from three providers.
            after_next: &[Expect::Stdout(r#""indicator":"185.220.101.42""#)],
        },
    ),
    (
        "curl -N ",
        Kind::Stream {
            until: &[Expect::Stdout("event: indicator")],
            after_next: &[],
        },
    ),
    (
        "cargo run -q -- stream --tags scanner",
        Kind::Stream {
            until: &[Expect::Lines(5, r#""scanner""#)],
            after_next: &[],
        },
    ),
    (
        "cargo run -q -- stream --format table",
        Kind::Stream {
            until: &[Expect::Lines(3, "")],
            after_next: &[],
        },
    ),
    (
        "cargo run -q -- stream --format csv --itype url > phish.csv",
        Kind::Stream {
            until: &[Expect::File("phish.csv", "://")],
            after_next: &[],
        },
    ),
    (
        "cargo run -q -- stream --format zeek --profile zeek --output /opt/zeek/intel/sluice.intel",
        Kind::Stream {
            until: &[Expect::File("opt/zeek/intel/sluice.intel", "Intel::")],
            after_next: &[],
        },
    ),
    (
        "CIF_REMOTE_WS=",
        Kind::Stream {
            until: &[Expect::Stdout("\"connected\""), Expect::Stdout("\"indicator\"")],
            after_next: &[],
        },
    ),
    (
        "curl -s -H \"Authorization: Bearer $TOKEN\" 'http://127.0.0.1:8080/v1/indicators",
        Kind::Run(&[Expect::Stdout(r#""itype":"ipv4""#)]),
    ),
    (
        "curl -s -H \"Authorization: Bearer $TOKEN\" -H 'Accept: text/csv'",
        Kind::Run(&[Expect::Stdout("://")]),
    ),
    (
        "curl -s -H \"Authorization: Bearer $PUB\"",
        Kind::Run(&[Expect::Stdout(r#""accepted":1"#)]),
    ),
    ("redis-cli ", Kind::Run(&[Expect::StdoutIs("1")])),
    (
        "curl -s -H \"Sluice-Signature",
        Kind::Run(&[Expect::Stdout(r#""status":"applied""#)]),
    ),
];

/// One command of a shell block.
#[derive(Debug, Clone)]
struct ReadmeCommand {
    /// As README.md has it.
    text: String,
    /// Its first line in README.md (1-based).
    line: usize,
}

/// The commands of README.md's `sh` blocks, in order. Blank and comment-only lines between
/// commands are left out.
fn commands(readme: &str) -> Vec<ReadmeCommand> {
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut current = String::new();
    let mut start = 0;
    let mut depth = 0i32;
    for (index, line) in readme.lines().enumerate() {
        let trimmed = line.trim();
        if !in_block {
            in_block = matches!(trimmed, "```sh" | "```bash" | "```shell");
            continue;
        }
        if trimmed == "```" {
            assert!(
                current.is_empty(),
                "README.md:{start}: a shell block ends inside a command"
            );
            in_block = false;
            continue;
        }
        if current.is_empty() {
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            start = index + 1;
        } else {
            current.push('\n');
        }
        current.push_str(line);
        match trimmed.split([' ', ';']).next().unwrap_or_default() {
            "for" | "while" | "until" | "if" => depth += 1,
            "done" | "fi" => depth -= 1,
            _ => {}
        }
        if depth == 0 && !trimmed.ends_with('\\') {
            commands.push(ReadmeCommand {
                text: std::mem::take(&mut current),
                line: start,
            });
        }
    }
    assert!(!in_block, "README.md ends inside a shell block");
    commands
}

fn rule_of(command: &ReadmeCommand) -> (Option<usize>, Kind) {
    RULES
        .iter()
        .position(|(starts, _)| command.text.starts_with(starts))
        .map_or((None, Kind::Run(&[])), |index| {
            (Some(index), RULES[index].1)
        })
}

/// The shell variables the README's commands assign (`NAME=…`), which carry from one command
/// to the next.
fn assigned_names(commands: &[ReadmeCommand]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for command in commands {
        let text = &command.text;
        for (at, _) in text.match_indices('=') {
            let before = &text[..at];
            let name_start = before
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |i| i + 1);
            let name = &before[name_start..];
            let boundary = before[..name_start]
                .chars()
                .next_back()
                .is_none_or(|c| c.is_whitespace() || c == ';' || c == '(');
            if boundary
                && name.starts_with(|c: char| c.is_ascii_uppercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

/// Single-quoted for the shell.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A process started for a command, in its own process group (so that a signal reaches the
/// command's children too), with its stdin held open as a terminal's would be.
struct Running {
    child: Child,
    _stdin: Option<ChildStdin>,
    command: ReadmeCommand,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Running {
    fn signal(&self, signal: &str) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-s", signal, "--", &format!("-{pid}")])
                .status();
        }
    }

    /// Stops it as Ctrl-C does, then for good.
    async fn stop(mut self) {
        self.signal("INT");
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .is_err()
        {
            self.signal("KILL");
            let _ = self.child.wait().await;
        }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// What it printed, for a failure message: the end of stdout and of stderr.
    fn printed(&self) -> String {
        let tail = |text: String| {
            let cut = text.len().saturating_sub(3000);
            let cut = (cut..=text.len())
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            text[cut..].to_owned()
        };
        format!(
            "--- stdout (end) ---\n{}\n--- stderr (end) ---\n{}",
            tail(self.stdout()),
            tail(std::fs::read_to_string(&self.stderr).unwrap_or_default())
        )
    }

    fn failure(&self, what: &str) -> String {
        format!(
            "README.md:{}: {what}\n{}\n{}",
            self.command.line,
            self.command.text,
            self.printed()
        )
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.signal("KILL");
    }
}

/// The scratch "clone" the commands run in, and how they are run.
struct Reader {
    scratch: tempfile::TempDir,
    addr: String,
    redis_port: u16,
    names: Vec<String>,
    path: String,
    count: usize,
}

impl Reader {
    fn new(names: BTreeSet<String>) -> Reader {
        let scratch = tempfile::tempdir().unwrap();
        let root = scratch.path();
        let repository = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::os::unix::fs::symlink(repository.join("data"), root.join("data")).unwrap();
        for dir in ["home", "opt/zeek/intel", ".readme"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::write(root.join(".readme/state"), "").unwrap();
        let compat = std::env::var_os("SLUICE_COMPAT_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repository.join("target/compat"));
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo"));
        let path = format!(
            "{}:{}:{}",
            std::env::var("PATH").unwrap_or_default(),
            cargo_home.join("bin").display(),
            compat.join("cif/bin").display()
        );
        Reader {
            scratch,
            addr: format!("127.0.0.1:{}", free_port()),
            redis_port: free_port(),
            names: names.into_iter().collect(),
            path,
            count: 0,
        }
    }

    fn root(&self) -> &Path {
        self.scratch.path()
    }

    /// The command's text with the substitutions of the module's documentation.
    fn substituted(&self, text: &str) -> String {
        let binary = quoted(sluice_binary());
        let port = self.redis_port.to_string();
        let zeek = format!("{}/opt/zeek/intel/", self.root().display());
        let text = text
            .replace("cargo run -q -- ", &format!("{binary} "))
            .replace("cargo run -- ", &format!("{binary} "))
            .replace("127.0.0.1:8080", &self.addr)
            .replace(":6380/", &format!(":{port}/"))
            .replace("--port 6380", &format!("--port {port}"))
            .replace("-p 6380", &format!("-p {port}"))
            .replace("/opt/zeek/intel/", &zeek);
        assert!(
            !text.contains("6380") && !text.contains("8080") && !text.contains("cargo run"),
            "a spelling the substitutions miss: {text}"
        );
        text
    }

    /// Starts the command in bash, after the variables earlier commands set; a command that
    /// finishes saves the variables for the next ones.
    fn spawn(&mut self, command: &ReadmeCommand, stdin_open: bool) -> Running {
        self.count += 1;
        let dir = self.root().join(".readme");
        let state = dir.join("state");
        let stdout = dir.join(format!("{:02}.out", self.count));
        let stderr = dir.join(format!("{:02}.err", self.count));
        // `declare -p` with no name would print every variable.
        let save = match self.names.is_empty() {
            true => ":".to_owned(),
            false => format!("declare -p {}", self.names.join(" ")),
        };
        let script = format!(
            "set -euo pipefail\nsource {state}\n{text}\n{save} > {state}.next 2>/dev/null || true\n",
            state = quoted(&state.display().to_string()),
            text = self.substituted(&command.text),
        );
        let mut process = Command::new("bash");
        process
            .arg("-c")
            .arg(script)
            .current_dir(self.root())
            .env("HOME", self.root().join("home"))
            .env("PATH", &self.path)
            .env_remove("RUST_LOG")
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .process_group(0)
            .kill_on_drop(true);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SLUICE_") {
                process.env_remove(&name);
            }
        }
        process.env("SLUICE_LISTEN", &self.addr);
        process.stdin(if stdin_open {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = process.spawn().expect("cannot start bash");
        let stdin = child.stdin.take();
        Running {
            child,
            _stdin: stdin,
            command: command.clone(),
            stdout,
            stderr,
        }
    }

    /// Whether every expectation holds for what `running` printed or wrote.
    fn holds(&self, running: &Running, expects: &[Expect]) -> bool {
        let stdout = running.stdout();
        expects.iter().all(|expect| match *expect {
            Expect::Stdout(text) => stdout.contains(text),
            Expect::Lines(n, text) => stdout.lines().filter(|l| l.contains(text)).count() >= n,
            Expect::StdoutIs(text) => stdout.trim() == text,
            Expect::File(path, text) => std::fs::read_to_string(self.root().join(path))
                .is_ok_and(|content| content.contains(text)),
        })
    }

    /// Runs a plain command to its end: exit 0, no API error, what `expects` says.
    async fn run(&mut self, command: &ReadmeCommand, expects: &[Expect]) {
        let mut running = self.spawn(command, false);
        let status = match tokio::time::timeout(RUN_TIMEOUT, running.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!(
                "{}",
                running.failure(
                    "did not finish within a minute (a stream or a server needs a rule in RULES)"
                )
            ),
        };
        if !status.success() {
            panic!("{}", running.failure(&exit_message(status)));
        }
        assert!(
            !running.stdout().contains(r#"{"error""#),
            "{}",
            running.failure("printed an API error")
        );
        assert!(
            self.holds(&running, expects),
            "{}",
            running.failure(&format!("does not show {expects:?}"))
        );
        let state = self.root().join(".readme/state");
        std::fs::rename(state.with_extension("next"), state).unwrap();
    }

    /// Waits until `expects` hold for a running stream; it must not end first.
    async fn wait_for(&self, running: &mut Running, expects: &[Expect], what: &str) {
        let deadline = Instant::now() + STREAM_TIMEOUT;
        loop {
            if self.holds(running, expects) {
                return;
            }
            if let Ok(Some(status)) = running.child.try_wait() {
                if self.holds(running, expects) {
                    return;
                }
                panic!(
                    "{}",
                    running.failure(&format!(
                        "{}, before it showed {what}",
                        exit_message(status)
                    ))
                );
            }
            assert!(
                Instant::now() < deadline,
                "{}",
                running.failure(&format!("did not show {what} within {STREAM_TIMEOUT:?}"))
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts a server and waits until it answers: `up` on /healthz (and, on Redis, subscribed
    /// to the upstream, which it logs), `redis-server` on its port.
    async fn serve(&mut self, command: &ReadmeCommand) -> Running {
        let mut running = self.spawn(command, true);
        let deadline = Instant::now() + SERVER_TIMEOUT;
        let is_up = command.text.starts_with("cargo run -- up");
        loop {
            if let Ok(Some(status)) = running.child.try_wait() {
                panic!("{}", running.failure(&exit_message(status)));
            }
            let ready = if is_up {
                let healthy = reqwest::get(format!("http://{}/healthz", self.addr))
                    .await
                    .is_ok_and(|response| response.status().is_success());
                let stderr = std::fs::read_to_string(&running.stderr).unwrap_or_default();
                healthy
                    && (!command.text.contains("--redis")
                        || stderr.contains("subscribed to the Redis upstream"))
            } else {
                tokio::net::TcpStream::connect(("127.0.0.1", self.redis_port))
                    .await
                    .is_ok()
            };
            if ready {
                return running;
            }
            assert!(
                Instant::now() < deadline,
                "{}",
                running.failure("the server did not answer within a minute")
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn exit_message(status: ExitStatus) -> String {
    match status.code() {
        Some(127) => "exited 127: a command is missing (scripts/test installs wscat, websocat, \
                      redis-server and the CIF client)"
            .to_owned(),
        Some(code) => format!("exited {code}"),
        None => format!("ended by {status}"),
    }
}

/// Every shell command of README.md works as written (module documentation: how, and which
/// cannot run here and why).
#[tokio::test]
async fn the_readme_commands_work_as_written() {
    let readme = include_str!("../../README.md");
    let commands = commands(readme);
    let mut reader = Reader::new(assigned_names(&commands));
    let mut used = vec![false; RULES.len()];
    let mut up: Option<Running> = None;
    let mut others: Vec<Running> = Vec::new();
    // A stream waiting for the next command's effect.
    let mut waiting: Option<(Running, &'static [Expect])> = None;
    let mut skipped = Vec::new();
    let started = Instant::now();
    for command in &commands {
        let (rule, kind) = rule_of(command);
        // The run's timeline, shown with a failure.
        eprintln!(
            "{:>6.1?} README.md:{}: {}",
            started.elapsed(),
            command.line,
            command.text.lines().next().unwrap_or_default()
        );
        if let Some(rule) = rule {
            used[rule] = true;
        }
        match kind {
            Kind::Skip(reason) => skipped.push((command.line, reason)),
            Kind::Run(expects) => reader.run(command, expects).await,
            Kind::Server if command.text.starts_with("cargo run -- up") => {
                if let Some(previous) = up.take() {
                    previous.stop().await;
                }
                up = Some(reader.serve(command).await);
            }
            Kind::Server => others.push(reader.serve(command).await),
            Kind::Stream { until, after_next } => {
                let mut running = reader.spawn(command, true);
                reader
                    .wait_for(&mut running, until, &format!("{until:?}"))
                    .await;
                if after_next.is_empty() {
                    running.stop().await;
                } else {
                    assert!(waiting.is_none(), "two streams wait on one command");
                    waiting = Some((running, after_next));
                    continue;
                }
            }
        }
        if let Some((mut running, expects)) = waiting.take() {
            let what = format!("{expects:?} after the next command");
            reader.wait_for(&mut running, expects, &what).await;
            running.stop().await;
        }
    }
    assert!(
        waiting.is_none(),
        "the last command is a stream waiting for a next one"
    );
    for (rule, used) in RULES.iter().zip(used) {
        assert!(
            used,
            "no README.md command starts with {:?} any more: update RULES",
            rule.0
        );
    }
    assert!(
        commands.len() > 30 && skipped.len() < 6,
        "{} commands, {skipped:?} skipped",
        commands.len()
    );
    if let Some(up) = up {
        up.stop().await;
    }
    for other in others {
        other.stop().await;
    }
}

#[test]
fn shell_blocks_split_into_commands() {
    let text = "intro\n```sh\nA=1   # set\n\n# a comment\nfor p in a b; do\n  echo $p\ndone\ncurl -s \\\n  -d x \\\n  http://h\n```\n```js\nnot = shell;\n```\n```sh\nB=$(echo 2); C=3 echo\n```\n";
    let commands = commands(text);
    let texts: Vec<&str> = commands.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "A=1   # set",
            "for p in a b; do\n  echo $p\ndone",
            "curl -s \\\n  -d x \\\n  http://h",
            "B=$(echo 2); C=3 echo",
        ]
    );
    assert_eq!(commands[1].line, 6);
    assert_eq!(
        assigned_names(&commands).into_iter().collect::<Vec<_>>(),
        ["A", "B", "C"]
    );
}
