//! Argon2id hashing of passwords and client secrets.
//!
//! Parameters are the argon2 crate's defaults (Argon2id, 19 MiB, 2 passes, 1 lane), which are
//! OWASP's recommendation; the PHC string records them, so raising them later still verifies
//! old hashes.
//!
//! Anyone can make AC hash (a sign-in attempt costs nothing to send), so the server hashes
//! through a [`Hasher`]: a fixed pool of worker threads, one per hashing slot, each of which
//! allocates its Argon2 memory once and reuses it for every hash. A caller reserves a slot and
//! hands the work to the pool; when no slot frees up soon it is turned away, instead of work
//! (and 19 MiB each) queueing without bound. Hashing on dedicated threads also keeps it off
//! the async runtime, where tens of milliseconds of CPU would stall every other request, and
//! it bounds memory for real: hashed on tokio's blocking pool, each of up to hundreds of
//! threads kept its own freed 19 MiB blocks in its own malloc arena, and a burst of sign-ins
//! left AC holding about a gigabyte (see `docs/benchmarks.md`).
//!
//! The free functions ([`hash_blocking`], [`verify_blocking`] and their async wrappers) use the
//! argon2 crate's own API and allocate on every call; the `seed` command and the tests use them.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use argon2::password_hash::{
    Output, ParamsString, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// A fresh 16-byte salt from the OS CSPRNG.
fn new_salt() -> anyhow::Result<SaltString> {
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))
}

/// Hashes `secret` with a fresh salt, with the argon2 crate's own API. Blocking.
pub fn hash_blocking(secret: &str) -> anyhow::Result<String> {
    let salt = new_salt()?;
    let hash = Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    Ok(hash.to_string())
}

/// Checks `secret` against a PHC string with the argon2 crate's own API. A malformed hash
/// never matches. Blocking.
pub fn verify_blocking(secret: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(secret.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Hashes off the async runtime, outside any [`Hasher`].
pub async fn hash(secret: SecretString) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || hash_blocking(secret.expose_secret()))
        .await
        .context("password hashing task failed")?
}

/// Verifies off the async runtime, outside any [`Hasher`].
pub async fn verify(secret: SecretString, phc: String) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || verify_blocking(secret.expose_secret(), &phc))
        .await
        .context("password verification task failed")
}

/// Argon2 working memory, allocated by the first hash and reused by every later one. It grows
/// if a stored hash was made with more memory than the ones before, and is wiped after each
/// use, so nothing derived from one secret lingers until the next.
pub struct HashMemory(Vec<Block>);

impl HashMemory {
    /// Empty: the first hash allocates what it needs, so a worker that never hashed costs
    /// nothing resident.
    pub fn new() -> HashMemory {
        HashMemory(Vec::new())
    }

    /// Computes Argon2 of `secret` with `salt` into `out`.
    fn compute(
        &mut self,
        argon2: &Argon2<'_>,
        params: &Params,
        secret: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> Result<(), argon2::Error> {
        if self.0.len() < params.block_count() {
            self.0.resize(params.block_count(), Block::new());
        }
        let result = argon2.hash_password_into_with_memory(secret, salt, out, &mut self.0[..]);
        self.0.fill(Block::new());
        result
    }

    /// [`hash_blocking`] in this memory: the same PHC string for the same salt.
    pub fn hash(&mut self, secret: &[u8], salt: &SaltString) -> anyhow::Result<String> {
        let params = Params::DEFAULT;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt
            .decode_b64(&mut salt_bytes)
            .map_err(|e| anyhow::anyhow!("salt: {e}"))?;
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        self.compute(&argon2, &params, secret, salt_bytes, &mut out)
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(|e| anyhow::anyhow!("{e}"))?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).map_err(|e| anyhow::anyhow!("{e}"))?),
        };
        Ok(phc.to_string())
    }

    /// [`verify_blocking`] in this memory: recomputes the hash with the PHC string's own
    /// algorithm, version, parameters and salt, and compares in constant time. A malformed
    /// hash never matches.
    pub fn verify(&mut self, secret: &[u8], phc: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
            return false;
        };
        let version = match parsed.version.map(Version::try_from) {
            None => Version::default(),
            Some(Ok(version)) => version,
            Some(Err(_)) => return false,
        };
        let Ok(params) = Params::try_from(&parsed) else {
            return false;
        };
        let mut salt_bytes = [0u8; 64];
        let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else {
            return false;
        };
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let mut out = vec![0u8; expected.len()];
        if self
            .compute(&argon2, &params, secret, salt_bytes, &mut out)
            .is_err()
        {
            return false;
        }
        out.as_slice().ct_eq(expected.as_bytes()).into()
    }
}

