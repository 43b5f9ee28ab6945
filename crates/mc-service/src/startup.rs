//! Building MC (its state is `crate::state`) from its configuration and running it inside the common service shell
//! (`common::shell`) until a shutdown signal: the HTTP listener (health, metrics and the
//! signaling WebSocket), the gRPC listener GC calls, the ops listener (health and metrics
//! alone, for the kubelet and Prometheus), and the jobs: registration, room
//! keep-alive, the room-event subscriber and the reports to GC.
//!
//! A new background job: a function taking the shell's cancellation token, registered with
//! `shell.spawn_job` in [`Application::build_with`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use common::grpc::client::ServiceTokenLayer;
use common::proto::internal::v1::RegisterMeetingControllerRequest;
use common::service_token::AcClients;
use common::shell::{ListenerLimits, Protocol, Shell};

use crate::config::{Config, local_url};
use crate::held::{self, HeldRooms};
use crate::room::subscriber;
use crate::room::{KeyPrefix, RedisPool, RoomStore, RoomStoreConfig};
use crate::routes;
use crate::signaling::hub::Hub;
use crate::signaling::{Signaling, reporter};
use crate::state::AppState;

pub struct Application {
    shell: Shell,
    http_addr: SocketAddr,
    grpc_addr: SocketAddr,
    ops_addr: SocketAddr,
}

/// The Redis pool the configuration names: one server or a cluster. `rediss://` URLs connect
/// over TLS, checking the server against the system's roots (`SSL_CERT_FILE` names a file of
/// them, e.g. a private CA).
pub fn redis_pool(config: &Config) -> anyhow::Result<RedisPool> {
    common::install_crypto_provider();
    if !config.redis_cluster_urls.is_empty() {
        return RedisPool::cluster(config.redis_cluster_urls.clone(), None)
            .context("invalid REDIS_CLUSTER_URLS");
    }
    let url = config
        .redis_url
        .as_deref()
        .context("REDIS_URL or REDIS_CLUSTER_URLS is required")?;
    RedisPool::single(url, None).context("invalid REDIS_URL")
}

impl Application {
    /// [`Application::build_with`] MC's routes alone.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Application::build_with(config, Router::new(), KeyPrefix::default()).await
    }

    /// Binds the listeners (use `127.0.0.1:0` in tests) and wires the routes plus
    /// `extra_routes`, with the room keys under `prefix` (tests give each their own).
    pub async fn build_with(
        config: Config,
        extra_routes: Router<AppState>,
        prefix: KeyPrefix,
    ) -> anyhow::Result<Self> {
        let redis = redis_pool(&config)?;
        let store = RoomStore::new(
            redis.clone(),
            RoomStoreConfig {
                key_prefix: prefix.clone(),
                ttl: Duration::from_secs(config.room_ttl_secs),
            },
        )
        .context("invalid room store settings")?;
        // First, so that every task below runs under it (a refresh of AC's keys on its tracker).
        let mut shell = Shell::new("mc", config.shell.timings());
        let AcClients { verifier, tokens } = AcClients::new(
            &config.ac_url,
            &config.jwt_issuer,
            &config.client_id,
            config.client_secret()?,
            shell.handle().tracker(),
        )
        .context("cannot build the clients of AC")?;
        let metrics = common::metrics::install_recorder(&[])?;
        crate::metrics::register();
        let held = HeldRooms::default();
        let gc =
            crate::registration::gc_client(&config.gc_grpc_url, ServiceTokenLayer::new(tokens))
                .context("invalid GC_GRPC_URL")?;

        let settings = config.signaling.settings();
        let event_urls = match &config.redis_url {
            Some(url) if config.redis_cluster_urls.is_empty() => vec![url.clone()],
            _ => config.redis_cluster_urls.clone(),
        };
        let (subscriber, subscriber_task) = subscriber::subscriber(event_urls, prefix);
        let hub = Arc::new(Hub::new(
            store.clone(),
            subscriber,
            settings.speaker,
            settings.outbound_queue,
        ));
        let (reports, reporter_task) = reporter::reporter();
        let signaling = Arc::new(Signaling::new(
            Arc::clone(&hub),
            store.clone(),
            held.clone(),
            verifier.clone(),
            reports,
            settings,
            config.client_id.clone(),
            shell.handle(),
        ));
        let state = AppState {
            redis,
            store: store.clone(),
            verifier: verifier.clone(),
            metrics,
            readiness: shell.readiness(),
            signaling: Arc::clone(&signaling),
        };
        let layers = config.shell.layers("mc");
        let ops_router = routes::ops_router(state.clone(), layers);
        let router = routes::router_with(state, layers, extra_routes);
        let http_limits = ListenerLimits {
            send_buffer_bytes: Some(config.signaling.ws_send_buffer_bytes as usize),
            ..config.shell.http_limits()
        };
        let http_addr = shell
            .listen(
                "http",
                config.http_addr,
                router,
                Protocol::Http,
                http_limits,
            )
            .await?;
        let grpc_router = common::grpc::layers::apply(
            crate::grpc::router(
                store.clone(),
                config.client_id.clone(),
                held.clone(),
                verifier,
                Arc::clone(&signaling),
            ),
            "mc",
        );
        let grpc_addr = shell
            .listen(
                "grpc",
                config.grpc_addr,
                grpc_router,
                Protocol::Grpc,
                config.shell.grpc_limits(),
            )
            .await?;
        let ops_addr = shell
            .listen_ops(config.ops_addr, ops_router, &config.shell)
            .await?;

        let registration = RegisterMeetingControllerRequest {
            controller_id: config.client_id.clone(),
            websocket_url: config
                .public_ws_url
                .clone()
                .unwrap_or_else(|| local_url("ws", http_addr)),
            grpc_address: config
                .grpc_advertise_url
                .clone()
                .unwrap_or_else(|| local_url("http", grpc_addr)),
            capacity: config.capacity,
        };
        let beating = held.clone();
        let registration_gc = gc.clone();
        let counted = Arc::clone(&hub);
        let load = move || crate::registration::Load::of(&beating, &counted);
        shell.spawn_job("registration", move |stop| {
            crate::registration::run(registration_gc, registration, load, stop)
        });
        let weak_hub = Arc::downgrade(&hub);
        shell.spawn_job("room events", move |stop| {
            subscriber::run(subscriber_task, stop, move |feed| {
                if let Some(hub) = weak_hub.upgrade() {
                    hub.receive(feed);
                }
            })
        });
        let controller_id = config.client_id.clone();
        shell.spawn_job("reports to GC", move |stop| {
            reporter::run(reporter_task, gc, controller_id, stop)
        });
        let every = held::keep_alive_interval(Duration::from_secs(config.room_ttl_secs));
        shell.spawn_job("room keep-alive", move |stop| {
            held::keep_alive(store, held, every, stop)
        });
        Ok(Self {
            shell,
            http_addr,
            grpc_addr,
            ops_addr,
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The ops listener's address actually bound (health probes and metrics).
    pub fn ops_addr(&self) -> SocketAddr {
        self.ops_addr
    }

    /// Serves until `shutdown` resolves, then stops in the shell's order.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        self.shell.run(shutdown).await;
    }
}
