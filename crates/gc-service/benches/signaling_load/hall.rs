//! The town hall's room of sockets, as the load generator holds it: each socket's writer
//! (shared by a keepalive task and the round that speaks on it) and its reader task, started as
//! soon as the socket is open, which stamps the events a round waits for; and how a round's
//! stamps become "until the last socket had it".

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::CONNECT_CONCURRENCY;
use crate::report::{self, micros};
use crate::stream::Ws;

/// How long a broadcast may take to reach every socket before the round counts it missing.
const BROADCAST_TIMEOUT: Duration = Duration::from_secs(10);
const PING: &str = r#"{"type":"ping"}"#;

/// The events a round waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Speaker,
    Joined,
    Connected,
    Left,
}

/// What a socket's reader reports.
pub enum Note {
    Heard {
        socket: usize,
        kind: Kind,
        user: String,
        at: Instant,
    },
    Closed {
        why: String,
    },
}

fn classify(text: &str) -> Option<(Kind, String)> {
    let event: Value = serde_json::from_str(text).ok()?;
    let user = event["user_id"].as_str()?.to_owned();
    let kind = match event["type"].as_str()? {
        "active_speaker" => Kind::Speaker,
        "participant.joined" => Kind::Joined,
        "participant.updated" if event["status"] == "connected" => Kind::Connected,
        "participant.left" => Kind::Left,
        _ => return None,
    };
    Some((kind, user))
}

