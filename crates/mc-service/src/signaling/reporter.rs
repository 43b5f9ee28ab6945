//! What MC tells GC about its rooms when the change started here (a `leave` message, a
//! reconnect grace that ran out): a participant left (GC records `left_at`), and a room is
//! empty (GC starts the empty-meeting clock). Changes that started at GC (REST leave, end) are
//! recorded by GC itself.
//!
//! Reports go through a bounded queue to one task that sends them in order, retrying a failed
//! call a few times with backoff. A report that cannot be queued or delivered is logged and
//! counted (`mc_gc_reports_total{outcome}`); GC closes every visit still open when the meeting
//! ends, so a lost `left_at` is bounded by the meeting's end.

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::backoff::Backoff;
use common::meeting_code::MeetingCode;
use common::proto::internal::v1::{MeetingEmptyRequest, ParticipantLeftRequest, ParticipantRole};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::registration::GcClient;
use crate::room::{Participant, Role};

/// Reports waiting at most.
pub const REPORT_QUEUE: usize = 4096;
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait between two attempts of a report.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

#[derive(Clone, Debug)]
pub enum Report {
    ParticipantLeft {
        code: MeetingCode,
        user_id: String,
        reason: &'static str,
        left_at: DateTime<Utc>,
        joined_at: Option<DateTime<Utc>>,
        role: Option<Role>,
        /// The number of the seat that ended (0: unknown).
        seat: u64,
        /// The room's last seat number when it ended.
        last_seat: u64,
    },
    MeetingEmpty {
        code: MeetingCode,
        since: DateTime<Utc>,
        /// The room's last seat number when it was seen empty.
        last_seat: u64,
    },
}

impl Report {
    pub fn participant_left(
        code: &MeetingCode,
        user_id: &str,
        reason: &'static str,
        seat: Option<&Participant>,
        last_seat: u64,
    ) -> Self {
        Report::ParticipantLeft {
            code: code.clone(),
            user_id: user_id.to_owned(),
            reason,
            left_at: Utc::now(),
            joined_at: seat.map(|p| p.joined_at),
            role: seat.map(|p| p.role),
            seat: seat.map_or(0, |p| p.seat),
            last_seat,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Report::ParticipantLeft { .. } => "participant_left",
            Report::MeetingEmpty { .. } => "meeting_empty",
        }
    }
}

#[derive(Clone)]
pub struct Reporter {
    queue: mpsc::Sender<Report>,
}

pub struct ReporterTask {
    queue: mpsc::Receiver<Report>,
}

pub fn reporter() -> (Reporter, ReporterTask) {
    let (tx, rx) = mpsc::channel(REPORT_QUEUE);
    (Reporter { queue: tx }, ReporterTask { queue: rx })
}

impl Reporter {
    pub fn send(&self, report: Report) {
        if self.queue.try_send(report).is_err() {
            metrics::counter!("mc_gc_reports_total", "outcome" => "dropped").increment(1);
            tracing::warn!("report to GC dropped: the queue is full");
        }
    }
}

fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// Sends reports until `stop`; what is queued when it stops is sent if GC answers at once.
pub async fn run(
    task: ReporterTask,
    mut gc: GcClient,
    controller_id: String,
    stop: CancellationToken,
) {
    let ReporterTask { mut queue } = task;
    loop {
        let report = tokio::select! {
            () = stop.cancelled() => break,
            report = queue.recv() => match report {
                Some(report) => report,
                None => return,
            },
        };
        deliver(&mut gc, &controller_id, report, &stop).await;
    }
    // Stopping: one attempt each for what is left, within the shell's job timeout.
    while let Ok(report) = queue.try_recv() {
        let _ = call(&mut gc, &controller_id, &report).await;
    }
}

async fn deliver(gc: &mut GcClient, controller_id: &str, report: Report, stop: &CancellationToken) {
    let mut backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
    for attempt in 1..=ATTEMPTS {
        match call(gc, controller_id, &report).await {
            Ok(()) => {
                metrics::counter!("mc_gc_reports_total", "outcome" => "delivered").increment(1);
                return;
            }
            Err(status) => {
                tracing::warn!(report = report.label(), attempt, %status, "report to GC failed");
            }
        }
        if attempt < ATTEMPTS {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(backoff.next_wait()) => {}
            }
        }
    }
    metrics::counter!("mc_gc_reports_total", "outcome" => "failed").increment(1);
}

async fn call(
    gc: &mut GcClient,
    controller_id: &str,
    report: &Report,
) -> Result<(), tonic::Status> {
    match report {
        Report::ParticipantLeft {
            code,
            user_id,
            reason,
            left_at,
            joined_at,
            role,
            seat,
            last_seat,
        } => {
            let role = role.map_or(ParticipantRole::Unspecified, crate::grpc::proto_role);
            gc.participant_left(ParticipantLeftRequest {
                controller_id: controller_id.to_owned(),
                meeting_code: code.to_string(),
                user_id: user_id.clone(),
                reason: (*reason).to_owned(),
                left_at: Some(timestamp(*left_at)),
                joined_at: joined_at.map(timestamp),
                role: role as i32,
                seat: *seat,
                last_seat: *last_seat,
            })
            .await?;
        }
        Report::MeetingEmpty {
            code,
            since,
            last_seat,
        } => {
            gc.meeting_empty(MeetingEmptyRequest {
                controller_id: controller_id.to_owned(),
                meeting_code: code.to_string(),
                empty_since: Some(timestamp(*since)),
                last_seat: *last_seat,
            })
            .await?;
        }
    }
    Ok(())
}