impl Default for HashMemory {
    fn default() -> Self {
        HashMemory::new()
    }
}

/// Why a [`Hasher`] did not hash.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every slot stayed taken for the whole wait; the caller should come back later.
    #[error("no hashing capacity became free in time")]
    Busy,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// The replica's hashing capacity: `max_concurrent` worker threads, each with its own
/// [`HashMemory`], shared by every request. Cheap to clone; clones share the pool, whose
/// threads end when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Hasher {
    slots: Arc<Semaphore>,
    jobs: SyncSender<Job>,
    wait: Duration,
}

/// A reserved hashing slot, released on drop.
#[derive(Debug)]
pub struct HashSlot {
    _permit: OwnedSemaphorePermit,
}

/// Work for the pool. It carries its slot, so the slot stays taken until the work is done,
/// also when the request that asked for it has gone.
struct Job {
    work: Work,
    _slot: HashSlot,
}

enum Work {
    Hash {
        secret: SecretString,
        reply: oneshot::Sender<anyhow::Result<String>>,
    },
    Verify {
        secret: SecretString,
        phc: String,
        reply: oneshot::Sender<bool>,
    },
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl Hasher {
    /// Starts `max_concurrent` worker threads (at least one); a caller waits at most `wait`
    /// for a free slot.
    pub fn new(max_concurrent: usize, wait: Duration) -> std::io::Result<Hasher> {
        let workers = max_concurrent.max(1);
        // A job is only sent with a slot, and there are as many slots as places in the
        // queue, so sending never blocks.
        let (jobs, queue) = sync_channel::<Job>(workers);
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..workers {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("ac-hash-{n}"))
                .spawn(move || work(&queue))?;
        }
        Ok(Hasher {
            slots: Arc::new(Semaphore::new(workers)),
            jobs,
            wait,
        })
    }

    /// How long a caller waits at most for a free slot.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// Reserves a slot, waiting at most the configured time.
    pub async fn reserve(&self) -> Result<HashSlot, HashError> {
        match tokio::time::timeout(self.wait, Arc::clone(&self.slots).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(HashSlot { _permit: permit }),
            // The semaphore is never closed; treat it like a timeout all the same.
            Ok(Err(_)) | Err(_) => Err(HashError::Busy),
        }
    }

    /// Hashes `secret` with a fresh salt in the pool, within the capacity.
    pub async fn hash(&self, secret: SecretString) -> Result<String, HashError> {
        let slot = self.reserve().await?;
        let (reply, answer) = oneshot::channel();
        self.submit(Job {
            work: Work::Hash { secret, reply },
            _slot: slot,
        })?;
        let hashed = answer.await.context("the hashing thread went away")?;
        Ok(hashed?)
    }

    /// Verifies `secret` against the PHC string `phc` in the pool, within the capacity.
    pub async fn verify(&self, secret: SecretString, phc: String) -> Result<bool, HashError> {
        let slot = self.reserve().await?;
        let (reply, answer) = oneshot::channel();
        self.submit(Job {
            work: Work::Verify { secret, phc, reply },
            _slot: slot,
        })?;
        Ok(answer.await.context("the hashing thread went away")?)
    }

