//! A controller's join queue: the joins queued while the previous call was in flight go as
//! one call (module documentation of [`super`]).

use common::error::ApiError;
use common::grpc::refused;
use common::proto::internal::v1::join_outcome::Outcome;
use common::proto::internal::v1::{
    JoinParticipantRequest, JoinParticipantResponse, JoinParticipantsRequest,
};
use common::shell::Background;
use tonic::Status;

use super::{JOIN_QUEUE, MAX_JOINS_PER_CALL, McClient};
use crate::batch::{Batcher, Item, Shape};

type PendingJoin = Item<JoinParticipantRequest, Result<JoinParticipantResponse, Status>>;

/// A controller's join queue (module documentation); clones share it. Its task ends when the
/// last clone is dropped.
#[derive(Clone)]
pub struct Joins {
    batcher: Batcher<JoinParticipantRequest, Result<JoinParticipantResponse, Status>>,
}

impl Joins {
    pub(super) fn start(client: McClient, background: &Background) -> Self {
        let shape = Shape {
            name: "meeting controller joins",
            capacity: JOIN_QUEUE,
            max_weight: MAX_JOINS_PER_CALL,
            linger: None,
        };
        // Every join is sent, even one nobody waits for any more: the join use case seats and
        // records in a task of its own, so a waiting seat always has someone to record it.
        let batcher = Batcher::start(
            shape,
            |_| 1,
            move |batch| send(client.clone(), batch),
            background,
        );
        Self { batcher }
    }

    /// What JoinParticipant answers for `request`, refusals included, sharing a call with the
    /// joins queued meanwhile.
    pub async fn join(
        &self,
        request: JoinParticipantRequest,
    ) -> Result<JoinParticipantResponse, Status> {
        self.batcher
            .submit(request)
            .await
            .map_err(|_| Status::from(ApiError::unavailable()))?
    }
}

/// Sends a batch in one call and answers each join of it.
async fn send(client: McClient, mut batch: Vec<PendingJoin>) {
    let client = &client;
    crate::metrics::mc_join_batch(batch.len());
    if batch.len() == 1
        && let Some(pending) = batch.pop()
    {
        let result = client
            .clone()
            .join_participant(pending.request.clone())
            .await;
        pending.answer(result.map(tonic::Response::into_inner));
        return;
    }
    let joins: Vec<JoinParticipantRequest> = batch
        .iter()
        .map(|pending| pending.request.clone())
        .collect();
    let replies = batch;
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
                    reply.answer(Err(Status::internal("a join went unanswered")));
                }
                return;
            }
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let result = match outcome.outcome {
                    Some(Outcome::Joined(joined)) => Ok(joined),
                    Some(Outcome::Refused(refusal)) => Err(refused(refusal)),
                    None => Err(Status::internal("a join was answered with nothing")),
                };
                reply.answer(result);
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
                reply.answer(result.map(tonic::Response::into_inner));
            }
        }
        Err(status) => {
            for reply in replies {
                reply.answer(Err(status.clone()));
            }
        }
    }
}
