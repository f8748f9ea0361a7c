//! A private PostgreSQL cluster per test, for the tests that stop and restart the server under
//! a running node (the shared test server of [`crate::PgDatabase`] must stay up for everyone).
//!
//! `initdb` into a temporary directory, then `pg_ctl` on a free port of 127.0.0.1 with trust
//! authentication and without fsync (fast to start; a committed transaction still survives a
//! stop, since its WAL is written before the commit returns, only not forced to disk). PostgreSQL refuses to run as root, so as root the binaries run as the `postgres` user
//! (`runuser`), which owns the directory. Blocking std code, like [`crate::RedisServer`].

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::Context;

/// A port found free may be taken before the server binds it; try again this many times.
const START_ATTEMPTS: usize = 5;
/// How long `pg_ctl` waits for the server to start or stop, in seconds.
const PG_CTL_WAIT_SECONDS: &str = "30";
/// The user that runs the server when the tests run as root.
const SERVICE_USER: &str = "postgres";

/// A PostgreSQL server owned by a test: its own directory and port. Dropping it stops the server
/// and removes the directory.
#[derive(Debug)]
pub struct PgCluster {
    bin: PathBuf,
    /// `Some(user)` when the binaries run as that user (the tests run as root).
    run_as: Option<&'static str>,
    port: u16,
    running: bool,
    dir: tempfile::TempDir,
}

impl PgCluster {
    /// Creates a cluster (`initdb`) and starts it on a free port. Fails, telling to run
    /// `scripts/test`, when PostgreSQL's server binaries are not installed.
    pub fn start() -> anyhow::Result<PgCluster> {
        let bin = server_bin()?;
        let run_as = running_as_root().then_some(SERVICE_USER);
        let dir = tempfile::Builder::new()
            .prefix("sluice-pg-")
            .tempdir()
            .context("creating a directory for PostgreSQL")?;
        if let Some(user) = run_as {
            let (uid, gid) = user_ids(user)?;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .with_context(|| format!("giving {} to {user}", dir.path().display()))?;
        }
        let mut cluster = PgCluster {
            bin,
            run_as,
            port: 0,
            running: false,
            dir,
        };
        let data = cluster.data_dir();
        let output = cluster.run(
            "initdb",
            &[
                "-D".into(),
                data.clone().into(),
                "-U".into(),
                "postgres".into(),
                "--auth=trust".into(),
                "--no-sync".into(),
                "--no-instructions".into(),
                "-E".into(),
                "UTF8".into(),
                "--locale=C".into(),
            ],
        )?;
        check(&output, "initdb")?;
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            cluster.port = free_port()?;
            match cluster.restart() {
                Ok(()) => return Ok(cluster),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error
            .unwrap_or_else(|| anyhow::anyhow!("no attempt made"))
            .context(format!(
                "PostgreSQL did not start in {START_ATTEMPTS} attempts"
            )))
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres` (trust authentication: no password).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server is running (started and not stopped since).
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`: every connection cut, no
    /// checkpoint, recovery at the next start, as after a crash) and waits until it is gone.
    /// Does nothing if it is not running.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if !self.running {
            return Ok(());
        }
        let data = self.data_dir();
        let output = self.run(
            "pg_ctl",
            &[
                "-D".into(),
                data.clone().into(),
                "-m".into(),
                "immediate".into(),
                "-w".into(),
                "-t".into(),
                PG_CTL_WAIT_SECONDS.into(),
                "stop".into(),
            ],
        )?;
        check(&output, "pg_ctl stop")?;
        self.running = false;
        Ok(())
    }

    /// Starts the server again on the same port, with the same data, and waits until it takes
    /// connections. Stops it first if it is running.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        let data = self.data_dir();
        let log = self.dir.path().join("postgres.log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let output = self.run(
            "pg_ctl",
            &[
                "-D".into(),
                data.clone().into(),
                "-l".into(),
                log.clone().into(),
                "-o".into(),
                options.into(),
                "-w".into(),
                "-t".into(),
                PG_CTL_WAIT_SECONDS.into(),
                "start".into(),
            ],
        )?;
        if let Err(error) = check(&output, "pg_ctl start") {
            let log_tail = std::fs::read_to_string(&log)
                .map(|text| last_lines(&text, 5))
                .unwrap_or_default();
            // A server that half-started must not outlive the attempt.
            self.running = true;
            let _ = self.stop();
            return Err(error.context(format!("port {}: {log_tail}", self.port)));
        }
        self.running = true;
        Ok(())
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs one of the server's binaries, as the service user when the tests run as root.
    fn run(&self, program: &str, args: &[std::ffi::OsString]) -> anyhow::Result<Output> {
        let path = self.bin.join(program);
        let mut command = match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&path);
                command
            }
            None => Command::new(&path),
        };
        command
            .args(args)
            // pg_ctl's server inherits these: it must not hold the test's output pipes open.
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .current_dir(self.dir.path())
            .output()
            .with_context(|| format!("running {}", path.display()))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            eprintln!("testkit: could not stop the private PostgreSQL: {error:#}");
        }
    }
}

