//! Sending one webhook delivery (DESIGN §13): a POST of the stored body with the Standard
//! Webhooks headers, through an HTTP client that follows no redirect, uses no proxy, gives up
//! after the delivery timeout, reads at most [`MAX_ANSWER_BYTES`] of the answer, and reaches
//! only addresses a webhook may reach.
//!
//! **The address check.** Names are resolved by [`GuardedResolver`] at every connection, and
//! the connection is refused if any address the name resolves to is loopback, private,
//! link-local, multicast, metadata or otherwise not public (`domain::webhooks::forbidden`):
//! checking what is connected to, after resolution, is what stops a name that resolves to
//! `127.0.0.1` or to the cloud's metadata service (and a name whose answer changes between a
//! check and the connection). Address literals in the URL are never resolved, so they are
//! checked before the request. Unless `WEBHOOK_ALLOW_PRIVATE_TARGETS` is set, only `https` is
//! sent, and a redirect is an answer like any other non-2xx (it is not followed).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::domain::webhooks::{self, MAX_ANSWER_BYTES, Outcome, Secret};

/// Looks a host name up: the system's resolver in production, a fixed table in tests.
pub trait Lookup: Send + Sync + 'static {
    fn lookup(&self, host: String) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>>;
}

/// The system's resolver (`getaddrinfo` through tokio).
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: String) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, 0)).await?.collect()) })
    }
}

/// A name resolved to an address no webhook may reach.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to {address}, a {reason} address")]
pub struct ForbiddenTarget {
    pub host: String,
    pub address: std::net::IpAddr,
    pub reason: &'static str,
}

/// The client's resolver: [`Lookup`], then every address checked.
pub struct GuardedResolver {
    lookup: Arc<dyn Lookup>,
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let lookup = self.lookup.lookup(host.clone());
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addrs = lookup.await?;
            if !allow_private {
                for addr in &addrs {
                    if let Some(reason) = webhooks::forbidden(addr.ip()) {
                        return Err(Box::new(ForbiddenTarget {
                            host,
                            address: addr.ip(),
                            reason,
                        })
                            as Box<dyn std::error::Error + Send + Sync>);
                    }
                }
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Sends deliveries.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    allow_private: bool,
}

/// One delivery to send.
pub struct Delivery<'a> {
    pub url: &'a str,
    /// The `webhook-id` header: the delivery's id, the same on every attempt.
    pub id: &'a str,
    pub body: &'a str,
    /// The current secret first, then the rotated-out one while it still signs.
    pub secrets: &'a [&'a Secret],
}

impl Sender {
    /// A sender with the system's resolver.
    pub fn new(timeout: Duration, allow_private: bool) -> Result<Sender, reqwest::Error> {
        Sender::with_lookup(timeout, allow_private, Arc::new(SystemLookup))
    }

    /// A sender resolving names with `lookup` (tests map names to chosen addresses).
    pub fn with_lookup(
        timeout: Duration,
        allow_private: bool,
        lookup: Arc<dyn Lookup>,
    ) -> Result<Sender, reqwest::Error> {
        common::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .https_only(!allow_private)
            .pool_max_idle_per_host(4)
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("Convene-Webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver {
                lookup,
                allow_private,
            }))
            .build()?;
        Ok(Sender {
            client,
            allow_private,
        })
    }

    /// Sends `delivery` once and says what came of it.
    pub async fn send(&self, delivery: &Delivery<'_>, timestamp: i64) -> Outcome {
        // Checked again at each attempt: a URL stored under other rules, and address literals
        // (never resolved, so never seen by the resolver).
        if let Err(error) = webhooks::parse_url(delivery.url, self.allow_private) {
            return Outcome::Refused {
                reason: error.to_string(),
            };
        }
        let signature = webhooks::signature_header(
            delivery.secrets,
            delivery.id,
            timestamp,
            delivery.body.as_bytes(),
        );
        let request = self
            .client
            .post(delivery.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", delivery.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(delivery.body.to_owned());
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(error) => return failure(&error),
        };
        let status = response.status().as_u16();
        // Read (and drop) at most MAX_ANSWER_BYTES of the answer, so that a connection with a
        // small answer can be reused and a huge answer costs nothing more.
        let mut read = 0usize;
        while read < MAX_ANSWER_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                Ok(None) => break,
                // The status is what counts; a broken or slow body after it does not change it.
                Err(_) => break,
            }
        }
        Outcome::from_status(status)
    }
}

