//! A TCP proxy on loopback that injects link faults between a client and a server (the gateway
//! and its `redis-server`): pass everything, hold everything (a blackhole), add latency, or cut
//! every connection. The server itself stays up and keeps its data; only the link fails.
//!
//! Plain std threads (two per direction and connection), so it works from sync and async tests
//! alike and needs no runtime. Meant for a handful of connections, not for load.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;

/// What the link does to the bytes crossing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything as it comes.
    Pass,
    /// Accept connections and read what both sides send, but forward nothing: bytes wait in the
    /// proxy, as packets a broken route drops wait in the sender's retransmission queue, and
    /// flow in order (late) once the mode changes.
    Blackhole,
    /// Forward every byte this long after it arrived, in each direction (a round trip takes
    /// twice this longer).
    Latency(Duration),
    /// Close every open connection, and every new one as soon as it is accepted, until the mode
    /// changes.
    Reset,
}

/// A proxy from a free port of 127.0.0.1 to `upstream`. Dropping it closes every connection.
#[derive(Debug)]
pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    fault: Mutex<Fault>,
    /// Signalled when the fault changes or a connection closes.
    changed: Condvar,
    connections: Mutex<Vec<Link>>,
    stopping: AtomicBool,
}

/// Both sockets of one proxied connection, for closing it from outside its threads.
#[derive(Debug)]
struct Link {
    client: TcpStream,
    server: TcpStream,
    closed: Arc<AtomicBool>,
}

impl Link {
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        // Errors mean the socket is already closed.
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }
}

impl FaultProxy {
    /// Listens on a free port of 127.0.0.1 and forwards each accepted connection to `upstream`
    /// (a new connection there per client connection), in [`Fault::Pass`] mode.
    pub fn start(upstream: SocketAddr) -> anyhow::Result<FaultProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .context("binding the fault proxy's port")?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            upstream,
            fault: Mutex::new(Fault::Pass),
            changed: Condvar::new(),
            connections: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
        });
        let acceptor = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("fault-proxy-{port}"))
                .spawn(move || accept_loop(listener, shared))
                .context("starting the fault proxy")?
        };
        Ok(FaultProxy {
            port,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// A proxy in front of a test's private Redis.
    pub fn redis(server: &crate::RedisServer) -> anyhow::Result<FaultProxy> {
        FaultProxy::start(SocketAddr::from((Ipv4Addr::LOCALHOST, server.port())))
    }

    /// The proxy's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/`, for a proxy in front of Redis.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Connections open through the proxy now.
    pub fn connections(&self) -> usize {
        let mut connections = lock(&self.shared.connections);
        connections.retain(|link| !link.closed.load(Ordering::SeqCst));
        connections.len()
    }

    /// Switches the link to `fault`, for open connections and new ones alike. [`Fault::Reset`]
    /// closes every open connection before it returns.
    pub fn set(&self, fault: Fault) {
        *lock(&self.shared.fault) = fault;
        if fault == Fault::Reset {
            for link in lock(&self.shared.connections).drain(..) {
                link.close();
            }
        }
        self.shared.changed.notify_all();
    }

    /// The current mode.
    pub fn fault(&self) -> Fault {
        *lock(&self.shared.fault)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        for link in lock(&self.shared.connections).drain(..) {
            link.close();
        }
        self.shared.changed.notify_all();
        // Wake the acceptor so it sees `stopping`.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// A poisoned lock only means a pump thread panicked; the state it guards is still whole.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let Ok(server) = TcpStream::connect(shared.upstream) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        if let Err(error) = open_link(&shared, client, server) {
            eprintln!("testkit: fault proxy could not open a link: {error:#}");
        }
    }
}

/// Registers the connection and starts its two directions, or closes it at once under
/// [`Fault::Reset`].
fn open_link(shared: &Arc<Shared>, client: TcpStream, server: TcpStream) -> anyhow::Result<()> {
    let link = Link {
        client: client.try_clone()?,
        server: server.try_clone()?,
        closed: Arc::new(AtomicBool::new(false)),
    };
    let closed = link.closed.clone();
    {
        // `set` changes the fault before it takes this lock to close the open connections: a
        // connection registered here either sees the reset or is closed by it.
        let mut connections = lock(&shared.connections);
        if *lock(&shared.fault) == Fault::Reset {
            link.close();
            return Ok(());
        }
        connections.retain(|link| !link.closed.load(Ordering::SeqCst));
        connections.push(link);
    }
    let directions = Arc::new(AtomicUsize::new(2));
    pump(
        shared,
        client.try_clone()?,
        server.try_clone()?,
        &closed,
        &directions,
    )?;
    pump(shared, server, client, &closed, &directions)?;
    Ok(())
}

