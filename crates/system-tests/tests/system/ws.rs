//! A signaling client for tests: a real WebSocket (tokio-tungstenite) to MC, with waits that
//! are bounded in time and name what they waited for when they fail.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single wait may take.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Events read while waiting for another, oldest first.
    pub seen: Vec<Value>,
}

/// What the server did next.
#[derive(Debug)]
pub enum Next {
    Event(Value),
    Closed(u16, String),
}

impl Ws {
    pub async fn connect(url: &str) -> Self {
        let (stream, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("the WebSocket upgrade timed out")
            .expect("the WebSocket upgrade failed");
        Self {
            stream,
            seen: Vec::new(),
        }
    }

    /// Connects and sends `auth` with `token`.
    pub async fn join(url: &str, token: &str) -> Self {
        let mut ws = Self::connect(url).await;
        ws.send(json!({"type": "auth", "token": token})).await;
        ws
    }

    pub async fn send(&mut self, message: Value) {
        self.send_text(&message.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream
            .send(Message::text(text))
            .await
            .expect("cannot send");
    }

    pub async fn send_raw(&mut self, message: Message) -> bool {
        self.stream.send(message).await.is_ok()
    }

    /// The next event or the close, whatever comes first.
    pub async fn next(&mut self) -> Next {
        loop {
            let frame = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("nothing came from the server in time");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    return Next::Event(serde_json::from_str(&text).expect("an event is JSON"));
                }
                Some(Ok(Message::Close(frame))) => {
                    return match frame {
                        Some(frame) => {
                            Next::Closed(u16::from(frame.code), frame.reason.to_string())
                        }
                        None => Next::Closed(u16::from(CloseCode::Status), String::new()),
                    };
                }
                Some(Ok(_)) => continue,
                // The server dropped the connection without a close frame.
                Some(Err(_)) | None => return Next::Closed(1006, String::new()),
            }
        }
    }

    /// Waits for an event of `kind`, keeping the others in `seen`.
    pub async fn expect(&mut self, kind: &str) -> Value {
        loop {
            match self.next().await {
                Next::Event(event) if event["type"] == kind => return event,
                Next::Event(event) => self.seen.push(event),
                Next::Closed(code, reason) => panic!(
                    "closed {code} ({reason}) while waiting for {kind}; seen {:?}",
                    self.seen
                ),
            }
        }
    }

    /// Waits for an event of `kind` that `wanted` accepts, keeping the others in `seen`.
    pub async fn expect_where(&mut self, kind: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        loop {
            let event = self.expect(kind).await;
            if wanted(&event) {
                return event;
            }
            self.seen.push(event);
        }
    }

    /// The next event, which must be of `kind`.
    pub async fn expect_next(&mut self, kind: &str) -> Value {
        match self.next().await {
            Next::Event(event) => {
                assert_eq!(event["type"], kind, "{event}");
                event
            }
            Next::Closed(code, reason) => panic!("closed {code} ({reason}) instead of {kind}"),
        }
    }

    /// Waits for the close, keeping the events before it in `seen`; its code and reason.
    pub async fn expect_close(&mut self) -> (u16, String) {
        loop {
            match self.next().await {
                Next::Event(event) => self.seen.push(event),
                Next::Closed(code, reason) => return (code, reason),
            }
        }
    }

    /// Sends `ping` and reads up to the `pong`: every event queued for this socket before
    /// the ping was answered is in `seen` afterwards.
    pub async fn sync(&mut self) {
        self.send(json!({"type": "ping"})).await;
        self.expect("pong").await;
    }

    /// Events of `kind` in `seen`.
    pub fn seen_of(&self, kind: &str) -> Vec<&Value> {
        self.seen.iter().filter(|e| e["type"] == kind).collect()
    }
}
