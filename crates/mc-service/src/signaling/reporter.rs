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
use crate::room::{HostChange, Participant, Role};

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
        /// The user hosted and others stayed: the role passed on (DESIGN §12).
        host_change: Option<HostChange>,
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
        host_change: Option<HostChange>,
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
            host_change,
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
            host_change,
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
                host_change: host_change.as_ref().map(crate::grpc::proto_host_change),
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use tokio::task::JoinHandle;
    use tonic::Status;

    use super::*;
    use crate::test_gc::{Call, Method, TestGc};

    fn code() -> MeetingCode {
        MeetingCode::parse("Ab3dE5fG7hJ9").unwrap()
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 250_000_000)
            .unwrap()
    }

    /// A host's leave (`seat` given) or a leave MC knew nothing of (no seat).
    fn left(user_id: &str, seat: Option<(Role, u64)>) -> Report {
        Report::ParticipantLeft {
            code: code(),
            user_id: user_id.into(),
            reason: "connection_lost",
            left_at: at(60),
            joined_at: seat.map(|_| at(0)),
            role: seat.map(|(role, _)| role),
            seat: seat.map_or(0, |(_, number)| number),
            last_seat: 9,
            host_change: None,
        }
    }

    fn empty() -> Report {
        Report::MeetingEmpty {
            code: code(),
            since: at(61),
            last_seat: 9,
        }
    }

    fn timestamp_of(seconds: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp {
            seconds: 1_800_000_000 + seconds,
            nanos: 250_000_000,
        })
    }

    /// The call GC must receive for `report`.
    fn sent(report: &Report) -> Call {
        match report {
            Report::ParticipantLeft {
                user_id,
                role,
                seat,
                joined_at,
                ..
            } => Call::ParticipantLeft(ParticipantLeftRequest {
                controller_id: "test-mc".into(),
                meeting_code: "Ab3dE5fG7hJ9".into(),
                user_id: user_id.clone(),
                reason: "connection_lost".into(),
                left_at: timestamp_of(60),
                joined_at: joined_at.and(timestamp_of(0)),
                role: match role {
                    Some(Role::Host) => ParticipantRole::Host,
                    Some(Role::Guest) => ParticipantRole::Guest,
                    None => ParticipantRole::Unspecified,
                } as i32,
                seat: *seat,
                last_seat: 9,
                host_change: None,
            }),
            Report::MeetingEmpty { .. } => Call::MeetingEmpty(MeetingEmptyRequest {
                controller_id: "test-mc".into(),
                meeting_code: "Ab3dE5fG7hJ9".into(),
                empty_since: timestamp_of(61),
                last_seat: 9,
            }),
        }
    }

    /// The reporter's task against `gc`: the queue, the stop token and the task.
    fn start(gc: &TestGc) -> (Reporter, CancellationToken, JoinHandle<()>) {
        let (reports, task) = reporter();
        let stop = CancellationToken::new();
        let running = tokio::spawn(run(task, gc.client(), "test-mc".into(), stop.clone()));
        (reports, stop, running)
    }

    fn unavailable() -> Status {
        Status::unavailable("GC is restarting")
    }

    #[tokio::test]
    async fn reports_reach_gc_in_the_order_they_were_queued_with_every_field() {
        let mut gc = TestGc::start().await;
        let (reports, _stop, _task) = start(&gc);
        let queued = [
            left("host", Some((Role::Host, 1))),
            left("guest", Some((Role::Guest, 2))),
            left("unknown", None),
            empty(),
        ];

        for report in &queued {
            reports.send(report.clone());
        }

        for report in &queued {
            assert_eq!(gc.next().await.call, sent(report));
        }
    }

    #[tokio::test]
    async fn a_failed_report_is_sent_again_unchanged_after_growing_waits() {
        let mut gc = TestGc::start().await;
        gc.fail_next(Method::ParticipantLeft, [unavailable(), unavailable()]);
        let (reports, _stop, _task) = start(&gc);
        let report = left("host", Some((Role::Host, 1)));

        reports.send(report.clone());
        reports.send(empty());

        let attempts = [gc.next().await, gc.next().await, gc.next().await];
        for attempt in &attempts {
            assert_eq!(attempt.call, sent(&report));
        }
        // The steps double from 200 ms; each wait is between half and all of its step.
        for (pair, step) in attempts
            .windows(2)
            .zip([200, 400].map(Duration::from_millis))
        {
            let waited = pair[1].at - pair[0].at;
            assert!(
                waited >= step / 2,
                "waited {waited:?} after a step of {step:?}"
            );
        }
        assert_eq!(gc.next().await.call, sent(&empty()), "then the next report");
    }

    #[tokio::test]
    async fn a_report_gc_refuses_four_times_is_given_up_and_the_next_one_goes() {
        let mut gc = TestGc::start().await;
        gc.fail_next(
            Method::ParticipantLeft,
            (0..ATTEMPTS).map(|_| unavailable()),
        );
        let (reports, _stop, _task) = start(&gc);
        let refused = left("host", Some((Role::Host, 1)));

        reports.send(refused.clone());
        reports.send(empty());

        for _ in 0..ATTEMPTS {
            assert_eq!(gc.next().await.call, sent(&refused));
        }
        assert_eq!(gc.next().await.call, sent(&empty()), "no fifth attempt");
    }

    /// On a stop, the report being retried is not tried again, and each report still queued
    /// gets one attempt, delivered or not, before the task returns.
    #[tokio::test]
    async fn a_stop_gives_what_is_queued_one_attempt_each_and_returns() {
        let mut gc = TestGc::start().await;
        gc.fail_always(Method::ParticipantLeft, unavailable());
        let (reports, stop, task) = start(&gc);
        let retried = left("host", Some((Role::Host, 1)));
        reports.send(retried.clone());
        assert_eq!(gc.next().await.call, sent(&retried));

        let queued = [empty(), left("guest", Some((Role::Guest, 2)))];
        for report in &queued {
            reports.send(report.clone());
        }
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the task did not return after its stop")
            .unwrap();

        let calls = gc.received();
        assert_eq!(calls, queued.iter().map(sent).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn the_task_returns_once_every_reporter_is_gone() {
        let mut gc = TestGc::start().await;
        let (reports, _stop, task) = start(&gc);
        reports.send(empty());
        assert_eq!(gc.next().await.call, sent(&empty()));

        drop(reports);

        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the task outlived its queue")
            .unwrap();
    }
}
