//! The load that runs through each fault: rooms that are created, joined, admitted into, spoken
//! in, left and ended again and again, each member with a signaling socket that sends audio
//! levels and comes back by itself (REST join again, then a new socket) when its socket is lost.
//!
//! Room *r* uses users `r * per_room ..` of the stack's org: member 0 hosts, member 1 speaks
//! (−20 dBFS at 20 Hz), the others are quiet (−60 dBFS at 2 Hz), and the last one stays in the
//! lobby. Every wait is bounded by [`api::GIVE_UP`] or by the load's stop.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{SinkExt, StreamExt};
use reqwest::Method;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::api::{Api, lock};
use crate::stack::User;

#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub rooms: usize,
    pub per_room: usize,
    /// Rooms are held this long (drawn between the two) before their members leave and the
    /// host ends them, and are then created anew; `None`: held until the load stops.
    pub hold: Option<(Duration, Duration)>,
}

/// What a socket saw when it was greeted again after it had been lost.
#[derive(Clone, Debug)]
pub struct Return {
    pub code: String,
    pub user: Uuid,
    pub took: Duration,
    pub participants: usize,
    pub lobby: Option<usize>,
    pub active_speaker: Option<String>,
}

#[derive(Default)]
pub struct Sockets {
    pub returns: Mutex<Vec<Return>>,
    /// Sockets lost and not greeted again (yet).
    pub away: Mutex<std::collections::HashMap<Uuid, Instant>>,
    pub greetings: std::sync::atomic::AtomicU64,
    /// Where each greeted socket is now: user → (meeting code, signaling URL).
    pub on: Mutex<std::collections::HashMap<Uuid, (String, String)>>,
    /// Close codes the sockets were sent, and how often.
    pub closes: Mutex<std::collections::BTreeMap<u16, u64>>,
}

/// A room the load holds when it stops: the checker's and the scenario's view of it.
#[derive(Clone, Debug)]
pub struct Room {
    pub code: String,
    pub host: User,
    pub members: Vec<User>,
}

pub struct Load {
    pub api: Arc<Api>,
    pub sockets: Arc<Sockets>,
    pub live: Arc<Mutex<Vec<Room>>>,
    /// No new step begins (the rooms' workers finish the one they are in).
    stop: CancellationToken,
    /// Every retry gives up (the load is finished).
    abandon: CancellationToken,
    /// Workers still in a step.
    busy: Arc<std::sync::atomic::AtomicUsize>,
    tasks: JoinSet<()>,
}

impl Load {
    pub fn start(api: Arc<Api>, users: &[User], shape: Shape) -> Result<Load> {
        if users.len() < shape.rooms * shape.per_room || shape.per_room < 3 {
            bail!("{} users cannot fill {shape:?}", users.len());
        }
        let stop = CancellationToken::new();
        let abandon = CancellationToken::new();
        let busy = Arc::new(std::sync::atomic::AtomicUsize::new(shape.rooms));
        let sockets = Arc::new(Sockets::default());
        let live = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = JoinSet::new();
        for r in 0..shape.rooms {
            let members = users[r * shape.per_room..(r + 1) * shape.per_room].to_vec();
            let worker = Worker {
                api: Arc::clone(&api),
                sockets: Arc::clone(&sockets),
                live: Arc::clone(&live),
                stop: stop.clone(),
                abandon: abandon.clone(),
                shape,
                index: r,
            };
            let busy = Arc::clone(&busy);
            tasks.spawn(async move {
                worker.run(members).await;
                busy.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            });
        }
        Ok(Load {
            api,
            sockets,
            live,
            stop,
            abandon,
            busy,
            tasks,
        })
    }

    /// Stops creating, joining and leaving once the step each room is in has been answered
    /// (a call refused with 503 is retried until it is, within [`crate::api::GIVE_UP`]): what
    /// the checker then reads is what the load's users were told. Sockets stay open, rooms
    /// stay live; [`Load::finish`] ends them.
    pub async fn pause(&self) {
        self.stop.cancel();
        let limit = crate::api::GIVE_UP + Duration::from_secs(10);
        let busy = Arc::clone(&self.busy);
        let parked = crate::process::wait_for(limit, "every room's step answered", || {
            let busy = Arc::clone(&busy);
            async move { busy.load(std::sync::atomic::Ordering::Relaxed) == 0 }
        })
        .await;
        if let Err(error) = parked {
            self.api.stats.violation(format!("{error:#}"));
        }
    }

    /// Ends every room the load still holds, and closes its sockets.
    pub async fn finish(mut self) {
        self.stop.cancel();
        self.abandon.cancel();
        let rooms = lock(&self.live).clone();
        let never = CancellationToken::new();
        for room in rooms {
            let _ = self
                .api
                .end_meeting(&room.code, &room.host.token, &never)
                .await;
        }
        // Sockets end with `meeting.ended`; anything left is dropped with the tasks.
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        self.tasks.abort_all();
    }
}

