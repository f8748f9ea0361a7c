//! A private `redis-server` per test, on a free port, without persistence.
//!
//! Talks to it with raw RESP over TCP (`PING`, `INFO`) so testkit does not depend on a Redis
//! client crate; everything here is blocking std code, usable from sync and async tests alike.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// A port found free may be taken by someone else before `redis-server` binds it; try again
/// on another port this many times.
const START_ATTEMPTS: usize = 5;
/// How long a starting server may take to answer `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(20);
/// Timeout of one probe's connect, read and write.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// A `redis-server` process owned by a test: its own port and directory, no persistence.
/// Dropping it kills the process.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port of 127.0.0.1 and waits until it answers `PING`. Fails,
    /// telling to run `scripts/test`, when `redis-server` is not installed.
    pub fn start() -> anyhow::Result<RedisServer> {
        let dir = tempfile::Builder::new()
            .prefix("sluice-redis-")
            .tempdir()
            .context("creating a directory for redis-server")?;
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let port = free_port()?;
            match spawn_ready(port, dir.path()) {
                Ok(child) => {
                    return Ok(RedisServer {
                        port,
                        dir,
                        child: Some(child),
                    })
                }
                Err(Start::NotInstalled(error)) => return Err(error),
                Err(Start::Failed(error)) => last_error = Some(error),
            }
        }
        Err(last_error
            .unwrap_or_else(|| anyhow::anyhow!("no attempt made"))
            .context(format!(
                "redis-server did not start in {START_ATTEMPTS} attempts"
            )))
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server with SIGKILL (a crash, not a shutdown) and waits for it to exit.
    /// Does nothing if it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Errors mean it already exited; `wait` reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and waits until it answers `PING`. Kills it
    /// first if it is still running. It comes back empty, unless a `SAVE` left a snapshot in its
    /// directory: then it loads that (a crash that lost what came after).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        // The old listening socket is gone once the process is reaped, but retry for a moment
        // in case the kernel has not released the port yet.
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match spawn_ready(self.port, self.dir.path()) {
                Ok(child) => {
                    self.child = Some(child);
                    return Ok(());
                }
                Err(Start::NotInstalled(error)) => return Err(error),
                Err(Start::Failed(error)) if Instant::now() >= deadline => {
                    return Err(
                        error.context(format!("restarting redis-server on port {}", self.port))
                    )
                }
                Err(Start::Failed(_)) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

enum Start {
    NotInstalled(anyhow::Error),
    Failed(anyhow::Error),
}

/// A port that was free a moment ago (the OS picks it for a bind to port 0).
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Spawns `redis-server` on `port` and waits until it answers `PING` and is the process we
/// spawned (not another server that grabbed the port first).
fn spawn_ready(port: u16, dir: &Path) -> Result<Child, Start> {
    let log = dir.join(format!("redis-{port}.log"));
    let spawned = Command::new("redis-server")
        .arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(Start::NotInstalled(anyhow::anyhow!(
                "redis-server is not installed (not found on PATH); run `scripts/test`, which \
                 installs it"
            )))
        }
        Err(error) => {
            return Err(Start::Failed(
                anyhow::Error::new(error).context("spawning redis-server"),
            ))
        }
    };
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let log_tail = std::fs::read_to_string(&log)
                    .map(|text| last_lines(&text, 5))
                    .unwrap_or_default();
                return Err(Start::Failed(anyhow::anyhow!(
                    "redis-server on port {port} exited ({status}): {log_tail}"
                )));
            }
            Ok(None) => {}
            Err(error) => {
                return Err(Start::Failed(
                    anyhow::Error::new(error).context("waiting for redis-server"),
                ))
            }
        }
        if answers_ping(port) {
            if server_pid(port) == Some(child.id()) {
                return Ok(child);
            }
            let _ = child.kill();
            let _ = child.wait();
            return Err(Start::Failed(anyhow::anyhow!(
                "another server answered on port {port}"
            )));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Start::Failed(anyhow::anyhow!(
                "redis-server on port {port} did not answer PING within {START_TIMEOUT:?}"
            )));
        }
        std::thread::sleep(PROBE_INTERVAL);
    }
}

/// Sends one inline command and returns what arrives until `complete` says the reply is whole.
fn request(port: u16, command: &str, complete: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, PROBE_TIMEOUT).ok()?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(PROBE_TIMEOUT)).ok()?;
    stream.write_all(command.as_bytes()).ok()?;
    let mut reply = Vec::new();
    let mut buffer = [0; 4096];
    while !complete(&reply) {
        let read = stream.read(&mut buffer).ok()?;
        if read == 0 {
            return None;
        }
        reply.extend_from_slice(&buffer[..read]);
    }
    Some(reply)
}

/// Whether a server on `port` answers `PING` with `+PONG`.
fn answers_ping(port: u16) -> bool {
    request(port, "PING\r\n", |reply| reply.ends_with(b"\r\n"))
        .is_some_and(|reply| reply.starts_with(b"+PONG"))
}

/// The `process_id` a server on `port` reports in `INFO server`.
fn server_pid(port: u16) -> Option<u32> {
    let reply = request(port, "INFO server\r\n", |reply| {
        // A bulk string: `$<len>\r\n<len bytes>\r\n`.
        let text = String::from_utf8_lossy(reply);
        let Some((header, body)) = text.split_once("\r\n") else {
            return false;
        };
        let Some(length) = header
            .strip_prefix('$')
            .and_then(|len| len.parse::<usize>().ok())
        else {
            return true; // an error reply: nothing more will come
        };
        body.len() >= length + 2
    })?;
    String::from_utf8_lossy(&reply)
        .lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
}

fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_kills_and_restarts_on_the_same_port() {
        let mut server = RedisServer::start().unwrap();
        let port = server.port();
        assert_eq!(server.url(), format!("redis://127.0.0.1:{port}/"));
        assert!(answers_ping(port));

        // Data does not survive a restart: nothing is persisted.
        let reply = request(port, "SET key value\r\n", |reply| reply.ends_with(b"\r\n")).unwrap();
        assert_eq!(reply, b"+OK\r\n");

        server.kill();
        assert!(!answers_ping(port));
        server.kill(); // idempotent

        server.restart().unwrap();
        assert_eq!(server.port(), port);
        assert!(answers_ping(port));
        let reply = request(port, "EXISTS key\r\n", |reply| reply.ends_with(b"\r\n")).unwrap();
        assert_eq!(reply, b":0\r\n");
        assert!(!server.dir.path().join("dump.rdb").exists());
    }

    #[test]
    fn servers_are_private_and_die_with_their_owner() {
        let first = RedisServer::start().unwrap();
        let second = RedisServer::start().unwrap();
        assert_ne!(first.port(), second.port());
        assert_ne!(first.port(), 6379);
        let port = first.port();
        drop(first);
        assert!(!answers_ping(port));
        assert!(answers_ping(second.port()));
    }

    #[test]
    fn last_lines_keeps_the_tail() {
        assert_eq!(last_lines("a\nb\nc", 2), "b | c");
        assert_eq!(last_lines("a", 5), "a");
        assert_eq!(last_lines("", 5), "");
    }
}
