//! One signaling socket of a person of the day ([`super::meeting`]): it authenticates, pings
//! while waiting and sends `audio_level` once seated, lets the host admit it from the lobby,
//! carries out the person's plan (drop the connection and reconnect, or leave over REST and
//! come back), leaves when the meeting's hold is over, and measures what its greetings and the
//! room's `active_speaker` events took.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use futures::{SinkExt, StreamExt};
use reqwest::Method;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use super::measure::Metrics;
use super::meeting::{Busy, Ctx, Room};
use crate::api::lock;
use crate::load::Joined;
use crate::stack::User;

/// What a person does during one socket, planned when they are seated.
#[derive(Clone, Copy)]
pub(super) enum Plan {
    /// Drop the socket without a close frame, then connect again.
    Reconnect(Duration),
    /// Leave over REST, stay away, join again.
    LeaveAndReturn(Duration, Duration),
}

impl Plan {
    pub(super) fn after(self) -> Duration {
        match self {
            Plan::Reconnect(after) | Plan::LeaveAndReturn(after, _) => after,
        }
    }
}

/// Why a socket ended.
pub(super) enum End {
    /// The meeting ended, the person left for good, or was refused.
    Done,
    Reconnect,
    Away(Duration),
    /// Closed or broken unexpectedly: join again over REST.
    Lost,
}

/// Where the current socket's greeting is measured from.
#[derive(Clone, Copy)]
pub(super) enum Since {
    Join(Instant),
    Reconnect(Instant),
    Lost(Instant),
}

/// A seated socket, counted in the participant-seconds while it lasts.
struct Seat<'a>(&'a Metrics);

impl<'a> Seat<'a> {
    fn new(metrics: &'a Metrics) -> Self {
        metrics.seated.fetch_add(1, Ordering::Relaxed);
        Seat(metrics)
    }
}

