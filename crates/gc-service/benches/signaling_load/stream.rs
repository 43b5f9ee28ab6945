//! The benchmark's message stream and what the clients hear back.
//!
//! Every client sends `audio_level` once a period (20 Hz), at its own offset within the period
//! so that the load is spread evenly rather than sent in one burst a period. The clients are
//! grouped in rooms; in each room one member at a time is the scripted speaker for a turn
//! (2 s), rotating through the members, and the rooms' turns are staggered over the turn so
//! that speaker changes are spread too. The speaker sends −20 dBFS, everyone else −60.
//!
//! MC makes someone the speaker at the sample that completes a 300 ms run (receive times).
//! With samples every 50 ms a run starting on the grid would be completed by a sample exactly
//! 300 ms after its start, where a millisecond of timer or scheduling jitter decides whether
//! that sample or the next one completes it: the measured delay would jump by a period or turn
//! negative. So a turn's first loud sample is sent off the speaker's grid, placed so that the
//! completing sample falls half a period past the 300 ms (`Schedule::run_offset`): at 20 Hz
//! half a period off the grid, and the completing sample is the one sent 325 ms after the run
//! began, 25 ms clear of the boundary on both sides. It costs one extra sample per turn. Where
//! that would put the extra sample on the grid itself (5 Hz: 300 ms is 1.5 periods), it goes a
//! quarter period off it instead, and the completing sample 350 ms after the run began.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::report::micros;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const LOUD: &str = r#"{"type":"audio_level","level_dbfs":-20}"#;
const QUIET: &str = r#"{"type":"audio_level","level_dbfs":-60}"#;

/// Send times of one client's samples not echoed yet (echo mode: echoes come back in order).
pub type EchoQueue = Arc<Mutex<VecDeque<Instant>>>;

/// When each client sends what. Client `i` is member `i % per_room` of room `i / per_room`.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    pub start: Instant,
    pub duration: Duration,
    /// Between two samples of a client (50 ms for 20 Hz).
    pub period: Duration,
    /// How long each scripted speaker talks.
    pub turn: Duration,
    /// MC's `ACTIVE_SPEAKER_MIN_DURATION_MS`.
    pub min_run: Duration,
    pub rooms: usize,
    pub per_room: usize,
}

impl Schedule {
    pub fn end(&self) -> Instant {
        self.start + self.duration
    }

    fn clients(&self) -> u64 {
        (self.rooms * self.per_room).max(1) as u64
    }

    /// Client `i`'s offset within the period: the clients are spread evenly over it, in a
    /// scattered order (7919 is prime) so that one room's members do not send together.
    fn phase(&self, client: usize) -> Duration {
        let slot = (client as u64 * 7919) % self.clients();
        scale(self.period, slot, self.clients())
    }

    fn turn_start(&self, room: usize, turn: u64) -> Instant {
        let stagger = scale(self.turn, room as u64, self.rooms.max(1) as u64);
        self.start + stagger + scale(self.turn, turn, 1)
    }

    /// The first turn of `member` in `room`; its later turns come every `per_room` turns.
    fn first_turn(&self, room: usize, member: usize) -> u64 {
        ((member + self.per_room - room % self.per_room) % self.per_room) as u64
    }

    /// The latest turn of `member` in `room` that had begun at `at`.
    fn turn_at(&self, room: usize, member: usize, at: Instant) -> Option<u64> {
        let first = self.first_turn(room, member);
        let since = at.checked_duration_since(self.turn_start(room, first))?;
        let cycle = self.turn.as_nanos() * self.per_room as u128;
        let cycles = since.as_nanos() / cycle.max(1);
        Some(first + u64::try_from(cycles).ok()? * self.per_room as u64)
    }

