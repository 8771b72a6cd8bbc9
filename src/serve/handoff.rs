//! The engine's hand-offs between a stream's thread and the workers: a queue of jobs and a
//! one-place reply slot per stream, both on a mutex and a condition variable, allocated once.
//! A thread that has to wait sleeps at once; crossbeam's channels first spin and yield, which
//! at a thousand blocks a second cost the server about 2% of its CPU time (README, Many
//! satellites).

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};

/// A first-in first-out queue that can be closed.
pub struct Queue<T> {
    /// The items, and whether the queue is closed.
    inner: Mutex<(VecDeque<T>, bool)>,
    ready: Condvar,
}

impl<T> Queue<T> {
    /// An open queue with room for `capacity` items before it allocates.
    pub fn with_capacity(capacity: usize) -> Self {
        Queue {
            inner: Mutex::new((VecDeque::with_capacity(capacity), false)),
            ready: Condvar::new(),
        }
    }

    /// Adds `item` at the back; gives it back if the queue is closed.
    pub fn push(&self, item: T) -> Result<(), T> {
        let mut q = self.inner.lock().unwrap();
        if q.1 {
            return Err(item);
        }
        q.0.push_back(item);
        drop(q);
        self.ready.notify_one();
        Ok(())
    }

    /// The front item, waiting for one; `None` once the queue is closed and empty.
    pub fn pop(&self) -> Option<T> {
        let mut q = self.inner.lock().unwrap();
        loop {
            if let Some(item) = q.0.pop_front() {
                return Some(item);
            }
            if q.1 {
                return None;
            }
            q = self.ready.wait(q).unwrap();
        }
    }

    /// Closes the queue: no more pushes; pops take what is left, then get `None`.
    pub fn close(&self) {
        self.inner.lock().unwrap().1 = true;
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
    fn a_closed_queue_still_hands_out_what_it_holds() {
        let q = Queue::with_capacity(1);
        q.push("a").unwrap();
        q.push("b").unwrap();
        q.close();
        assert_eq!((q.pop(), q.pop(), q.pop()), (Some("a"), Some("b"), None));
    }
}
