//! Clients of meeting controllers: one lazily connected gRPC channel per controller address,
//! every call with GC's service token, the trace context and a deadline
//! (`common::grpc::client::ServiceTokenLayer`). Channels are cached, at most
//! [`MAX_CHANNELS`] of them: a registry larger than that is a misconfiguration, and the cache
//! then starts over rather than grow.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use common::grpc::client::{ServiceTokenLayer, WithServiceToken};
use common::proto::internal::v1::meeting_controller_service_client::MeetingControllerServiceClient;
use common::service_token::ServiceTokenClient;
use tonic::transport::{Channel, Endpoint};
use tower::Layer;

use crate::error::Error;

/// A client of one meeting controller.
pub type McClient = MeetingControllerServiceClient<WithServiceToken<Channel>>;

/// Most cached channels.
pub const MAX_CHANNELS: usize = 1024;

#[derive(Clone)]
pub struct MeetingControllers {
    layer: ServiceTokenLayer,
    timeout: Duration,
    channels: Arc<Mutex<HashMap<String, McClient>>>,
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

    /// The client of the controller at `grpc_addr` (`http://host:port`, as it registered).
    pub fn client(&self, grpc_addr: &str) -> Result<McClient, Error> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = channels.get(grpc_addr) {
            return Ok(client.clone());
        }
        let endpoint = Endpoint::from_shared(grpc_addr.to_owned())
            .map_err(|_| Error::Internal("a meeting controller registered a malformed address"))?
            .connect_timeout(self.timeout)
            .timeout(self.timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(false);
        let client = MeetingControllerServiceClient::new(self.layer.layer(endpoint.connect_lazy()));
        if channels.len() >= MAX_CHANNELS {
            channels.clear();
        }
        channels.insert(grpc_addr.to_owned(), client.clone());
        Ok(client)
    }
}
