//! The engine's hand-offs between a stream's thread and the workers: a queue of jobs, taken in
//! batches, and a one-place reply slot per stream, both on a mutex and a condition variable,
//! allocated once.
//! A thread that has to wait sleeps at once; crossbeam's channels first spin and yield, which
//! at a thousand blocks a second cost the server about 2% of its CPU time (docs/research/cost.md,
//! "Many streams").

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A first-in first-out queue that can be closed, whose consumers take its items one batch
/// at a time.
pub struct Queue<T> {
    inner: Mutex<Inner<T>>,
    ready: Condvar,
    /// Held by the consumer gathering a batch: the others wait their turn behind it.
    turn: Mutex<()>,
}

struct Inner<T> {
    /// The items, each with the time it was pushed.
    items: VecDeque<(Instant, T)>,
    closed: bool,
    /// Whether a consumer sleeps on `ready`, and the length of the queue that wakes it.
    sleeping: bool,
    wake_at: usize,
}

impl<T> Queue<T> {
    /// An open queue with room for `capacity` items before it allocates.
    pub fn with_capacity(capacity: usize) -> Self {
        Queue {
            inner: Mutex::new(Inner {
                items: VecDeque::with_capacity(capacity),
                closed: false,
                sleeping: false,
                wake_at: 1,
            }),
            ready: Condvar::new(),
            turn: Mutex::new(()),
        }
    }

    /// Adds `item` at the back; gives it back if the queue is closed.
    pub fn push(&self, item: T) -> Result<(), T> {
        let mut q = self.inner.lock().unwrap();
        if q.closed {
            return Err(item);
        }
        q.items.push_back((Instant::now(), item));
        let wake = q.sleeping && q.items.len() >= q.wake_at;
        drop(q);
        if wake {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// The front item, waiting for one; `None` once the queue is closed and empty.
    #[cfg(test)]
    pub fn pop(&self) -> Option<T> {
        let mut one = Vec::with_capacity(1);
        self.pop_batch(&mut one, 1, Duration::ZERO);
        one.pop()
    }

    /// Moves up to `max` items into `into`; false (nothing moved) once the queue is closed and
    /// empty. Waits for a first item, then until `max` items wait or the oldest of them has
    /// waited `wait`, whichever comes first: a batch fills when items come often, and no item
    /// waits more than `wait` for others to join it. One consumer gathers at a time.
    pub fn pop_batch(&self, into: &mut Vec<T>, max: usize, wait: Duration) -> bool {
        let _turn = self.turn.lock().unwrap();
        let mut q = self.inner.lock().unwrap();
        while q.items.is_empty() {
            if q.closed {
                return false;
            }
            q = self.sleep(q, 1, None);
        }
        if let Some(&(oldest, _)) = q.items.front() {
            let deadline = oldest + wait;
            while q.items.len() < max && !q.closed {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                q = self.sleep(q, max, Some(left));
            }
        }
        let n = q.items.len().min(max);
        into.extend(q.items.drain(..n).map(|(_, item)| item));
        true
    }

    /// Sleeps until the queue holds `wake_at` items, it closes, or `timeout` passes.
    fn sleep<'a>(
        &self,
        mut q: MutexGuard<'a, Inner<T>>,
        wake_at: usize,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, Inner<T>> {
        (q.sleeping, q.wake_at) = (true, wake_at);
        let mut q = match timeout {
            Some(t) => self.ready.wait_timeout(q, t).unwrap().0,
            None => self.ready.wait(q).unwrap(),
        };
        q.sleeping = false;
        q
    }

    /// Closes the queue: no more pushes; pops take what is left, then get `None`.
    pub fn close(&self) {
        self.inner.lock().unwrap().closed = true;
        self.ready.notify_all();
    }
}

/// A place for one value, filled by one thread and taken by another.
pub struct Slot<T> {
    value: Mutex<Option<T>>,
    filled: Condvar,
}

impl<T> Slot<T> {
    /// An empty slot.
    pub fn new() -> Self {
        Slot {
            value: Mutex::new(None),
            filled: Condvar::new(),
        }
    }

    /// Fills the slot (replacing a value not taken yet).
    pub fn put(&self, value: T) {
        *self.value.lock().unwrap() = Some(value);
        self.filled.notify_one();
    }

    /// The value, waiting until the slot is filled; leaves it empty.
    pub fn take(&self) -> T {
        let mut v = self.value.lock().unwrap();
        loop {
            if let Some(value) = v.take() {
                return value;
            }
            v = self.filled.wait(v).unwrap();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn jobs_come_out_in_order_to_waiting_workers_and_closing_ends_them() {
        let q = Arc::new(Queue::with_capacity(4));
        let results = Arc::new(Slot::new());
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (q, results) = (q.clone(), results.clone());
                std::thread::spawn(move || {
                    let mut n = 0;
                    while let Some(i) = q.pop() {
                        results.put(i * 10);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        // One job at a time, each answered before the next, as a stream does.
        for i in 0..100 {
            q.push(i).unwrap();
            assert_eq!(results.take(), i * 10);
        }
        q.close();
        assert_eq!(q.push(7), Err(7), "a closed queue takes nothing");
        let done: i32 = workers.into_iter().map(|w| w.join().unwrap()).sum();
        assert_eq!(done, 100);
    }

    #[test]
    fn a_batch_goes_when_full_or_once_its_oldest_item_has_waited() {
        let q = Arc::new(Queue::with_capacity(8));
        let mut got = Vec::with_capacity(8);
        // Items already waiting go at once, up to the most asked for.
        for i in 0..5 {
            q.push(i).unwrap();
        }
        let t = std::time::Instant::now();
        assert!(q.pop_batch(&mut got, 3, Duration::from_secs(10)));
        assert_eq!(got, [0, 1, 2]);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        // Two left, fewer than asked for: they go once the older has waited `wait`, counted
        // from when it came, not from when its consumer came.
        std::thread::sleep(Duration::from_millis(300));
        let t = std::time::Instant::now();
        assert!(q.pop_batch(&mut got, 3, Duration::from_millis(250)));
        assert_eq!(got, [0, 1, 2, 3, 4]);
        assert!(
            t.elapsed() < Duration::from_millis(250),
            "{:?}",
            t.elapsed()
        );
        // An empty queue: the first item, then what comes within the wait...
        got.clear();
        let pusher = {
            let q = q.clone();
            std::thread::spawn(move || {
                for i in 0..3 {
                    std::thread::sleep(Duration::from_millis(20));
                    q.push(i).unwrap();
                }
            })
        };
        assert!(q.pop_batch(&mut got, 3, Duration::from_secs(10)));
        assert_eq!(got, [0, 1, 2], "the batch filled before the wait ended");
        pusher.join().unwrap();
        // ... and no more than the wait when the batch does not fill.
        got.clear();
        let pusher = {
            let q = q.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(10));
                q.push(7).unwrap();
            })
        };
        let t = std::time::Instant::now();
        assert!(q.pop_batch(&mut got, 4, Duration::from_millis(50)));
        let took = t.elapsed();
        assert_eq!(got, [7]);
        assert!(took >= Duration::from_millis(55), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        pusher.join().unwrap();
        q.close();
        assert!(!q.pop_batch(&mut got, 4, Duration::from_millis(50)));
    }

    #[test]
    fn a_closed_queue_still_hands_out_what_it_holds() {
        let q = Queue::with_capacity(1);
        q.push("a").unwrap();
        q.push("b").unwrap();
        q.close();
        assert_eq!((q.pop(), q.pop(), q.pop()), (Some("a"), Some("b"), None));
    }
}
