//! The HTTP client deliveries go out on, with the guards an outsider's URL needs: every address
//! a name resolves to is checked before the connection (`domain::webhook::address_allowed`), no
//! redirects are followed (a 3xx is a failure: following one would bypass the address check and
//! resend the batch somewhere unregistered), no proxy from the environment, a deadline on the
//! whole exchange, and at most [`MAX_RESPONSE_BYTES`] of the answer read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, USER_AGENT};

/// Bytes of a receiver's answer read (for the delivery log); the rest is dropped unread.
pub const MAX_RESPONSE_BYTES: usize = 4096;
/// Characters of the answer kept in the delivery log's error text.
const RESPONSE_EXCERPT_CHARS: usize = 200;

/// How one POST ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A 2xx.
    Accepted(u16),
    /// Any other status, with the start of the body.
    Refused(u16, String),
    /// No answer: refused address, connection failure, timeout; the text says which.
    Failed(String),
}

/// Resolves names with the system resolver and keeps only the addresses deliveries may reach.
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refusal = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|address| {
                    match domain::webhook::address_allowed(address.ip(), allow_private) {
                        Ok(()) => true,
                        Err(why) => {
                            refusal.get_or_insert(why);
                            false
                        }
                    }
                })
                .collect();
            if allowed.is_empty() {
                // The account reads this text (the delivery log): which internal address a
                // name has is not for it to learn, so the details go to the node's log only.
                return Err(match refusal {
                    Some(why) => {
                        tracing::info!(
                            host,
                            why,
                            "webhooks: a name resolves only to refused addresses"
                        );
                        format!(
                            "{host} resolves only to addresses webhooks may not reach (private, \
                             loopback or otherwise special-purpose)"
                        )
                    }
                    None => format!("{host} has no address"),
                }
                .into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// The delivery client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
}

impl Client {
    pub fn new(allow_private: bool, timeout: Duration) -> anyhow::Result<Client> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("sluice-webhooks/", env!("CARGO_PKG_VERSION"))),
        );
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .pool_max_idle_per_host(2)
            .default_headers(headers)
            .build()?;
        Ok(Client { http })
    }

    /// POSTs `body` with `headers`; never fails, the answer says what happened.
    pub async fn post(&self, url: &str, headers: HeaderMap, body: Vec<u8>) -> Answer {
        let response = match self.http.post(url).headers(headers).body(body).send().await {
            Ok(response) => response,
            Err(error) => return Answer::Failed(describe(&error)),
        };
        let status = response.status().as_u16();
        let excerpt = match read_bounded(response).await {
            Ok(text) => text,
            // The status arrived; a body cut short changes nothing for a 2xx.
            Err(error) if (200..300).contains(&status) => {
                tracing::debug!(%error, "a receiver's answer broke off");
                String::new()
            }
            Err(error) => {
                return Answer::Failed(format!("HTTP {status}, then {}", describe(&error)))
            }
        };
        if (200..300).contains(&status) {
            Answer::Accepted(status)
        } else {
            Answer::Refused(status, excerpt)
        }
    }
}

/// The start of a response's body, at most [`MAX_RESPONSE_BYTES`] read.
async fn read_bounded(mut response: reqwest::Response) -> Result<String, reqwest::Error> {
    let mut body = Vec::new();
    while body.len() < MAX_RESPONSE_BYTES {
        match response.chunk().await? {
            Some(chunk) => {
                let room = MAX_RESPONSE_BYTES - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            None => break,
        }
    }
    Ok(String::from_utf8_lossy(&body)
        .chars()
        .take(RESPONSE_EXCERPT_CHARS)
        .collect())
}

/// A transport error as one line, with its innermost cause (reqwest's own text is generic).
fn describe(error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_redirect() {
        "redirected"
    } else {
        "failed"
    };
    let mut source: &dyn std::error::Error = error;
    while let Some(next) = source.source() {
        source = next;
    }
    format!("{what}: {source}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A name that resolves to loopback is refused at connection time without the operator's
    /// flag (registration only sees the name), and reached with it.
    #[tokio::test]
    async fn names_resolving_to_special_addresses_are_not_reached() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buffer = [0; 4096];
                    let _ = socket.read(&mut buffer).await;
                    let big = "x".repeat(3 * MAX_RESPONSE_BYTES);
                    let answer = format!(
                        "HTTP/1.1 418 No\r\ncontent-length: {}\r\n\r\n{big}",
                        big.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        let url = format!("http://localhost:{port}/hook");
        let guarded = Client::new(false, Duration::from_secs(5)).unwrap();
        match guarded.post(&url, HeaderMap::new(), b"{}".to_vec()).await {
            Answer::Failed(why) => assert!(why.contains("localhost"), "{why}"),
            other => panic!("reached a loopback name: {other:?}"),
        }
        let open = Client::new(true, Duration::from_secs(5)).unwrap();
        match open.post(&url, HeaderMap::new(), b"{}".to_vec()).await {
            Answer::Refused(418, excerpt) => {
                assert_eq!(excerpt.len(), RESPONSE_EXCERPT_CHARS, "{excerpt}")
            }
            other => panic!("{other:?}"),
        }
    }
}
