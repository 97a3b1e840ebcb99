//! The store's count of sleeping peers, kept as peers fall asleep and
//! wake, so that what the store does for all of them together (the
//! hibernated-region gauge, the liveness probes of their leaders' stores)
//! costs as much for ten thousand sleeping regions as for ten.

use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct Sleepers {
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    /// Sleeping leaders here.
    leaders: usize,
    /// Sleeping followers here, by the store their leader is on.
    followers: HashMap<u64, usize>,
}

impl Sleepers {
    /// A peer fell asleep: a leader (`None`) or a follower of a leader on
    /// `leader_store`.
    pub fn fell_asleep(&self, leader_store: Option<u64>) {
        let mut c = self.counts.lock().unwrap();
        match leader_store {
            None => c.leaders += 1,
            Some(store) => *c.followers.entry(store).or_default() += 1,
        }
    }

    /// A peer that [`Sleepers::fell_asleep`] with `leader_store` woke (or
    /// was dropped asleep).
    pub fn woke(&self, leader_store: Option<u64>) {
        let mut c = self.counts.lock().unwrap();
        match leader_store {
            None => c.leaders = c.leaders.saturating_sub(1),
            Some(store) => {
                if let Some(n) = c.followers.get_mut(&store) {
                    *n -= 1;
                    if *n == 0 {
                        c.followers.remove(&store);
                    }
                }
            }
        }
    }

    /// Sleeping peers, leaders and followers.
    pub fn count(&self) -> usize {
        let c = self.counts.lock().unwrap();
        c.leaders + c.followers.values().sum::<usize>()
    }

    /// The stores whose leaders sleeping followers here wait on.
    pub fn leader_stores(&self) -> Vec<u64> {
        self.counts.lock().unwrap().followers.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Sleepers;

    #[test]
    fn counts_follow_peers_falling_asleep_and_waking() {
        let s = Sleepers::default();
        s.fell_asleep(None);
        s.fell_asleep(Some(2));
        s.fell_asleep(Some(2));
        s.fell_asleep(Some(3));
        assert_eq!(s.count(), 4);
        let mut stores = s.leader_stores();
        stores.sort_unstable();
        assert_eq!(stores, vec![2, 3]);
        s.woke(Some(3));
        s.woke(Some(2));
        s.woke(None);
        assert_eq!(s.count(), 1);
        assert_eq!(s.leader_stores(), vec![2], "store 3 leads no sleeping follower here any more");
        s.woke(Some(2));
        s.woke(Some(9));
        s.woke(None);
        assert_eq!((s.count(), s.leader_stores().len()), (0, 0), "an unknown wake changes nothing");
    }
}
