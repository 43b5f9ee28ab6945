//! Clients of meeting controllers: one lazily connected gRPC channel per controller address,
//! every call with GC's service token, the trace context and a deadline
//! (`common::grpc::client::ServiceTokenLayer`). Channels are cached, at most
//! [`MAX_CHANNELS`] of them: a registry larger than that is a misconfiguration, and the cache
//! then starts over rather than grow.
//!
//! Joins, the one call of a busy GC's every request, go through each controller's [`Joins`]
//! queue instead of a call each: one task per controller sends them, one call at a time, each
//! call holding the joins queued while the previous one was in flight (JoinParticipant for one,
//! JoinParticipants for up to [`MAX_JOINS_PER_CALL`]). Nothing waits for more: an idle GC sends
//! each join at once. Each join is answered on its own (a full room refuses only its own
//! joins); a call that fails as a whole (the controller unreachable, the deadline passed) fails
//! every join in it with its status, as each call alone would have. A controller that does not
//! know JoinParticipants yet (an older MC during a rolling upgrade) gets the calls one by one.
//! The queue is bounded ([`JOIN_QUEUE`]); a full queue makes callers wait, never grows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use common::error::ApiError;
use common::grpc::client::{ServiceTokenLayer, WithServiceToken};
use common::grpc::refused;
use common::proto::internal::v1::join_outcome::Outcome;
use common::proto::internal::v1::meeting_controller_service_client::MeetingControllerServiceClient;
use common::proto::internal::v1::{
    JoinParticipantRequest, JoinParticipantResponse, JoinParticipantsRequest,
};
use common::service_token::ServiceTokenClient;
use tokio::sync::{mpsc, oneshot};
use tonic::Status;
use tonic::transport::{Channel, Endpoint};
use tower::Layer;

use crate::error::Error;

/// A client of one meeting controller.
pub type McClient = MeetingControllerServiceClient<WithServiceToken<Channel>>;

/// Most cached channels.
pub const MAX_CHANNELS: usize = 1024;
/// Joins in one call, at most (MC's limit, `proto/`).
pub const MAX_JOINS_PER_CALL: usize = 256;
/// Joins waiting for a call, per controller, at most.
pub const JOIN_QUEUE: usize = 4096;

/// One controller: its client, and the queue its joins are sent through.
#[derive(Clone)]
pub struct Controller {
    pub client: McClient,
    pub joins: Joins,
}

#[derive(Clone)]
pub struct MeetingControllers {
    layer: ServiceTokenLayer,
    timeout: Duration,
    channels: Arc<Mutex<HashMap<String, Controller>>>,
}

impl MeetingControllers {
    /// `timeout` bounds each call (and each connection attempt).
    pub fn new(tokens: Arc<ServiceTokenClient>, timeout: Duration) -> Self {
        Self {
            layer: ServiceTokenLayer::new(tokens).with_default_timeout(timeout),
            timeout,
            channels: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The controller at `grpc_addr` (`http://host:port`, as it registered). Its join queue's
    /// task starts with it, on the current Tokio runtime.
    pub fn controller(&self, grpc_addr: &str) -> Result<Controller, Error> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(controller) = channels.get(grpc_addr) {
            return Ok(controller.clone());
        }
        let endpoint = Endpoint::from_shared(grpc_addr.to_owned())
            .map_err(|_| Error::Internal("a meeting controller registered a malformed address"))?
            .connect_timeout(self.timeout)
            .timeout(self.timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(false);
        let client = MeetingControllerServiceClient::new(self.layer.layer(endpoint.connect_lazy()));
        let controller = Controller {
            joins: Joins::start(client.clone()),
            client,
        };
        if channels.len() >= MAX_CHANNELS {
            channels.clear();
        }
        channels.insert(grpc_addr.to_owned(), controller.clone());
        Ok(controller)
    }
}

struct PendingJoin {
    request: JoinParticipantRequest,
    reply: oneshot::Sender<Result<JoinParticipantResponse, Status>>,
}

/// A controller's join queue (module documentation); clones share it. Its task ends when the
/// last clone is dropped.
#[derive(Clone)]
pub struct Joins {
    queue: mpsc::Sender<PendingJoin>,
}

impl Joins {
    fn start(client: McClient) -> Self {
        let (queue, pending) = mpsc::channel(JOIN_QUEUE);
        tokio::spawn(send_loop(client, pending));
        Self { queue }
    }

    /// What JoinParticipant answers for `request`, refusals included, sharing a call with the
    /// joins queued meanwhile.
    pub async fn join(
        &self,
        request: JoinParticipantRequest,
    ) -> Result<JoinParticipantResponse, Status> {
        let (reply, answer) = oneshot::channel();
        let gone = || Status::from(ApiError::unavailable());
        self.queue
            .send(PendingJoin { request, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn send_loop(client: McClient, mut queue: mpsc::Receiver<PendingJoin>) {
    // Every join is sent, even one nobody waits for any more: the join use case seats and
    // records in a task of its own, so a waiting seat always has someone to record it.
    while let Some(batch) = crate::db::next_batch(&mut queue, MAX_JOINS_PER_CALL, |_| 1).await {
        send(&client, batch).await;
    }
}

/// Sends a batch in one call and answers each join of it.
async fn send(client: &McClient, mut batch: Vec<PendingJoin>) {
    crate::metrics::mc_join_batch(batch.len());
    if batch.len() == 1
        && let Some(pending) = batch.pop()
    {
        let result = client.clone().join_participant(pending.request).await;
        let _ = pending.reply.send(result.map(tonic::Response::into_inner));
        return;
    }
    let (joins, replies): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .map(|pending| (pending.request, pending.reply))
        .unzip();
    let request = JoinParticipantsRequest {
        joins: joins.clone(),
    };
    match client.clone().join_participants(request).await {
        Ok(response) => {
            let outcomes = response.into_inner().outcomes;
            if outcomes.len() != replies.len() {
                tracing::error!(
                    joins = replies.len(),
                    outcomes = outcomes.len(),
                    "a meeting controller answered a different number of joins"
                );
                for reply in replies {
                    let _ = reply.send(Err(Status::internal("a join went unanswered")));
                }
                return;
            }
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let result = match outcome.outcome {
                    Some(Outcome::Joined(joined)) => Ok(joined),
                    Some(Outcome::Refused(refusal)) => Err(refused(refusal)),
                    None => Err(Status::internal("a join was answered with nothing")),
                };
                let _ = reply.send(result);
            }
        }
        // An older controller: each join alone, all at once, as before the batches.
        Err(status) if status.code() == tonic::Code::Unimplemented => {
            let calls = joins.into_iter().map(|join| {
                let mut client = client.clone();
                async move { client.join_participant(join).await }
            });
            let results = futures::future::join_all(calls).await;
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result.map(tonic::Response::into_inner));
            }
        }
        Err(status) => {
            for reply in replies {
                let _ = reply.send(Err(status.clone()));
            }
        }
    }
}