/// The newest installed PostgreSQL's server binaries (`/usr/lib/postgresql/<version>/bin`).
fn server_bin() -> anyhow::Result<PathBuf> {
    let root = Path::new("/usr/lib/postgresql");
    let missing = || {
        anyhow::anyhow!(
            "PostgreSQL's server binaries (initdb, pg_ctl) are not in {}; run `scripts/test`, \
             which installs them",
            root.display()
        )
    };
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .map_err(|_| missing())?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(missing)
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// The user's uid and gid, from `id`.
fn user_ids(user: &str) -> anyhow::Result<(u32, u32)> {
    let id = |flag: &str| -> anyhow::Result<u32> {
        let output = Command::new("id")
            .args([flag, user])
            .output()
            .context("running id")?;
        check(&output, "id")?;
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .with_context(|| format!("the {flag} of {user}"))
    };
    Ok((id("-u")?, id("-g")?))
}

fn check(output: &Output, what: &str) -> anyhow::Result<()> {
    if output.status.success() {
        return Ok(());
    }
    Err(anyhow::anyhow!(
        "{what} failed ({}): {} {}",
        output.status,
        String::from_utf8_lossy(&output.stdout).trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    ))
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    use super::*;

    async fn answers(url: &str) -> bool {
        match sqlx::PgConnection::connect(url).await {
            Ok(mut connection) => sqlx::query_scalar::<_, i32>("SELECT 1")
                .fetch_one(&mut connection)
                .await
                .is_ok(),
            Err(_) => false,
        }
    }

    #[tokio::test]
    async fn starts_stops_and_restarts_with_its_data() {
        let mut cluster = tokio::task::spawn_blocking(PgCluster::start)
            .await
            .unwrap()
            .unwrap();
        assert!(cluster.is_running());
        assert_ne!(cluster.port(), 5432);
        let url = cluster.url();
        let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE kept (n int)")
            .execute(&mut connection)
            .await
            .unwrap();
        sqlx::query("INSERT INTO kept VALUES (7)")
            .execute(&mut connection)
            .await
            .unwrap();
        drop(connection);

        let mut cluster = tokio::task::spawn_blocking(move || {
            cluster.stop().unwrap();
            cluster
        })
        .await
        .unwrap();
        assert!(!cluster.is_running());
        assert!(!answers(&url).await);

        let cluster = tokio::task::spawn_blocking(move || {
            cluster.restart().unwrap();
            cluster
        })
        .await
        .unwrap();
        assert_eq!(cluster.url(), url, "same port after a restart");
        let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
        let kept: i32 = sqlx::query_scalar("SELECT n FROM kept")
            .fetch_one(&mut connection)
            .await
            .unwrap();
        assert_eq!(kept, 7, "the data survives");
        drop(connection);

        let dir = cluster.dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || drop(cluster))
            .await
            .unwrap();
        assert!(!answers(&url).await);
        assert!(!dir.exists());
    }

    #[test]
    fn last_lines_keeps_the_tail() {
        assert_eq!(last_lines("a\nb\nc", 2), "b | c");
    }
}