    fn submit(&self, job: Job) -> Result<(), HashError> {
        self.jobs.try_send(job).map_err(|error| {
            let why = match error {
                TrySendError::Full(_) => "the hashing queue is full",
                TrySendError::Disconnected(_) => "the hashing threads have stopped",
            };
            HashError::Failed(anyhow::anyhow!(why))
        })
    }
}

/// A worker thread: takes jobs until every [`Hasher`] clone is gone.
fn work(queue: &Mutex<Receiver<Job>>) {
    let mut memory = HashMemory::new();
    loop {
        // The lock is held only while waiting for the next job, never while hashing.
        let next = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(Job { work, _slot: slot }) = next else {
            return;
        };
        // The slot is freed before the answer goes out, so a caller that asks again at once
        // finds it free. A requester that has gone away no longer wants the answer; that is
        // fine.
        match work {
            Work::Hash { secret, reply } => {
                let hashed = new_salt()
                    .and_then(|salt| memory.hash(secret.expose_secret().as_bytes(), &salt));
                drop(slot);
                let _ = reply.send(hashed);
            }
            Work::Verify { secret, phc, reply } => {
                let matches = memory.verify(secret.expose_secret().as_bytes(), &phc);
                drop(slot);
                let _ = reply.send(matches);
            }
        }
    }
}

/// A hash of a random secret nobody knows, made once at start-up. Sign-in attempts for unknown
/// e-mail addresses or client ids are verified against it, so they take as long as attempts
/// against real accounts and the timing does not reveal which addresses exist.
#[derive(Clone)]
pub struct DummyHash(String);

impl DummyHash {
    /// Hashes a random secret in `hasher`'s pool, like every hash the server makes.
    pub async fn generate(hasher: &Hasher) -> anyhow::Result<DummyHash> {
        let secret = super::secret::random_token(32)?;
        match hasher.hash(SecretString::from(secret)).await {
            Ok(phc) => Ok(DummyHash(phc)),
            Err(HashError::Busy) => anyhow::bail!("no hashing slot for the dummy hash"),
            Err(HashError::Failed(error)) => Err(error),
        }
    }

