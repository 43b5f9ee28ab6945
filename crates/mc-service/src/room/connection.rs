//! The two ways MC reaches Redis: one server (or a primary behind a proxy) or a Redis Cluster.
//! The room scripts run the same on both because every key of a room shares one hash slot.

use std::future::Future;
use std::time::Duration;

use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::cluster_async::ClusterConnection;
use deadpool_redis::redis::{Cmd, FromRedisValue, ScriptInvocation};
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
fn bounded<T>(
    command: impl Future<Output = Result<T, RoomError>>,
) -> impl Future<Output = Result<T, RoomError>> {
    tokio::time::timeout(COMMAND_DEADLINE, command)
        .map(|answered| answered.unwrap_or(Err(RoomError::Timeout(COMMAND_DEADLINE))))
}

#[derive(Clone)]
pub enum RedisPool {
    Single(deadpool_redis::Pool),
    Cluster(deadpool_redis::cluster::Pool),
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
                    Ok(script.invoke_async(&mut conn).await?)
                }
                RedisPool::Cluster(pool) => {
                    let mut conn = pool.get().await.map_err(|e| RoomError::Pool(e.into()))?;
                    Ok(script.invoke_async(&mut conn).await?)
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
                    Ok(cmd.query_async(&mut conn).await?)
                }
                RedisPool::Cluster(pool) => {
                    let mut conn = pool.get().await.map_err(|e| RoomError::Pool(e.into()))?;
                    Ok(cmd.query_async(&mut conn).await?)
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