    /// How far after a grid sample a run's first (extra) loud sample goes: where the sample
    /// completing the run comes half a period after `min_run` (the middle between "too short"
    /// and "long enough"), kept a quarter period or more from the grid samples on either side.
    /// Half a period whenever `min_run` is a whole number of periods (20, 30, 40 Hz ...).
    fn run_offset(&self) -> Duration {
        let period = self.period.as_nanos().max(1);
        let ideal = (period / 2 + period - self.min_run.as_nanos() % period) % period;
        let offset = ideal.clamp(period / 4, period * 3 / 4);
        Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX))
    }

    /// Where client `client`'s run of `turn` begins: its first off-grid point (between two of
    /// its samples, `run_offset` after one) at or after the turn's start.
    fn run_start(&self, client: usize, turn: u64) -> Instant {
        let first = self.start + self.phase(client) + self.run_offset();
        let begins = self.turn_start(client / self.per_room, turn);
        match begins.checked_duration_since(first) {
            None => first,
            Some(wait) => {
                let periods = wait.as_nanos().div_ceil(self.period.as_nanos().max(1));
                first + scale(self.period, u64::try_from(periods).unwrap_or(u64::MAX), 1)
            }
        }
    }
}

/// `d × num ÷ den`, in nanoseconds.
fn scale(d: Duration, num: u64, den: u64) -> Duration {
    let nanos = d.as_nanos() * u128::from(num) / u128::from(den.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// What one client sent.
#[derive(Debug, Default)]
pub struct Talked {
    pub sent: u64,
    /// Its turns that reached a completing sample, and when that sample was sent.
    pub completions: Vec<(u64, Instant)>,
    /// How late each send was against the schedule, in microseconds: the load generator's own
    /// health (a late client sends a burst, not the stream).
    pub late_us: Vec<u64>,
    pub failed: Option<String>,
}

/// Sends client `client`'s stream until the schedule ends.
pub async fn talk(
    mut sink: SplitSink<Ws, Message>,
    schedule: Schedule,
    client: usize,
    echo: Option<EchoQueue>,
) -> Talked {
    let mut talked = Talked::default();
    let end = schedule.end();
    let mut sample = schedule.start + schedule.phase(client);
    let mut next_turn = schedule.first_turn(client / schedule.per_room, client % schedule.per_room);
    // The turn being talked: its number, when its run began, when it ends, whether completed.
    let mut run: Option<(u64, Instant, Instant, bool)> = None;
    loop {
        let run_start = schedule.run_start(client, next_turn);
        let starts_run = run_start < sample;
        let at = if starts_run { run_start } else { sample };
        if at >= end {
            break;
        }
        tokio::time::sleep_until(at.into()).await;
        let mut completes = None;
        let loud = if starts_run {
            let ends = schedule.turn_start(client / schedule.per_room, next_turn + 1);
            run = Some((next_turn, at, ends, false));
            next_turn += schedule.per_room as u64;
            true
        } else {
            sample += schedule.period;
            match run.as_mut() {
                Some((turn, began, ends, completed)) if at < *ends => {
                    if !*completed && at.duration_since(*began) >= schedule.min_run {
                        *completed = true;
                        completes = Some(*turn);
                    }
                    true
                }
                _ => false,
            }
        };
        let now = Instant::now();
        talked
            .late_us
            .push(micros(now.saturating_duration_since(at)));
        if let Some(queue) = &echo {
            queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push_back(now);
        }
        let text = Utf8Bytes::from_static(if loud { LOUD } else { QUIET });
        if let Err(error) = sink.send(Message::Text(text)).await {
            talked.failed = Some(format!("send failed: {error}"));
            break;
        }
        talked.sent += 1;
        if let Some(turn) = completes {
            talked.completions.push((turn, now));
        }
    }
    talked
}

/// What one client heard.
#[derive(Debug, Default)]
pub struct Heard {
    /// `active_speaker` events naming someone, and when they arrived.
    pub speakers: Vec<(String, Instant)>,
    /// Echo mode: the round trip of each sample echoed by the end of the run, microseconds.
    pub echo_us: Vec<u64>,
    /// Why the socket closed before the reading stopped, if it did.
    pub closed: Option<String>,
}

/// Reads one client's socket until `until` (after the run's end, so late events still count).
pub async fn listen(
    mut stream: SplitStream<Ws>,
    end: Instant,
    until: Instant,
    echo: Option<EchoQueue>,
) -> Heard {
    let mut heard = Heard::default();
    loop {
        let text = match tokio::time::timeout_at(until.into(), stream.next()).await {
            Err(_) => break,
            Ok(None) => {
                heard.closed = Some("closed without a close frame".to_owned());
                break;
            }
            Ok(Some(Err(error))) => {
                heard.closed = Some(format!("error: {error}"));
                break;
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                let code = frame.map_or(1005, |f| u16::from(f.code));
                heard.closed = Some(format!("close {code}"));
                break;
            }
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(_))) => continue,
        };
        let now = Instant::now();
        if let Some(queue) = &echo {
            let sent = queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front();
            if let Some(sent) = sent.filter(|_| now <= end) {
                heard.echo_us.push(micros(now - sent));
            }
        } else if text.contains("active_speaker") {
            let event: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if let (Some("active_speaker"), Some(user)) =
                (event["type"].as_str(), event["user_id"].as_str())
            {
                heard.speakers.push((user.to_owned(), now));
            }
        }
    }
    heard
}

