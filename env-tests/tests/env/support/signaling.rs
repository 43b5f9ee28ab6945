//! A signaling client (docs/signaling.md): connects to the `signaling_url` a join answered,
//! authenticates with the meeting token as its first message, and waits for events by type,
//! always within a timeout. Every event it read is kept, in order, for assertions and for the
//! message of a failure.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use super::config::{install_crypto, stack};
use super::gc::Joined;

/// Connecting and upgrading; a controller that is down fails here at once (connection refused).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a test waits for an event it expects.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Socket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub url: String,
    /// Every JSON message received, in order.
    pub seen: Vec<Value>,
}

/// What the next read brought.
enum Read {
    Event(Value),
    /// The close code (1006 when the connection ended without a close frame) and reason.
    Closed(u16, String),
}

impl Socket {
    /// Connects to the join's signaling URL and authenticates with its meeting token.
    pub async fn open(joined: &Joined) -> anyhow::Result<Socket> {
        Socket::connect(&joined.signaling_url, &joined.meeting_token).await
    }

    /// Connects to `url` and sends `{"type": "auth", "token": token}` as the first message.
    pub async fn connect(url: &str, token: &str) -> anyhow::Result<Socket> {
        install_crypto();
        let hint = || {
            format!(
                "is the meeting controller that owns the meeting up? (the controllers of \
                 this stack: {})",
                stack()
                    .mcs
                    .iter()
                    .map(|mc| mc.describe())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let (ws, _) = timeout(CONNECT_TIMEOUT, connect_async(url))
            .await
            .map_err(|_| {
                anyhow!(
                    "MC's signaling WebSocket at {url} did not upgrade within {} s; {}",
                    CONNECT_TIMEOUT.as_secs(),
                    hint()
                )
            })?
            .map_err(|error| {
                anyhow!(
                    "MC's signaling WebSocket at {url} could not be reached: {error}; {}",
                    hint()
                )
            })?;
        let mut socket = Socket {
            ws,
            url: url.to_owned(),
            seen: Vec::new(),
        };
        socket.send(json!({"type": "auth", "token": token})).await?;
        Ok(socket)
    }

    pub async fn send(&mut self, message: Value) -> anyhow::Result<()> {
        self.send_text(message.to_string()).await
    }

    pub async fn send_text(&mut self, text: String) -> anyhow::Result<()> {
        timeout(EVENT_TIMEOUT, self.ws.send(Message::text(text)))
            .await
            .map_err(|_| anyhow!("sending on {} took over 10 s", self.url))?
            .with_context(|| format!("sending on {}", self.url))
    }

    /// One microphone sample, as a client sends every 20–100 ms.
    pub async fn audio_level(&mut self, level_dbfs: f64) -> anyhow::Result<()> {
        self.send(json!({"type": "audio_level", "level_dbfs": level_dbfs}))
            .await
    }

    /// `ping`, answered by `pong`: proves the socket is served, and keeps it from going idle.
    pub async fn ping(&mut self) -> anyhow::Result<()> {
        self.send(json!({"type": "ping"})).await?;
        self.wait_for("pong").await.map(drop)
    }

    async fn read(&mut self, deadline: Instant) -> Option<anyhow::Result<Read>> {
        loop {
            let next = match timeout_at(deadline, self.ws.next()).await {
                Err(_) => return None,
                Ok(next) => next,
            };
            return Some(Ok(match next {
                None => Read::Closed(1006, "the connection ended without a close frame".into()),
                Some(Err(error)) => Read::Closed(1006, format!("the connection failed: {error}")),
                Some(Ok(Message::Close(frame))) => match frame {
                    Some(frame) => Read::Closed(u16::from(frame.code), frame.reason.to_string()),
                    None => Read::Closed(1005, String::new()),
                },
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<Value>(&text) {
                    Ok(event) => {
                        self.seen.push(event.clone());
                        Read::Event(event)
                    }
                    Err(error) => {
                        return Some(Err(anyhow!(
                            "{} sent a text frame that is not JSON ({error}): {text}",
                            self.url
                        )));
                    }
                },
                // Pings are answered by the library; nothing else is expected.
                Some(Ok(_)) => continue,
            }));
        }
    }

    /// Waits for the next event of type `kind`, passing over others.
    pub async fn wait_for(&mut self, kind: &str) -> anyhow::Result<Value> {
        self.wait_for_where(kind, |_| true, EVENT_TIMEOUT).await
    }

    /// Waits up to `within` for an event of type `kind` that `wanted` accepts.
    pub async fn wait_for_where(
        &mut self,
        kind: &str,
        wanted: impl Fn(&Value) -> bool,
        within: Duration,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + within;
        loop {
            match self.read(deadline).await {
                None => bail!(
                    "no `{kind}` within {} s on {}; received: {}",
                    within.as_secs_f32(),
                    self.url,
                    self.types_seen()
                ),
                Some(Err(error)) => return Err(error),
                Some(Ok(Read::Closed(code, reason))) => bail!(
                    "{} closed with {code} ({reason}) while waiting for `{kind}`; received: {}",
                    self.url,
                    self.types_seen()
                ),
                Some(Ok(Read::Event(event))) => {
                    if event["type"] == kind && wanted(&event) {
                        return Ok(event);
                    }
                }
            }
        }
    }

    /// Waits for the server to close the socket, and returns the close code and reason.
    /// Events that come first are kept in `seen`.
    pub async fn closed(&mut self) -> anyhow::Result<(u16, String)> {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        loop {
            match self.read(deadline).await {
                None => bail!(
                    "{} was not closed within {} s; received: {}",
                    self.url,
                    EVENT_TIMEOUT.as_secs(),
                    self.types_seen()
                ),
                Some(Err(error)) => return Err(error),
                Some(Ok(Read::Closed(code, reason))) => return Ok((code, reason)),
                Some(Ok(Read::Event(_))) => {}
            }
        }
    }

    /// The types of the events received so far, for messages.
    pub fn types_seen(&self) -> String {
        let types: Vec<&str> = self
            .seen
            .iter()
            .map(|event| event["type"].as_str().unwrap_or("?"))
            .collect();
        format!("[{}]", types.join(", "))
    }
}