struct Worker {
    api: Arc<Api>,
    sockets: Arc<Sockets>,
    live: Arc<Mutex<Vec<Room>>>,
    stop: CancellationToken,
    abandon: CancellationToken,
    shape: Shape,
    index: usize,
}

impl Worker {
    async fn run(self, members: Vec<User>) {
        let mut round = 0_u32;
        while !self.stop.is_cancelled() {
            round += 1;
            if let Err(error) = self.one_room(&members, round).await
                && !self.abandon.is_cancelled()
            {
                // A room given up (a fault outlasted GIVE_UP): noted, and the next one begins.
                self.api
                    .stats
                    .violation(format!("room worker {}: {error:#}", self.index));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    async fn one_room(&self, members: &[User], round: u32) -> Result<()> {
        let host = &members[0];
        let body = serde_json::json!({
            "display_name": format!("Fault room {} #{round}", self.index),
            "max_participants": members.len() as u32 + 2,
        });
        let Some(created) =
            create_meeting(&self.api, &host.token, &body, &self.abandon, &self.stop).await?
        else {
            return Ok(());
        };
        let code = created.text("meeting_code")?;
        lock(&self.api.stats.created).push(code.clone());
        let room = Room {
            code: code.clone(),
            host: host.clone(),
            members: members.to_vec(),
        };
        lock(&self.live).push(room);

        let room_stop = CancellationToken::new();
        let mut sockets = JoinSet::new();
        let result = self.fill(&code, members, &room_stop, &mut sockets).await;
        if result.is_ok()
            && let Some((low, high)) = self.shape.hold
        {
            let hold = low + (high - low).mul_f64(fastrand::f64());
            tokio::select! {
                () = tokio::time::sleep(hold) => {}
                () = self.stop.cancelled() => {}
            }
        } else if result.is_ok() {
            self.stop.cancelled().await;
        }
        if self.stop.is_cancelled() {
            // Left as it is for the checker; Load::finish ends it.
            sockets.detach_all();
            return result;
        }
        // Members leave, then the host ends it.
        for member in &members[1..members.len() - 1] {
            let answer = self
                .api
                .retrying(
                    "leave",
                    Method::POST,
                    &format!("/{code}/leave"),
                    &member.token,
                    None,
                    None,
                    &self.abandon,
                )
                .await?;
            if answer.status != 200 {
                bail!("leave of {code}: {} {}", answer.status, answer.body);
            }
        }
        self.api
            .end_meeting(&code, &host.token, &self.abandon)
            .await?;
        lock(&self.live).retain(|r| r.code != code);
        room_stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while sockets.join_next().await.is_some() {}
        })
        .await;
        sockets.abort_all();
        result
    }

    /// The host joins, every member joins and opens a socket, the host admits all but the last.
    async fn fill(
        &self,
        code: &str,
        members: &[User],
        room_stop: &CancellationToken,
        sockets: &mut JoinSet<()>,
    ) -> Result<()> {
        for (i, member) in members.iter().enumerate() {
            let joined = join(&self.api, code, member, &self.abandon).await?;
            let expected = if i == 0 { "admitted" } else { "waiting" };
            if joined.status != expected {
                bail!(
                    "join of {code} by member {i}: {} (expected {expected})",
                    joined.status
                );
            }
            let socket = Socket {
                api: Arc::clone(&self.api),
                sockets: Arc::clone(&self.sockets),
                code: code.to_owned(),
                user: member.clone(),
                loud: i == 1,
                stop: room_stop.clone(),
            };
            sockets.spawn(socket.run(joined));
            if i > 0 && i < members.len() - 1 {
                let answer = self
                    .api
                    .retrying(
                        "admit",
                        Method::POST,
                        &format!("/{code}/admit/{}", member.id),
                        &members[0].token,
                        None,
                        None,
                        &self.abandon,
                    )
                    .await?;
                if answer.status != 200 {
                    bail!("admit into {code}: {} {}", answer.status, answer.body);
                }
            }
        }
        Ok(())
    }
}

pub struct Joined {
    pub status: String,
    pub token: String,
    pub url: String,
}

/// Creates a meeting with `body` (one idempotency key for every retry, so a retried create
/// makes one meeting), waiting while the org is at its limit of meetings; `None` when `stop`
/// is cancelled meanwhile. Gives up with `give_up` (as [`Api::retrying`]).
pub async fn create_meeting(
    api: &Api,
    token: &str,
    body: &serde_json::Value,
    give_up: &CancellationToken,
    stop: &CancellationToken,
) -> Result<Option<crate::api::Answer>> {
    let key = Uuid::new_v4().to_string();
    loop {
        let answer = api
            .retrying(
                "create",
                Method::POST,
                "",
                token,
                Some(body),
                Some(&key),
                give_up,
            )
            .await?;
        match answer.status {
            201 => return Ok(Some(answer)),
            // The org is full for now (its meetings end as others' holds pass): no meeting
            // this time if the load is stopping.
            403 if answer.code() == "ORG_MEETING_LIMIT_REACHED" => {
                if stop.is_cancelled() {
                    return Ok(None);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            status => bail!("create: {status} {}", answer.body),
        }
    }
}

/// Opens the signaling socket a join answered (within 10 s) and sends `auth` with its token.
pub async fn open_socket(
    joined: &Joined,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
> {
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(joined.url.as_str()),
    )
    .await
    .context("connect timed out")??;
    let auth = serde_json::json!({"type": "auth", "token": joined.token}).to_string();
    ws.send(Message::text(auth)).await?;
    Ok(ws)
}

pub async fn join(api: &Api, code: &str, user: &User, stop: &CancellationToken) -> Result<Joined> {
    let answer = api
        .retrying(
            "join",
            Method::POST,
            &format!("/{code}/join"),
            &user.token,
            None,
            None,
            stop,
        )
        .await?;
    if answer.status != 200 {
        bail!("join of {code}: {} {}", answer.status, answer.body);
    }
    Ok(Joined {
        status: answer.text("status")?,
        token: answer.text("meeting_token")?,
        url: answer.text("signaling_url")?,
    })
}

struct Socket {
    api: Arc<Api>,
    sockets: Arc<Sockets>,
    code: String,
    user: User,
    loud: bool,
    stop: CancellationToken,
}

/// Why a socket's connection ended.
enum End {
    /// The meeting ended or the user's place was settled: the socket is done.
    Done,
    /// Lost (the controller died, moved the meeting, lost Redis): join again.
    Lost,
}

impl Socket {
    async fn run(self, mut joined: Joined) {
        let started = Instant::now();
        loop {
            let end = match self.connect(&joined).await {
                Ok(end) => end,
                Err(_) => End::Lost,
            };
            if matches!(end, End::Done) || self.stop.is_cancelled() {
                lock(&self.sockets.away).remove(&self.user.id);
                return;
            }
            lock(&self.sockets.away)
                .entry(self.user.id)
                .or_insert_with(Instant::now);
            if started.elapsed() > Duration::from_secs(600) {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(200 + fastrand::u64(..300))) => {}
                () = self.stop.cancelled() => return,
            }
            joined = match join(&self.api, &self.code, &self.user, &self.stop).await {
                Ok(joined) => joined,
                Err(_) => return,
            };
        }
    }

    async fn connect(&self, joined: &Joined) -> Result<End> {
        let end = self.connected(joined).await;
        lock(&self.sockets.on).remove(&self.user.id);
        end
    }

    async fn connected(&self, joined: &Joined) -> Result<End> {
        let (mut sink, mut stream) = open_socket(joined).await?.split();
        let period = if self.loud {
            Duration::from_millis(50)
        } else {
            Duration::from_millis(500)
        };
        let level = if self.loud { -20 } else { -60 };
        let sample = serde_json::json!({"type": "audio_level", "level_dbfs": level}).to_string();
        let mut tick = tokio::time::interval(period);
        let mut seated = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    // Seated: the level; waiting: a ping (the pre-join meter is not sent).
                    let frame = if seated { sample.clone() } else { r#"{"type":"ping"}"#.to_owned() };
                    sink.send(Message::text(frame)).await?;
                }
                message = stream.next() => {
                    let Some(message) = message else { return Ok(End::Lost) };
                    match message? {
                        Message::Text(text) => {
                            let event: serde_json::Value = serde_json::from_str(&text)?;
                            match event["type"].as_str() {
                                Some("welcome") => {
                                    seated = true;
                                    self.greeted(Some(&event), &joined.url);
                                }
                                Some("lobby.waiting") => self.greeted(None, &joined.url),
                                Some("meeting.ended") => return Ok(End::Done),
                                _ => {}
                            }
                        }
                        Message::Close(frame) => {
                            let code = frame.map(|f| f.code);
                            if let Some(code) = code {
                                *lock(&self.sockets.closes).entry(u16::from(code)).or_default() += 1;
                            }
                            return Ok(match code {
                                Some(CloseCode::Normal) => End::Done,
                                // Rejected or not a member: settled, nothing to come back to.
                                Some(CloseCode::Library(4403 | 4409)) => End::Done,
                                _ => End::Lost,
                            });
                        }
                        _ => {}
                    }
                }
                () = self.stop.cancelled() => return Ok(End::Done),
            }
        }
    }

    fn greeted(&self, welcome: Option<&serde_json::Value>, url: &str) {
        self.sockets
            .greetings
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        lock(&self.sockets.on).insert(self.user.id, (self.code.clone(), url.to_owned()));
        let Some(lost) = lock(&self.sockets.away).remove(&self.user.id) else {
            return;
        };
        let (participants, lobby, active_speaker) = match welcome {
            Some(w) => (
                w["participants"].as_array().map_or(0, Vec::len),
                w["lobby"].as_array().map(Vec::len),
                w["active_speaker"].as_str().map(str::to_owned),
            ),
            None => (0, None, None),
        };
        lock(&self.sockets.returns).push(Return {
            code: self.code.clone(),
            user: self.user.id,
            took: lost.elapsed(),
            participants,
            lobby,
            active_speaker,
        });
    }
}
