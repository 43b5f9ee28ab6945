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
//!
//! The use cases reach rooms only through [`Placement`]: it finds (or chooses) a meeting's
//! owner and offers the room operations with domain outcomes (`domain::room`); the proto
//! messages and their conversions ([`convert`]) stay in this module.

use common::shell::Background;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use common::grpc::client::{ServiceTokenLayer, WithServiceToken};
use common::proto::internal::v1::meeting_controller_service_client::MeetingControllerServiceClient;
use common::service_token::ServiceTokenClient;
use tonic::transport::{Channel, Endpoint};
use tower::Layer;

use crate::error::Error;

pub mod breaker;
mod convert;
mod joins;
pub mod placement;

use breaker::Breaker;
pub use convert::{host_change, role_from_proto, seat_number, timestamp};
pub use joins::Joins;
pub use placement::{Known, Placement, Room};

/// A client of one meeting controller.
pub type McClient = MeetingControllerServiceClient<WithServiceToken<Channel>>;

/// Most cached channels.
pub const MAX_CHANNELS: usize = 1024;
pub use common::proto::MAX_JOINS_PER_CALL;
/// Joins waiting for a call, per controller, at most.
pub const JOIN_QUEUE: usize = 4096;

/// One controller: its client, and the queue its joins are sent through.
#[derive(Clone)]
pub struct Controller {
    client: McClient,
    joins: Joins,
    breaker: Arc<Breaker>,
}

impl Controller {
    /// The controller's join queue.
    pub fn joins(&self) -> Joins {
        self.joins.clone()
    }
}

#[derive(Clone)]
pub struct MeetingControllers {
    layer: ServiceTokenLayer,
    timeout: Duration,
    channels: Arc<Mutex<HashMap<String, Controller>>>,
    /// Where each controller's join queue runs.
    background: Background,
}

impl MeetingControllers {
    /// `timeout` bounds each call (and each connection attempt); the controllers' join queues
    /// run on `background`.
    pub fn new(
        tokens: Arc<ServiceTokenClient>,
        timeout: Duration,
        background: &Background,
    ) -> Self {
        Self {
            layer: ServiceTokenLayer::new(tokens).with_default_timeout(timeout),
            timeout,
            channels: Arc::new(Mutex::new(HashMap::new())),
            background: background.clone(),
        }
    }

    /// The controller at `grpc_addr` (`http://host:port`, as it registered). Its join queue's
    /// task starts with it.
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
            joins: Joins::start(client.clone(), &self.background),
            client,
            breaker: Arc::default(),
        };
        if channels.len() >= MAX_CHANNELS {
            channels.clear();
        }
        channels.insert(grpc_addr.to_owned(), controller.clone());
        Ok(controller)
    }
}
