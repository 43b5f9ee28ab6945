//! The two ways MC reaches Redis: one server (or a primary behind a proxy) or a Redis Cluster.
//! The room scripts run the same on both because every key of a room shares one hash slot.

use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::cluster_async::ClusterConnection;
use deadpool_redis::redis::{Cmd, FromRedisValue, ScriptInvocation};

use super::error::RoomError;

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

    /// Runs a script by its SHA1, loading it first where the server does not know it yet (on a
    /// cluster, `SCRIPT LOAD` goes to every primary).
    pub(crate) async fn invoke<T: FromRedisValue>(
        &self,
        script: &ScriptInvocation<'_>,
    ) -> Result<T, RoomError> {
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
    }

    /// Runs one command (routed by its first key on a cluster).
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RoomError> {
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
    }
}
