//! One meeting of the day and its people. The host creates it (the waiting room on for a
//! fraction of them) and joins; the others join over REST at moments spread over the first
//! seconds, open the signaling socket and send `audio_level` (one speaker loud, the others
//! quiet). In a meeting with the waiting room on each guest waits in the lobby until the host
//! admits them (the guest's task calls admit with the host's token once its socket is told
//! `lobby.waiting`: the host's reaction time left out). Some guests leave over REST and join
//! again; some clients drop their socket without a close frame and reconnect with the same
//! meeting token. After the hold the guests leave over REST and the host ends the meeting.
//!
//! Measured: REST join (by [`Api`]), and at the sockets ([`super::socket`]) join → `welcome`,
//! admit → `admitted`, the speaker's first loud level → `active_speaker` at each listener
//! seated before it, reconnect → `welcome`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::measure::Metrics;
use super::socket::{End, Plan, Since, socket};
use crate::api::{Api, lock};
use crate::load::{Joined, join};
use crate::stack::User;

/// How many people a meeting has, host included.
#[derive(Clone, Copy, Debug)]
pub enum Sizes {
    /// Uniform over `lo..=hi`.
    Uniform(usize, usize),
    /// Half of them 2–4, three in ten 5–10, two in ten 11–20.
    Skewed,
}

impl Sizes {
    pub fn draw(self) -> usize {
        match self {
            Sizes::Uniform(lo, hi) => fastrand::usize(lo..=hi),
            Sizes::Skewed => match fastrand::f64() {
                x if x < 0.5 => fastrand::usize(2..=4),
                x if x < 0.8 => fastrand::usize(5..=10),
                _ => fastrand::usize(11..=20),
            },
        }
    }

    pub fn mean(self) -> f64 {
        match self {
            Sizes::Uniform(lo, hi) => (lo + hi) as f64 / 2.0,
            Sizes::Skewed => 0.5 * 3.0 + 0.3 * 7.5 + 0.2 * 15.5,
        }
    }

    pub fn max(self) -> usize {
        match self {
            Sizes::Uniform(_, hi) => hi,
            Sizes::Skewed => 20,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub size: Sizes,
    pub lobby_fraction: f64,
    pub leave_return_fraction: f64,
    pub reconnect_fraction: f64,
    pub hold: (Duration, Duration),
    pub loud_period: Duration,
    pub quiet_period: Duration,
}

impl Shape {
    /// Guests arrive within this much of the host.
    fn join_spread(&self) -> Duration {
        (self.hold.0 / 3).min(Duration::from_secs(15))
    }

    /// A moment for a planned leave or reconnect, after the socket is seated and well before
    /// the shortest hold ends.
    pub(super) fn moment(&self) -> Duration {
        let last = self.hold.0.mul_f64(0.75).min(Duration::from_secs(45));
        let first = Duration::from_secs(3).min(last);
        first + (last - first).mul_f64(fastrand::f64())
    }
}

pub struct Ctx {
    pub api: Arc<Api>,
    pub metrics: Arc<Metrics>,
    pub shape: Shape,
    pub pool: Mutex<Vec<User>>,
    /// No new step begins: meetings are held as they are for the checker.
    pub stop: CancellationToken,
    /// The held meetings end.
    pub finish: CancellationToken,
    /// Tasks still in a step (a meeting being created or filled, a join, a leave).
    pub busy: AtomicUsize,
}

/// Counts a task as busy until it parks (or ends).
pub(super) struct Busy<'a> {
    count: &'a AtomicUsize,
    pub(super) parked: bool,
}

impl<'a> Busy<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Busy {
            count,
            parked: false,
        }
    }

    pub(super) fn park(&mut self) {
        if !self.parked {
            self.parked = true;
            self.count.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.park();
    }
}

pub(super) struct Room {
    pub(super) code: String,
    pub(super) host: User,
    pub(super) speaker: Uuid,
    /// Guests leave (the hold is over).
    pub(super) leave: CancellationToken,
    /// The speaker's current run: its number and when its first loud level was sent.
    pub(super) speaking: Mutex<Option<(u64, Instant)>>,
    pub(super) runs: AtomicU64,
}

/// One meeting, from taking its people from the pool to giving them back.
pub async fn meeting(ctx: Arc<Ctx>, index: u64) {
    let mut busy = Busy::new(&ctx.busy);
    let size = ctx.shape.size.draw();
    let mut waited = false;
    let users = loop {
        {
            let mut free = lock(&ctx.pool);
            if free.len() >= size {
                let at = free.len() - size;
                break free.split_off(at);
            }
        }
        if !waited {
            ctx.metrics.count("meeting waited for free users");
            waited = true;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
            () = ctx.stop.cancelled() => return,
        }
    };
    if let Err(error) = hold_meeting(&ctx, index, &users, &mut busy).await {
        ctx.metrics.count("meeting given up");
        ctx.api
            .stats
            .violation(format!("meeting {index}: {error:#}"));
    }
    lock(&ctx.pool).extend(users);
}