/// The delays from each completing sample to `active_speaker` at the room's other clients.
#[derive(Debug, Default)]
pub struct Delays {
    /// Microseconds, sorted.
    pub sorted_us: Vec<u64>,
    /// Turns that reached their completing sample.
    pub changes: usize,
    /// Events due: each change, at each other client of its room that was not dropped.
    pub expected: usize,
    pub missing: usize,
    /// Events that came before their completing sample was sent (MC switched early).
    pub early: usize,
    /// Events naming a turn that never completed, or nobody of the room.
    pub unmatched: usize,
    pub duplicates: usize,
}

/// Matches what the clients heard to the turns that completed. `users[i]` is client i's
/// user id. Each user speaks once every `per_room` turns, so the speaker named by an event and
/// its arrival time identify the turn.
pub fn speaker_delays(
    schedule: &Schedule,
    users: &[String],
    talked: &[Talked],
    heard: &[Heard],
) -> Delays {
    let per_room = schedule.per_room;
    let dropped: Vec<bool> = talked
        .iter()
        .zip(heard)
        .map(|(t, h)| t.failed.is_some() || h.closed.is_some())
        .collect();
    let client_of: HashMap<&str, usize> = users
        .iter()
        .enumerate()
        .map(|(i, u)| (u.as_str(), i))
        .collect();
    let mut completed: HashMap<(usize, u64), (usize, Instant)> = HashMap::new();
    for (client, t) in talked.iter().enumerate() {
        for &(turn, sent) in &t.completions {
            completed.insert((client / per_room, turn), (client, sent));
        }
    }
    let mut delays = Delays {
        changes: completed.len(),
        ..Delays::default()
    };
    for &(speaker, _) in completed.values() {
        let room = speaker / per_room;
        delays.expected += (room * per_room..(room + 1) * per_room)
            .filter(|&c| c != speaker && !dropped.get(c).copied().unwrap_or(true))
            .count();
    }
    let mut seen: HashSet<(usize, u64, usize)> = HashSet::new();
    for (client, h) in heard.iter().enumerate() {
        if dropped.get(client).copied().unwrap_or(true) {
            continue;
        }
        let room = client / per_room;
        for (user, at) in &h.speakers {
            let Some(&speaker) = client_of.get(user.as_str()) else {
                delays.unmatched += 1;
                continue;
            };
            if speaker == client {
                continue;
            }
            let turn = (speaker / per_room == room)
                .then(|| schedule.turn_at(room, speaker % per_room, *at))
                .flatten();
            let Some((turn, &(_, sent))) = turn.and_then(|t| Some((t, completed.get(&(room, t))?)))
            else {
                delays.unmatched += 1;
                continue;
            };
            if !seen.insert((room, turn, client)) {
                delays.duplicates += 1;
            } else if *at < sent {
                delays.early += 1;
            } else {
                delays.sorted_us.push(micros(*at - sent));
            }
        }
    }
    let received = delays.sorted_us.len() + delays.early;
    delays.missing = delays.expected.saturating_sub(received);
    delays.sorted_us.sort_unstable();
    delays
}
