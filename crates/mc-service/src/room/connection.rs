//! The two ways MC reaches Redis: one server (or a primary behind a proxy) or a Redis Cluster.
//! The room scripts run the same on both because every key of a room shares one hash slot.
//!
//! Both pools hand out their connections without a check (deadpool-redis' own managers send
//! `UNWATCH` and `PING` each time, a round trip before every room command), except after an
//! outage: once a command failed, a connection last handed out before that failure is pinged
//! before it is used again, and dropped for a new one if it does not answer ([`Checked`]). A
//! Redis that restarted or failed over costs the command that finds it, not one command per
//! connection that died idle in the pool; the same rule as PostgreSQL's pools
//! (`common::db::pool_options`).

use std::future::Future;
use std::time::Duration;

use common::outage::OutageClock;
use deadpool::managed;
use deadpool_redis::Runtime;
use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::cluster_async::ClusterConnection;
use deadpool_redis::redis::{Cmd, FromRedisValue, RedisError, ScriptInvocation};
use futures::FutureExt;

use super::error::RoomError;

/// The longest a room command may take, with the wait for its connection: under GC's 3 s
/// deadline on its calls to MC, so that a Redis that stopped answering (a stalled host, a
/// SIGSTOP, a partition) is told to GC as `SERVICE_UNAVAILABLE` by MC itself, and a socket's
/// command fails rather than waits. A room script takes well under a millisecond.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(2);

/// `command`, failing with [`RoomError::Timeout`] after [`COMMAND_DEADLINE`]. A combinator,
/// not an `async fn`: an `async fn` would keep its argument and the timeout holding it side by
/// side, doubling the size of every room command's future, and with it the memory of every
/// socket task that awaits one (docs/benchmarks.md).
/// A failure is noted as an outage (see the module documentation): any error, since a
/// command's own refusal (a script's error) only costs a few PINGs more.
fn bounded<T>(
    command: impl Future<Output = Result<T, RoomError>>,
) -> impl Future<Output = Result<T, RoomError>> {
    tokio::time::timeout(COMMAND_DEADLINE, command).map(|answered| {
        let result = answered.unwrap_or(Err(RoomError::Timeout(COMMAND_DEADLINE)));
        if result.is_err() {
            OUTAGES.note();
        }
        result
    })
}

/// When a room command last failed.
static OUTAGES: OutageClock = OutageClock::new();

/// A pool manager that checks a connection when it is handed out again only if a command
/// failed since it was last handed out (it may have been the failing one, or died idle
/// meanwhile); `M`'s own check otherwise runs every time.
pub struct Checked<M>(M);

impl<M: managed::Manager + Sync> managed::Manager for Checked<M>
where
    M::Type: Send,
{
    type Type = M::Type;
    type Error = M::Error;

    async fn create(&self) -> Result<M::Type, M::Error> {
        self.0.create().await
    }

    async fn recycle(
        &self,
        connection: &mut M::Type,
        metrics: &managed::Metrics,
    ) -> managed::RecycleResult<M::Error> {
        if OUTAGES.predates_the_last_failure(metrics.last_used()) {
            self.0.recycle(connection, metrics).await
        } else {
            Ok(())
        }
    }
}

/// A pool of connections to one Redis server.
pub type SinglePool = managed::Pool<Checked<deadpool_redis::Manager>>;
/// A pool of connections to a Redis Cluster (each a client of every node).
pub type ClusterPool = managed::Pool<Checked<deadpool_redis::cluster::Manager>>;