async fn hold_meeting(
    ctx: &Arc<Ctx>,
    index: u64,
    users: &[User],
    busy: &mut Busy<'_>,
) -> Result<()> {
    let host = &users[0];
    let lobby = fastrand::f64() < ctx.shape.lobby_fraction;
    let body = serde_json::json!({
        "display_name": format!("Day {index}"),
        "max_participants": users.len() + 2,
        "settings": {"waiting_room_enabled": lobby},
    });
    let Some(created) =
        crate::load::create_meeting(&ctx.api, &host.token, &body, &ctx.finish, &ctx.stop).await?
    else {
        return Ok(());
    };
    let code = created.text("meeting_code")?;
    lock(&ctx.api.stats.created).push(code.clone());
    ctx.metrics.count(if lobby {
        "meetings created, waiting room on"
    } else {
        "meetings created, waiting room off"
    });
    let room = Arc::new(Room {
        code: code.clone(),
        host: host.clone(),
        speaker: users[1].id,
        leave: CancellationToken::new(),
        speaking: Mutex::new(None),
        runs: AtomicU64::new(0),
    });
    let started = Instant::now();
    let joined = join(&ctx.api, &code, host, &ctx.finish).await?;
    let mut host_task = JoinSet::new();
    host_task.spawn(person(
        Arc::clone(ctx),
        Arc::clone(&room),
        host.clone(),
        true,
        Some((joined, started)),
    ));
    let mut guests = JoinSet::new();
    for user in &users[1..] {
        guests.spawn(person(
            Arc::clone(ctx),
            Arc::clone(&room),
            user.clone(),
            false,
            None,
        ));
    }
    let (low, high) = ctx.shape.hold;
    let hold = low + (high - low).mul_f64(fastrand::f64());
    tokio::select! {
        () = tokio::time::sleep(hold) => {}
        () = ctx.stop.cancelled() => {}
    }
    if ctx.stop.is_cancelled() {
        // Held as it is for the checker; then ended by its host.
        busy.park();
        ctx.finish.cancelled().await;
    } else {
        room.leave.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(60), async {
            while guests.join_next().await.is_some() {}
        })
        .await;
    }
    let never = CancellationToken::new();
    ctx.api.end_meeting(&code, &host.token, &never).await?;
    ctx.metrics.count("meetings ended by their host");
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        while guests.join_next().await.is_some() {}
        while host_task.join_next().await.is_some() {}
    })
    .await;
    guests.abort_all();
    host_task.abort_all();
    Ok(())
}

async fn person(
    ctx: Arc<Ctx>,
    room: Arc<Room>,
    user: User,
    host: bool,
    mut first: Option<(Joined, Instant)>,
) {
    let mut busy = Busy::new(&ctx.busy);
    let mut plans = Vec::new();
    if fastrand::f64() < ctx.shape.reconnect_fraction {
        plans.push(Plan::Reconnect(ctx.shape.moment()));
    }
    if !host && fastrand::f64() < ctx.shape.leave_return_fraction {
        let away = Duration::from_millis(2000 + fastrand::u64(..8000));
        plans.push(Plan::LeaveAndReturn(ctx.shape.moment(), away));
    }
    if !host {
        let delay = ctx.shape.join_spread().mul_f64(fastrand::f64());
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = ctx.stop.cancelled() => return,
            () = room.leave.cancelled() => return,
        }
    }
    let mut since = None;
    loop {
        let (joined, started) = match first.take() {
            Some(given) => given,
            None => {
                let started = Instant::now();
                match join(&ctx.api, &room.code, &user, &ctx.finish).await {
                    Ok(joined) => (joined, started),
                    Err(error) => {
                        ctx.metrics.count("join given up");
                        if !ctx.finish.is_cancelled() {
                            ctx.api.stats.violation(format!("{error:#}"));
                        }
                        return;
                    }
                }
            }
        };
        ctx.metrics
            .count(&format!("join answered {}", joined.status));
        let mut from = since.take().unwrap_or(Since::Join(started));
        loop {
            let end = match socket(
                &ctx, &room, &user, host, &joined, from, &mut plans, &mut busy,
            )
            .await
            {
                Ok(end) => end,
                Err(error) => {
                    let what = format!("{error:#}");
                    ctx.metrics.count(&format!(
                        "socket failed: {}",
                        what.chars().take(80).collect::<String>()
                    ));
                    End::Lost
                }
            };
            match end {
                End::Done => return,
                End::Reconnect => {
                    ctx.metrics.count("sockets dropped to reconnect");
                    tokio::time::sleep(Duration::from_millis(200 + fastrand::u64(..800))).await;
                    from = Since::Reconnect(Instant::now());
                }
                End::Away(away) => {
                    ctx.metrics.count("left over REST to return");
                    tokio::select! {
                        () = tokio::time::sleep(away) => {}
                        () = ctx.stop.cancelled() => return,
                        () = room.leave.cancelled() => return,
                    }
                    ctx.metrics.count("returned after leaving");
                    break;
                }
                End::Lost => {
                    ctx.metrics.count("sockets lost");
                    if ctx.finish.is_cancelled() || room.leave.is_cancelled() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    since = Some(Since::Lost(Instant::now()));
                    break;
                }
            }
        }
    }
}