    pub fn phc(&self) -> String {
        self.0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_and_nothing_else() {
        let phc = hash_blocking("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(!phc.contains("correct horse"));
        assert!(verify_blocking("correct horse", &phc));
        assert!(!verify_blocking("correct horse!", &phc));
        assert!(!verify_blocking("correct horse", "not a phc string"));
    }

    #[test]
    fn the_same_password_hashes_differently_each_time() {
        let a = hash_blocking("same password").unwrap();
        let b = hash_blocking("same password").unwrap();
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn async_wrappers_round_trip() {
        let phc = hash(SecretString::from("pa55word")).await.unwrap();
        assert!(
            verify(SecretString::from("pa55word"), phc.clone())
                .await
                .unwrap()
        );
        assert!(!verify(SecretString::from("other"), phc).await.unwrap());
        let hasher = Hasher::new(1, Duration::from_secs(2)).unwrap();
        let dummy = DummyHash::generate(&hasher).await.unwrap();
        assert!(
            !verify(SecretString::from("pa55word"), dummy.phc())
                .await
                .unwrap()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hasher_with_every_slot_taken_turns_callers_away_after_the_wait() {
        let hasher = Hasher::new(2, Duration::from_secs(2)).unwrap();
        let phc = hash_blocking("pa55word").unwrap();
        let first = hasher.reserve().await.unwrap();
        let second = hasher.reserve().await.unwrap();

        let started = tokio::time::Instant::now();
        let refused = hasher
            .verify(SecretString::from("pa55word"), phc.clone())
            .await;

        assert!(matches!(refused, Err(HashError::Busy)));
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert!(matches!(
            hasher.hash(SecretString::from("pa55word")).await,
            Err(HashError::Busy)
        ));
        drop(first);
        assert!(
            hasher
                .verify(SecretString::from("pa55word"), phc)
                .await
                .unwrap()
        );
        drop(second);
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_gets_a_slot_that_frees_up_within_the_wait() {
        let hasher = Hasher::new(1, Duration::from_secs(2)).unwrap();
        let held = hasher.reserve().await.unwrap();
        let waiting = tokio::spawn({
            let hasher = hasher.clone();
            async move { hasher.hash(SecretString::from("pa55word")).await }
        });
        // On the paused clock this lets the waiter run until it blocks on the full hasher.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished());

        drop(held);

        let phc = waiting.await.unwrap().unwrap();
        assert!(verify_blocking("pa55word", &phc));
    }

    #[test]
    fn the_pool_makes_the_same_phc_string_as_the_argon2_crate_for_the_same_salt() {
        let salt = new_salt().unwrap();
        let reference = Argon2::default()
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string();

        let pooled = HashMemory::new().hash(b"correct horse", &salt).unwrap();

        assert_eq!(pooled, reference);
    }

    #[test]
    fn hashes_verify_in_both_directions_between_the_pool_and_the_argon2_crate() {
        let mut memory = HashMemory::new();
        let from_crate = hash_blocking("correct horse").unwrap();
        let from_pool = memory.hash(b"correct horse", &new_salt().unwrap()).unwrap();

        assert!(memory.verify(b"correct horse", &from_crate));
        assert!(!memory.verify(b"correct horse!", &from_crate));
        assert!(verify_blocking("correct horse", &from_pool));
        assert!(!verify_blocking("correct horse!", &from_pool));
        // The memory is reused: the same buffer verifies again after other work.
        assert!(memory.verify(b"correct horse", &from_pool));
    }

    #[test]
    fn the_pool_verifies_hashes_made_with_other_parameters() {
        let mut memory = HashMemory::new();
        for (m_cost, t_cost, version) in [
            (8 * 1024, 1, Version::V0x13),
            (32 * 1024, 3, Version::V0x13),
            (19 * 1024, 2, Version::V0x10),
        ] {
            let params = Params::new(m_cost, t_cost, 1, None).unwrap();
            let argon2 = Argon2::new(Algorithm::Argon2id, version, params);
            let phc = argon2
                .hash_password(b"pa55word", &new_salt().unwrap())
                .unwrap()
                .to_string();

            assert!(memory.verify(b"pa55word", &phc), "{phc}");
            assert!(!memory.verify(b"pa55word!", &phc), "{phc}");
        }
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, Params::DEFAULT)
            .hash_password(b"pa55word", &new_salt().unwrap())
            .unwrap()
            .to_string();
        assert!(memory.verify(b"pa55word", &argon2i));
    }

    #[test]
    fn malformed_or_truncated_hashes_never_match() {
        let mut memory = HashMemory::new();
        let phc = hash_blocking("pa55word").unwrap();
        let without_hash = phc.rsplit_once('$').unwrap().0.to_owned();
        for bad in [
            "",
            "not a phc string",
            "$argon2id$v=19$m=19456,t=2,p=1",
            without_hash.as_str(),
            "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E",
            &phc.replace("argon2id", "argon2x"),
            &phc.replace("m=19456", "m=1"),
        ] {
            assert!(!memory.verify(b"pa55word", bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn the_pool_hashes_and_verifies_through_its_threads() {
        let hasher = Hasher::new(2, Duration::from_secs(5)).unwrap();

        let phc = hasher.hash(SecretString::from("pa55word")).await.unwrap();

        assert!(verify_blocking("pa55word", &phc));
        let checks = (0..6).map(|n| {
            let hasher = hasher.clone();
            let phc = phc.clone();
            let secret = if n % 2 == 0 { "pa55word" } else { "wrong" };
            async move {
                hasher
                    .verify(SecretString::from(secret), phc)
                    .await
                    .unwrap()
            }
        });
        let results = futures_join_all(checks).await;
        assert_eq!(results, [true, false, true, false, true, false]);
    }

    /// Awaits every future, in order, each on its own task.
    async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handles: Vec<_> = futures.map(tokio::spawn).collect();
        let mut results = Vec::new();
        for handle in handles {
            results.push(handle.await.unwrap());
        }
        results
    }
}
