//! The two ways MC reaches Redis: one server (or a primary behind a proxy) or a Redis Cluster.
//! The room scripts run the same on both because every key of a room shares one hash slot.

use deadpool_redis::redis::{Cmd, FromRedisValue, ScriptInvocation};

use super::error::RoomError;

#[derive(Clone)]
pub enum RedisPool {
    Single(deadpool_redis::Pool),
    Cluster(deadpool_redis::cluster::Pool),
}

impl RedisPool {
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
        }
    }
}
