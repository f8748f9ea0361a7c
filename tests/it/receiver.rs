//! A webhook receiver on loopback for the delivery tests: plain HTTP/1.1 over a raw socket, so
//! a test can make it answer any status, hang without answering, or drop the connection
//! mid-request, request by request.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::harness::WAIT;

/// What the receiver does with one request.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    /// Answers with this status (200 by default).
    Status(u16),
    /// Reads the request and never answers (holds the socket).
    Hang,
    /// Reads the request and closes the connection without answering.
    Close,
    /// Answers 200, this long after the request.
    Slow(Duration),
    /// Answers `302 Found` to this port on loopback.
    Redirect(u16),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// Lowercased names.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

pub struct Receiver {
    pub addr: SocketAddr,
    script: Arc<Mutex<VecDeque<Behaviour>>>,
    requests: mpsc::UnboundedReceiver<Received>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let script: Arc<Mutex<VecDeque<Behaviour>>> = Arc::default();
        let (sender, requests) = mpsc::unbounded_channel();
        let shared = script.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, shared.clone(), sender.clone()));
            }
        });
        Receiver {
            addr,
            script,
            requests,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next requests get these behaviours, in order; after them, 200.
    pub fn script(&self, behaviours: &[Behaviour]) {
        self.script.lock().unwrap().extend(behaviours);
    }

    /// The next request (fails after [`WAIT`]).
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(WAIT, self.requests.recv())
            .await
            .expect("no webhook request arrived")
            .expect("the receiver stopped")
    }

    /// Whether a request arrives within `wait`.
    pub async fn quiet_for(&mut self, wait: Duration) -> Option<Received> {
        tokio::time::timeout(wait, self.requests.recv())
            .await
            .ok()
            .flatten()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    socket: TcpStream,
    script: Arc<Mutex<VecDeque<Behaviour>>>,
    requests: mpsc::UnboundedSender<Received>,
) {
    let mut reader = BufReader::new(socket);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|length| length.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let behaviour = script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Behaviour::Status(200));
        let _ = requests.send(Received {
            path,
            headers,
            body,
        });
        match behaviour {
            Behaviour::Status(status) => {
                let answer = format!(
                    "HTTP/1.1 {status} Whatever\r\ncontent-length: 7\r\ncontent-type: text/plain\r\n\r\nanswer!"
                );
                if reader.get_mut().write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
            Behaviour::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            Behaviour::Close => return,
            Behaviour::Slow(delay) => {
                tokio::time::sleep(delay).await;
                let answer = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                if reader.get_mut().write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
            Behaviour::Redirect(port) => {
                let answer = format!(
                    "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{port}/elsewhere\r\ncontent-length: 0\r\n\r\n"
                );
                if reader.get_mut().write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    }
}