/// Why a pool could not be made (a malformed URL).
#[derive(Debug, thiserror::Error)]
pub enum PoolConfigError {
    #[error("invalid Redis URL: {0}")]
    Url(#[from] RedisError),
    #[error("the pool could not be built: {0}")]
    Build(#[from] managed::BuildError),
}

/// A pool of `manager`'s connections, [`Checked`], at most `max_size` (deadpool's default when
/// `None`).
fn checked_pool<M>(
    manager: M,
    max_size: Option<usize>,
) -> Result<managed::Pool<Checked<M>>, managed::BuildError>
where
    Checked<M>: managed::Manager,
{
    let mut builder = managed::Pool::builder(Checked(manager)).runtime(Runtime::Tokio1);
    if let Some(size) = max_size {
        builder = builder.max_size(size);
    }
    builder.build()
}

#[derive(Clone)]
pub enum RedisPool {
    Single(SinglePool),
    Cluster(ClusterPool),
    /// One connection taken from a pool, used by every call at once
    /// ([`RedisPool::one_connection`]).
    Shared(SharedConnection),
}

/// A connection of a pool, kept to be used by many scripts at once.
#[derive(Clone)]
pub enum SharedConnection {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl RedisPool {
    /// A pool of connections to the server at `url`, at most `max_size` (deadpool's default,
    /// four per CPU, when `None`).
    pub fn single(url: &str, max_size: Option<usize>) -> Result<Self, PoolConfigError> {
        let manager = deadpool_redis::Manager::new(url)?;
        Ok(RedisPool::Single(checked_pool(manager, max_size)?))
    }

    /// A pool of cluster clients that know the cluster from `urls`, at most `max_size`.
    pub fn cluster(urls: Vec<String>, max_size: Option<usize>) -> Result<Self, PoolConfigError> {
        let manager = deadpool_redis::cluster::Manager::new(urls, false)?;
        Ok(RedisPool::Cluster(checked_pool(manager, max_size)?))
    }

    /// One connection of the pool, for calls made together: on one connection their commands
    /// reach Redis together and its replies come back together (the connection is multiplexed),
    /// where calls on connections of their own each cost Redis and this process a read and a
    /// write. The connection stays in the pool for others meanwhile.
    pub async fn one_connection(&self) -> Result<RedisPool, RoomError> {
        bounded(self.take_one()).await
    }

    async fn take_one(&self) -> Result<RedisPool, RoomError> {
        let shared = match self {
            RedisPool::Single(pool) => {
                let conn = pool.get().await.map_err(|e| RoomError::Pool(e.into()))?;
                SharedConnection::Single(MultiplexedConnection::clone(&conn))
            }
            RedisPool::Cluster(pool) => {
                let conn = pool.get().await.map_err(|e| RoomError::Pool(e.into()))?;
                SharedConnection::Cluster(ClusterConnection::clone(&conn))
            }
            RedisPool::Shared(shared) => shared.clone(),
        };
        Ok(RedisPool::Shared(shared))
    }

    /// Runs a script by its SHA1 (within [`COMMAND_DEADLINE`]), loading it first where the
    /// server does not know it yet (on a cluster, `SCRIPT LOAD` goes to every primary).
    pub(crate) async fn invoke<T: FromRedisValue>(
        &self,
        script: &ScriptInvocation<'_>,
    ) -> Result<T, RoomError> {
        bounded(async {
            match self {
                RedisPool::Single(pool) => {
                    let mut conn = pool.get().await.map_err(|e| RoomError::Pool(e.into()))?;
                    Ok(script.invoke_async(&mut *conn).await?)
                }
                RedisPool::Cluster(pool) => {
                    let mut conn = pool.get().await.map_err(|e| RoomError::Pool(e.into()))?;
                    Ok(script.invoke_async(&mut *conn).await?)
                }
                RedisPool::Shared(SharedConnection::Single(conn)) => {
                    Ok(script.invoke_async(&mut conn.clone()).await?)
                }
                RedisPool::Shared(SharedConnection::Cluster(conn)) => {
                    Ok(script.invoke_async(&mut conn.clone()).await?)
                }
            }
        })
        .await
    }

    /// Runs one command (routed by its first key on a cluster), within [`COMMAND_DEADLINE`].
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RoomError> {
        bounded(async {
            match self {
                RedisPool::Single(pool) => {
                    let mut conn = pool.get().await.map_err(|e| RoomError::Pool(e.into()))?;
                    Ok(cmd.query_async(&mut *conn).await?)
                }
                RedisPool::Cluster(pool) => {
                    let mut conn = pool.get().await.map_err(|e| RoomError::Pool(e.into()))?;
                    Ok(cmd.query_async(&mut *conn).await?)
                }
                RedisPool::Shared(SharedConnection::Single(conn)) => {
                    Ok(cmd.query_async(&mut conn.clone()).await?)
                }
                RedisPool::Shared(SharedConnection::Cluster(conn)) => {
                    Ok(cmd.query_async(&mut conn.clone()).await?)
                }
            }
        })
        .await
    }
}