/// Reads one socket until it closes; events are reported once `armed` (the set-up's own
/// `participant.updated` storm is read and dropped).
async fn listen(
    socket: usize,
    mut stream: SplitStream<Ws>,
    armed: Arc<AtomicBool>,
    notes: mpsc::UnboundedSender<Note>,
) {
    let why = loop {
        match stream.next().await {
            Some(Ok(Message::Text(text))) => {
                let at = Instant::now();
                if armed.load(Ordering::Relaxed)
                    && let Some((kind, user)) = classify(&text)
                {
                    let _ = notes.send(Note::Heard {
                        socket,
                        kind,
                        user,
                        at,
                    });
                }
            }
            Some(Ok(Message::Close(frame))) => {
                break format!("close {}", frame.map_or(1005, |f| u16::from(f.code)));
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => break format!("error: {error}"),
            None => break "closed without a close frame".to_owned(),
        }
    };
    let _ = notes.send(Note::Closed { why });
}

pub type Sink = Arc<tokio::sync::Mutex<SplitSink<Ws, Message>>>;

/// The room's sockets: their writers, and what their readers heard.
pub struct Hall {
    pub sinks: Vec<Sink>,
    notes_tx: mpsc::UnboundedSender<Note>,
    notes: mpsc::UnboundedReceiver<Note>,
    pub armed: Arc<AtomicBool>,
    keepalive: Option<Duration>,
    pub dropped: BTreeMap<String, u64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Hall {
    fn new(keepalive: Option<Duration>) -> Self {
        let (notes_tx, notes) = mpsc::unbounded_channel();
        Self {
            sinks: Vec::new(),
            notes_tx,
            notes,
            armed: Arc::new(AtomicBool::new(false)),
            keepalive,
            dropped: BTreeMap::new(),
            tasks: Vec::new(),
        }
    }

    /// Takes a socket in: its reader starts now, and its keepalive if there is one.
    pub fn add(&mut self, ws: Ws) {
        let socket = self.sinks.len();
        let (sink, stream) = ws.split();
        let sink: Sink = Arc::new(tokio::sync::Mutex::new(sink));
        self.tasks.push(tokio::spawn(listen(
            socket,
            stream,
            Arc::clone(&self.armed),
            self.notes_tx.clone(),
        )));
        if let Some(every) = self.keepalive {
            let sink = Arc::clone(&sink);
            self.tasks.push(tokio::spawn(async move {
                let mut ticks = tokio::time::interval_at(
                    (Instant::now() + every).into(),
                    every.max(Duration::from_millis(10)),
                );
                loop {
                    ticks.tick().await;
                    if sink.lock().await.send(Message::text(PING)).await.is_err() {
                        return;
                    }
                }
            }));
        }
        self.sinks.push(sink);
    }

    fn note_closed(&mut self, note: Note) {
        if let Note::Closed { why } = note {
            *self.dropped.entry(why).or_default() += 1;
        }
    }

    /// Forgets what was heard so far (closes are kept).
    pub fn drain(&mut self) {
        while let Ok(note) = self.notes.try_recv() {
            self.note_closed(note);
        }
    }

    pub fn open(&self) -> usize {
        self.sinks.len() - self.dropped.values().sum::<u64>() as usize
    }

    /// Waits until every open socket heard each of `keys` (kind and user), or the timeout;
    /// returns, for each key, the first arrival at each socket that heard it.
    pub async fn gather(&mut self, keys: &[(Kind, &str)]) -> Vec<Vec<Instant>> {
        let mut seen: Vec<HashMap<usize, Instant>> = vec![HashMap::new(); keys.len()];
        let deadline = tokio::time::Instant::now() + BROADCAST_TIMEOUT;
        while seen.iter().any(|s| s.len() < self.open()) {
            let Ok(Some(note)) = tokio::time::timeout_at(deadline, self.notes.recv()).await else {
                break;
            };
            match note {
                Note::Heard {
                    socket,
                    kind,
                    user,
                    at,
                } => {
                    if let Some(i) = keys.iter().position(|&(k, u)| k == kind && u == user) {
                        seen[i].entry(socket).or_insert(at);
                    }
                }
                closed @ Note::Closed { .. } => self.note_closed(closed),
            }
        }
        seen.into_iter()
            .map(|s| s.into_values().collect())
            .collect()
    }

    pub fn close(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// One broadcast as the sockets heard it, from a start instant.
#[derive(Clone, Copy, Debug, Default)]
pub struct Spread {
    /// Until the last socket had it (microseconds; 0 when nobody had it).
    last_us: u64,
    /// The median socket.
    p50_us: u64,
    heard: usize,
    /// Arrivals before the start (counted as 0).
    early: usize,
}

impl Spread {
    pub fn of(start: Instant, arrivals: &[Instant]) -> Self {
        let mut us: Vec<u64> = arrivals
            .iter()
            .map(|at| micros(at.saturating_duration_since(start)))
            .collect();
        us.sort_unstable();
        Self {
            last_us: us.last().copied().unwrap_or(0),
            p50_us: report::percentile(&us, 0.5),
            heard: us.len(),
            early: arrivals.iter().filter(|at| **at < start).count(),
        }
    }
}

/// The rounds' figures of one measure: the last socket's time and the median socket's, and
/// what was missed.
#[derive(Default)]
pub struct Series {
    last_us: Vec<u64>,
    p50_us: Vec<u64>,
    missing: usize,
    early: usize,
}

impl Series {
    pub fn push(&mut self, spread: Spread, due: usize) {
        if spread.heard > 0 {
            self.last_us.push(spread.last_us);
            self.p50_us.push(spread.p50_us);
        }
        self.missing += due.saturating_sub(spread.heard);
        self.early += spread.early;
    }

    /// Prints `<label> last p50 … p99 … max …; median socket p50 …` and returns the
    /// `result` fields `<key>_last_p50_ms=… <key>_last_p99_ms=… <key>_last_max_ms=…
    /// <key>_sock_p50_ms=… <key>_missing=…`.
    pub fn report(&mut self, label: &str, key: &str) -> String {
        self.last_us.sort_unstable();
        self.p50_us.sort_unstable();
        let ms = |sorted: &[u64], p: f64| report::percentile(sorted, p) as f64 / 1000.0;
        println!(
            "{label:<34} last socket: p50 {:.2}  p99 {:.2}  max {:.2} ms; median socket p50 \
             {:.2} ms; {} rounds, {} missing, {} early",
            ms(&self.last_us, 0.5),
            ms(&self.last_us, 0.99),
            ms(&self.last_us, 1.0),
            ms(&self.p50_us, 0.5),
            self.last_us.len(),
            self.missing,
            self.early
        );
        format!(
            "{key}_last_p50_ms={:.2} {key}_last_p99_ms={:.2} {key}_last_max_ms={:.2} \
             {key}_sock_p50_ms={:.2} {key}_missing={} {key}_early={}",
            ms(&self.last_us, 0.5),
            ms(&self.last_us, 0.99),
            ms(&self.last_us, 1.0),
            ms(&self.p50_us, 0.5),
            self.missing,
            self.early
        )
    }
}

/// CPU milliseconds summed over the rounds' windows, by process.
#[derive(Default)]
pub struct CpuTotal(pub Vec<(String, Option<u64>)>);

impl CpuTotal {
    pub fn add(&mut self, spent: Vec<(String, Option<u64>)>) {
        if self.0.is_empty() {
            self.0 = spent;
            return;
        }
        for ((_, total), (_, ms)) in self.0.iter_mut().zip(spent) {
            *total = total.zip(ms).map(|(t, m)| t + m);
        }
    }

    /// `<prefix>_<name>_ms_per_round=…` for the names given.
    pub fn per_round(&self, prefix: &str, names: &[&str], rounds: usize) -> String {
        self.0
            .iter()
            .filter(|(name, _)| names.contains(&name.as_str()))
            .filter_map(|(name, ms)| {
                ms.map(|ms| {
                    format!(
                        "{prefix}_{name}_ms_per_round={:.1}",
                        ms as f64 / rounds.max(1) as f64
                    )
                })
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Opens the sockets `open` yields, in order, into a hall; says how far it got on a failure.
pub async fn fill<F, Fut>(
    people: usize,
    keepalive: Option<Duration>,
    open: F,
) -> anyhow::Result<Hall>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Ws>>,
{
    let mut hall = Hall::new(keepalive);
    let mut opening = futures::stream::iter(0..people)
        .map(open)
        .buffered(CONNECT_CONCURRENCY);
    while let Some(ws) = opening.next().await {
        let ws = ws.with_context(|| {
            format!(
                "socket {} of {people} (the first {} are open)",
                hall.sinks.len() + 1,
                hall.sinks.len()
            )
        })?;
        hall.add(ws);
    }
    Ok(hall)
}