/// One direction of a connection: a reader that timestamps what arrives, and a writer that
/// forwards it when the fault allows.
fn pump(
    shared: &Arc<Shared>,
    mut from: TcpStream,
    mut to: TcpStream,
    closed: &Arc<AtomicBool>,
    directions: &Arc<AtomicUsize>,
) -> anyhow::Result<()> {
    let (sender, receiver) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::Builder::new()
        .name("fault-proxy-read".into())
        .spawn(move || {
            let mut buffer = vec![0; 16 * 1024];
            loop {
                match from.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(read) => {
                        if sender
                            .send((Instant::now(), buffer[..read].to_vec()))
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
        })?;
    let shared = shared.clone();
    let closed = closed.clone();
    let directions = directions.clone();
    std::thread::Builder::new()
        .name("fault-proxy-write".into())
        .spawn(move || {
            // Ends when the reader ends (its side closed) and everything it read is out, or when
            // this side cannot be written.
            while let Ok((arrived, bytes)) = receiver.recv() {
                let fault = {
                    let fault = lock(&shared.fault);
                    let fault = shared
                        .changed
                        .wait_while(fault, |fault| {
                            *fault == Fault::Blackhole && !closed.load(Ordering::SeqCst)
                        })
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    *fault
                };
                if closed.load(Ordering::SeqCst) {
                    break;
                }
                if let Fault::Latency(latency) = fault {
                    let due = arrived + latency;
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                }
                if to.write_all(&bytes).is_err() {
                    break;
                }
            }
            // The other side closed: pass the close on, as a direct connection would.
            let _ = to.shutdown(Shutdown::Write);
            if directions.fetch_sub(1, Ordering::SeqCst) == 1 {
                closed.store(true, Ordering::SeqCst);
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RedisServer;

    fn ping(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
        stream.write_all(b"PING\r\n")?;
        read_reply(stream)
    }

    fn read_reply(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
        let mut reply = Vec::new();
        let mut buffer = [0; 64];
        while !reply.ends_with(b"\r\n") {
            let read = stream.read(&mut buffer)?;
            if read == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            reply.extend_from_slice(&buffer[..read]);
        }
        Ok(reply)
    }

    fn connect(proxy: &FaultProxy) -> TcpStream {
        let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, proxy.port())).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    }

    #[test]
    fn passes_by_default() {
        let redis = RedisServer::start().unwrap();
        let proxy = FaultProxy::redis(&redis).unwrap();
        assert_eq!(proxy.fault(), Fault::Pass);
        assert_eq!(
            proxy.redis_url(),
            format!("redis://127.0.0.1:{}/", proxy.port())
        );
        let mut stream = connect(&proxy);
        assert_eq!(ping(&mut stream).unwrap(), b"+PONG\r\n");
        assert_eq!(proxy.connections(), 1);
    }

    #[test]
    fn a_blackhole_holds_bytes_and_releases_them_in_order() {
        let redis = RedisServer::start().unwrap();
        let proxy = FaultProxy::redis(&redis).unwrap();
        let mut open = connect(&proxy);
        assert_eq!(ping(&mut open).unwrap(), b"+PONG\r\n");
        proxy.set(Fault::Blackhole);
        // Nothing comes back on the open connection, nor on one opened during the fault.
        open.write_all(b"ECHO first\r\n").unwrap();
        let mut new = connect(&proxy);
        new.write_all(b"PING\r\n").unwrap();
        for stream in [&mut open, &mut new] {
            stream
                .set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let error = read_reply(stream).unwrap_err();
            assert!(
                matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "{error}"
            );
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
        }
        open.write_all(b"ECHO second\r\n").unwrap();
        proxy.set(Fault::Pass);
        let mut replies = [0; 23];
        open.read_exact(&mut replies).unwrap();
        assert_eq!(&replies, b"$5\r\nfirst\r\n$6\r\nsecond\r\n");
        assert_eq!(read_reply(&mut new).unwrap(), b"+PONG\r\n");
    }

    #[test]
    fn latency_delays_each_direction() {
        let redis = RedisServer::start().unwrap();
        let proxy = FaultProxy::redis(&redis).unwrap();
        let latency = Duration::from_millis(200);
        proxy.set(Fault::Latency(latency));
        let mut stream = connect(&proxy);
        let sent = Instant::now();
        assert_eq!(ping(&mut stream).unwrap(), b"+PONG\r\n");
        // A lower bound only: the proxy holds each byte at least this long each way.
        assert!(sent.elapsed() >= latency * 2, "{:?}", sent.elapsed());
    }

    #[test]
    fn reset_closes_open_connections_and_refuses_new_ones_until_lifted() {
        let redis = RedisServer::start().unwrap();
        let proxy = FaultProxy::redis(&redis).unwrap();
        let mut open = connect(&proxy);
        assert_eq!(ping(&mut open).unwrap(), b"+PONG\r\n");
        proxy.set(Fault::Reset);
        assert_eq!(proxy.connections(), 0);
        assert!(ping(&mut open).is_err(), "the open connection is closed");
        let mut during = connect(&proxy);
        assert!(ping(&mut during).is_err(), "a new connection is closed");
        proxy.set(Fault::Pass);
        let mut after = connect(&proxy);
        assert_eq!(ping(&mut after).unwrap(), b"+PONG\r\n");
    }

    #[test]
    fn dropping_the_proxy_closes_its_connections() {
        let redis = RedisServer::start().unwrap();
        let proxy = FaultProxy::redis(&redis).unwrap();
        let mut open = connect(&proxy);
        assert_eq!(ping(&mut open).unwrap(), b"+PONG\r\n");
        drop(proxy);
        assert!(ping(&mut open).is_err());
    }
}