impl Drop for Seat<'_> {
    fn drop(&mut self) {
        self.0.seated.fetch_sub(1, Ordering::Relaxed);
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn socket(
    ctx: &Arc<Ctx>,
    room: &Arc<Room>,
    user: &User,
    host: bool,
    joined: &Joined,
    from: Since,
    plans: &mut Vec<Plan>,
    busy: &mut Busy<'_>,
) -> Result<End> {
    let metrics = &ctx.metrics;
    let (mut sink, mut stream) = crate::load::open_socket(joined).await?.split();
    let loud = user.id == room.speaker;
    let (period, level) = if loud {
        (ctx.shape.loud_period, -20)
    } else {
        (ctx.shape.quiet_period, -60)
    };
    let sample = serde_json::json!({"type": "audio_level", "level_dbfs": level}).to_string();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seat: Option<(Instant, Seat)> = None;
    let mut run_started = false;
    let mut heard_run = 0;
    let mut pinged = Instant::now();
    let admit_sent: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let finished = async {
        ctx.finish.cancelled().await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    };
    tokio::pin!(finished);
    loop {
        let due = match (&seat, plans.first()) {
            (Some((at, _)), Some(plan)) if !ctx.stop.is_cancelled() => Some(*at + plan.after()),
            _ => None,
        };
        let planned = async move {
            match due {
                Some(due) => tokio::time::sleep_until(due.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tick.tick() => {
                if seat.is_some() {
                    if loud && !run_started {
                        run_started = true;
                        let run = room.runs.fetch_add(1, Ordering::SeqCst) + 1;
                        *lock(&room.speaking) = Some((run, Instant::now()));
                    }
                    sink.send(Message::text(sample.clone())).await?;
                } else if pinged.elapsed() > Duration::from_secs(5) {
                    pinged = Instant::now();
                    sink.send(Message::text(r#"{"type":"ping"}"#)).await?;
                }
            }
            () = planned => {
                let plan = plans.remove(0);
                if loud {
                    *lock(&room.speaking) = None;
                }
                return Ok(match plan {
                    // Dropped: no close frame, the TCP connection just goes.
                    Plan::Reconnect(_) => End::Reconnect,
                    Plan::LeaveAndReturn(_, away) => {
                        leave(ctx, room, user, sink, stream).await;
                        End::Away(away)
                    }
                });
            }
            () = room.leave.cancelled(), if !host => {
                if loud {
                    *lock(&room.speaking) = None;
                }
                leave(ctx, room, user, sink, stream).await;
                return Ok(End::Done);
            }
            () = ctx.stop.cancelled(), if !busy.parked => busy.park(),
            () = &mut finished => return Ok(End::Done),
            message = stream.next() => {
                let Some(message) = message else {
                    metrics.close("none".to_owned());
                    return Ok(End::Lost);
                };
                match message? {
                    Message::Text(text) => {
                        let event: serde_json::Value = serde_json::from_str(&text)?;
                        match event["type"].as_str().unwrap_or("") {
                            "welcome" => {
                                metrics.count("welcome");
                                if seat.is_none() {
                                    seat = Some((Instant::now(), Seat::new(metrics)));
                                }
                                match from {
                                    Since::Join(t) => metrics.delay("join_to_welcome", t.elapsed()),
                                    Since::Reconnect(t) => metrics.delay("reconnect_to_welcome", t.elapsed()),
                                    Since::Lost(t) => metrics.delay("lost_to_welcome", t.elapsed()),
                                }
                            }
                            "lobby.waiting" => {
                                metrics.count("lobby.waiting");
                                if !host && lock(&admit_sent).is_none() {
                                    *lock(&admit_sent) = Some(Instant::now());
                                    tokio::spawn(admit(Arc::clone(ctx), Arc::clone(room), user.id));
                                }
                            }
                            "admitted" => {
                                metrics.count("admitted");
                                if let Some(sent) = *lock(&admit_sent) {
                                    metrics.delay("admit_to_admitted", sent.elapsed());
                                }
                            }
                            "active_speaker" => {
                                metrics.count("active_speaker events");
                                let about = event["user_id"].as_str().and_then(|u| u.parse::<Uuid>().ok());
                                let speaking = *lock(&room.speaking);
                                if !loud
                                    && about == Some(room.speaker)
                                    && let (Some((run, began)), Some((seated, _))) = (speaking, &seat)
                                    && run != heard_run
                                    && *seated < began
                                {
                                    heard_run = run;
                                    metrics.delay("speaker_delay", began.elapsed());
                                }
                            }
                            "meeting.ended" => {
                                metrics.count("meeting.ended");
                                closing(metrics, &mut stream).await;
                                return Ok(End::Done);
                            }
                            "rejected" => metrics.count("rejected"),
                            "error" => metrics.count(&format!(
                                "error event {}",
                                event["code"].as_str().unwrap_or("?")
                            )),
                            _ => {}
                        }
                    }
                    Message::Close(frame) => {
                        let code = frame.map(|f| u16::from(f.code));
                        metrics.close(code.map_or("no code".to_owned(), |c| c.to_string()));
                        return Ok(match code {
                            Some(1000 | 4403 | 4404) => End::Done,
                            _ => End::Lost,
                        });
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The host admits a guest its socket found waiting.
async fn admit(ctx: Arc<Ctx>, room: Arc<Room>, user: Uuid) {
    let path = format!("/{}/admit/{user}", room.code);
    post_counted(&ctx, "admit", &path, &room.host.token).await;
}

/// POSTs `path` with `token`, retried through 503s until the run is finished; an answer other
/// than 200, or giving up, is counted under `op`.
async fn post_counted(ctx: &Ctx, op: &'static str, path: &str, token: &str) {
    match ctx
        .api
        .retrying(op, Method::POST, path, token, None, None, &ctx.finish)
        .await
    {
        Ok(answer) if answer.status == 200 => {}
        Ok(answer) => ctx.metrics.count(&format!(
            "{op} answered {} {}",
            answer.status,
            answer.code()
        )),
        Err(_) => ctx.metrics.count(&format!("{op} given up")),
    }
}

/// Leaves over REST, then closes the socket and reads what the server says last.
async fn leave<S, R>(ctx: &Ctx, room: &Room, user: &User, mut sink: S, mut stream: R)
where
    S: futures::Sink<Message> + Unpin,
    R: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let path = format!("/{}/leave", room.code);
    post_counted(ctx, "leave", &path, &user.token).await;
    closing(&ctx.metrics, &mut stream).await;
    let _ = sink.send(Message::Close(None)).await;
}

/// Reads what the server sends until its close frame (2 s at most), as a browser does.
async fn closing<R>(metrics: &Metrics, stream: &mut R)
where
    R: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(message)) = stream.next().await {
            if let Message::Close(frame) = message {
                let code = frame.map(|f| u16::from(f.code));
                metrics.close(code.map_or("no code".to_owned(), |c| c.to_string()));
                break;
            }
        }
    })
    .await;
}