/// The outcome of a request that got no answer: refused when the resolver refused the target,
/// failed otherwise (with the error's chain, without the URL, which the delivery names anyway).
fn failure(error: &reqwest::Error) -> Outcome {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(forbidden) = current.downcast_ref::<ForbiddenTarget>() {
            return Outcome::Refused {
                reason: forbidden.to_string(),
            };
        }
        source = current.source();
    }
    let what = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "the request failed".to_owned()
    };
    let mut detail = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(current) = source {
        detail = current.to_string();
        source = current.source();
    }
    Outcome::Failed {
        status: None,
        error: if detail.is_empty() {
            what
        } else {
            format!("{what}: {detail}")
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::IpAddr;

    use super::*;

    /// A resolver with a fixed table: the names tests choose resolve where tests say.
    struct Table(HashMap<&'static str, Vec<IpAddr>>);

    impl Lookup for Table {
        fn lookup(&self, host: String) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> {
            let found = self.0.get(host.as_str()).cloned();
            Box::pin(async move {
                found
                    .map(|ips| ips.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect())
                    .ok_or_else(|| std::io::Error::other("no such name"))
            })
        }
    }

    fn sender(allow_private: bool) -> Sender {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let table = Table(HashMap::from([
            ("loopback.test", vec![ip("127.0.0.1")]),
            ("metadata.test", vec![ip("169.254.169.254")]),
            ("mapped.test", vec![ip("::ffff:169.254.169.254")]),
            ("v6-loopback.test", vec![ip("::1")]),
            ("private.test", vec![ip("10.1.2.3")]),
            ("nat64.test", vec![ip("64:ff9b::7f00:1")]),
            ("mixed.test", vec![ip("93.184.216.34"), ip("192.168.0.10")]),
        ]));
        Sender::with_lookup(Duration::from_secs(2), allow_private, Arc::new(table)).unwrap()
    }

    async fn send(sender: &Sender, url: &str) -> Outcome {
        let secret = Secret::from_bytes(&[1; 32]).unwrap();
        sender
            .send(
                &Delivery {
                    url,
                    id: "msg_test",
                    body: "{}",
                    secrets: &[&secret],
                },
                1_700_000_000,
            )
            .await
    }

    #[tokio::test]
    async fn names_resolving_to_forbidden_addresses_are_refused_before_connecting() {
        let sender = sender(false);
        for (url, reason) in [
            ("https://loopback.test/hook", "loopback"),
            ("https://metadata.test/latest/meta-data", "link_local"),
            ("https://mapped.test/", "link_local"),
            ("https://v6-loopback.test/", "loopback"),
            ("https://private.test:8443/", "private"),
            ("https://nat64.test/", "loopback"),
            ("https://mixed.test/", "private"),
        ] {
            match send(&sender, url).await {
                Outcome::Refused { reason: said } => {
                    assert!(said.contains(reason), "{url}: {said}")
                }
                other => panic!("{url}: {other:?}"),
            }
        }
        // Literals are never resolved: refused before any request, in every spelling.
        for url in [
            "https://127.0.0.1/",
            "https://[::1]/",
            "https://[::ffff:7f00:1]/",
            "https://2130706433/",
            "https://169.254.169.254/",
            "http://93.184.216.34/",
        ] {
            assert!(
                matches!(send(&sender, url).await, Outcome::Refused { .. }),
                "{url}"
            );
        }
    }

    #[tokio::test]
    async fn with_private_targets_allowed_a_local_receiver_gets_the_signed_request() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (seen_tx, seen_rx) = tokio::sync::oneshot::channel::<String>();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 8192];
            let n = socket.read(&mut request).await.unwrap();
            socket
                .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            let _ = seen_tx.send(String::from_utf8_lossy(&request[..n]).into_owned());
        });
        let outcome = send(&sender(true), &format!("http://{addr}/hook")).await;
        assert_eq!(outcome, Outcome::Delivered { status: 204 });
        let request = seen_rx.await.unwrap().to_ascii_lowercase();
        assert!(request.starts_with("post /hook http/1.1"), "{request}");
        assert!(request.contains("webhook-id: msg_test"), "{request}");
        assert!(
            request.contains("webhook-timestamp: 1700000000"),
            "{request}"
        );
        assert!(request.contains("webhook-signature: v1,"), "{request}");
        assert!(
            request.contains("content-type: application/json"),
            "{request}"
        );
    }
}
