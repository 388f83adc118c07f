//! The session registry: client id -> current session, sharded so that
//! registrations on different clients do not contend on one lock. The
//! message path never touches it; only connect, disconnect and command
//! routing do.

use super::Session;
use std::cmp::Ordering as By;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

const SHARDS: usize = 64;

type Shard = RwLock<HashMap<Arc<str>, Arc<Session>>>;

/// Client id -> current session.
pub(crate) struct Registry {
    shards: Box<[Shard]>,
    hasher: RandomState,
    len: AtomicUsize,
}

impl Registry {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            len: AtomicUsize::new(0),
        }
    }

    fn shard(&self, client_id: &str) -> &Shard {
        let h = self.hasher.hash_one(client_id);
        &self.shards[(h as usize) % SHARDS]
    }

    /// The current session of `client_id`.
    pub(crate) fn get(&self, client_id: &str) -> Option<Arc<Session>> {
        let shard = self
            .shard(client_id)
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        shard.get(client_id).cloned()
    }

    /// Makes `session` current for its client id and returns the session it
    /// replaced, which the caller must end as superseded.
    pub(crate) fn insert(&self, session: Arc<Session>) -> Option<Arc<Session>> {
        let mut shard = self
            .shard(&session.client_id)
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let old = shard.insert(session.client_id.clone(), session);
        if old.is_none() {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        old
    }

    /// Removes `session` if it is still the current one for its client id
    /// (a superseded session must not remove its successor).
    pub(crate) fn remove(&self, session: &Session) -> bool {
        let mut shard = self
            .shard(&session.client_id)
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match shard.get(&*session.client_id) {
            Some(cur) if Arc::ptr_eq(&cur.session_id, &session.session_id) => {
                shard.remove(&*session.client_id);
                self.len.fetch_sub(1, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    /// Every current session.
    pub(crate) fn all(&self) -> Vec<Arc<Session>> {
        let mut out = Vec::with_capacity(self.len());
        for shard in self.shards.iter() {
            let shard = shard
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            out.extend(shard.values().cloned());
        }
        out
    }

    /// The `limit` sessions with the smallest client ids after `after`
    /// that `keep` accepts, sorted by client id, and whether more follow.
    /// One pass over the shards (each read-locked in turn) keeping a heap
    /// of `limit + 1` entries: a page costs O(sessions · log limit) and
    /// no copy of the whole registry.
    pub(crate) fn page(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: impl Fn(&Session) -> bool,
    ) -> (Vec<Arc<Session>>, bool) {
        let mut heap: BinaryHeap<ById> = BinaryHeap::with_capacity(limit + 1);
        for shard in self.shards.iter() {
            let shard = shard
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (id, s) in shard.iter() {
                if after.is_some_and(|a| &**id <= a) {
                    continue;
                }
                if heap.len() > limit && heap.peek().is_some_and(|top| *top.0.client_id <= **id) {
                    continue;
                }
                if !keep(s) {
                    continue;
                }
                heap.push(ById(s.clone()));
                if heap.len() > limit + 1 {
                    heap.pop();
                }
            }
        }
        let more = heap.len() > limit;
        let mut page: Vec<Arc<Session>> = heap.into_sorted_vec().into_iter().map(|b| b.0).collect();
        page.truncate(limit);
        (page, more)
    }

    /// How many sessions are current.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }
}

/// A session ordered by its client id (for the page heap).
struct ById(Arc<Session>);

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.0.client_id == other.0.client_id
    }
}

impl Eq for ById {}

impl PartialOrd for ById {
    fn partial_cmp(&self, other: &Self) -> Option<By> {
        Some(self.cmp(other))
    }
}

impl Ord for ById {
    fn cmp(&self, other: &Self) -> By {
        self.0.client_id.cmp(&other.0.client_id)
    }
}
