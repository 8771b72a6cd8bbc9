//! The training clips embedded on several threads. Clips are still made one after another from
//! one random stream (on the calling thread), each worker embeds with its own session of the
//! base model, and the embeddings are handed on in the order the clips were made: the examples,
//! and so the head, are the same bit for bit whatever the number of threads or their timing.
//! At most `IN_FLIGHT` clips per worker are made and not yet handed on, so memory stays low.

use std::collections::BTreeMap;
use std::sync::mpsc::{channel, sync_channel, Receiver};
use std::sync::Mutex;

use super::clips::Clip;
use crate::pipeline::embedding::{embed_signal_warm, Embedder};
use crate::Result;

/// Clips per worker made and not yet handed on, at most.
const IN_FLIGHT: usize = 3;
/// Worker threads at most, whatever the machine has.
const MAX_WORKERS: usize = 4;

/// Makes the clips, handing each to the function it is given, in a fixed order.
type MakeClips<'m> = &'m mut dyn FnMut(&mut dyn FnMut(Clip)) -> Result<()>;

/// A clip's number, the clip and its embeddings (or why they could not be computed).
type Done = (usize, Clip, Result<Vec<f32>>);

/// How many threads to embed on: the machine's cores, at most `MAX_WORKERS`.
pub(super) fn worker_count() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_WORKERS)
}

/// Embeds each clip that `make` hands out (warm-started, see [`embed_signal_warm`]) on one
/// thread per embedder in `workers`, and hands it with its number and its embeddings to `done`
/// in the order the clips were made. Stops at the first failure, `make`'s or a clip's.
pub(super) fn embed_clips(
    workers: &mut [&mut Embedder],
    make: MakeClips,
    done: &mut dyn FnMut(usize, Clip, &[f32]),
) -> Result<()> {
    if workers.len() <= 1 {
        return embed_here(workers, make, done);
    }
    let max_in_flight = IN_FLIGHT * workers.len();
    let (job_tx, job_rx) = sync_channel::<(usize, Clip)>(workers.len());
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = channel::<Done>();
    std::thread::scope(|scope| {
        for emb in workers.iter_mut() {
            let (jobs, results) = (&job_rx, done_tx.clone());
            scope.spawn(move || {
                // Holding the lock while waiting is fine: the others would wait anyway.
                while let Ok((i, clip)) = jobs
                    .lock()
                    .map_err(|_| ())
                    .and_then(|r| r.recv().map_err(|_| ()))
                {
                    let a = &clip.audio;
                    let e = embed_signal_warm(emb, &a.samples, a.warp, &a.colour);
                    if results.send((i, clip, e)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        let mut order = InOrder::new(done_rx, done);
        let made = make(&mut |clip| {
            if order.failed.is_some() {
                return;
            }
            order.wait_below(max_in_flight);
            if job_tx.send((order.made, clip)).is_ok() {
                order.made += 1;
            }
        });
        drop(job_tx);
        order.wait_below(1);
        made?;
        order.failed.map_or(Ok(()), Err)
    })
}

/// The clips embedded on the calling thread, one after another.
fn embed_here(
    workers: &mut [&mut Embedder],
    make: MakeClips,
    done: &mut dyn FnMut(usize, Clip, &[f32]),
) -> Result<()> {
    let emb = match workers.first_mut() {
        Some(emb) => emb,
        None => return Ok(()),
    };
    let (mut i, mut failed) = (0, None);
    make(&mut |clip| {
        if failed.is_some() {
            return;
        }
        let a = &clip.audio;
        match embed_signal_warm(emb, &a.samples, a.warp, &a.colour) {
            Ok(e) => done(i, clip, &e),
            Err(e) => failed = Some(e),
        }
        i += 1;
    })?;
    failed.map_or(Ok(()), Err)
}

/// The workers' results put back in the order the clips were made.
struct InOrder<'d> {
    results: Receiver<Done>,
    done: &'d mut dyn FnMut(usize, Clip, &[f32]),
    /// Results that came before an earlier clip's.
    waiting: BTreeMap<usize, (Clip, Vec<f32>)>,
    /// Clips sent to the workers, and clips handed on.
    made: usize,
    next: usize,
    failed: Option<crate::Error>,
}

impl<'d> InOrder<'d> {
    fn new(results: Receiver<Done>, done: &'d mut dyn FnMut(usize, Clip, &[f32])) -> Self {
        InOrder {
            results,
            done,
            waiting: BTreeMap::new(),
            made: 0,
            next: 0,
            failed: None,
        }
    }

    /// Takes every result ready, and waits for more until fewer than `n` clips are in flight.
    fn wait_below(&mut self, n: usize) {
        while let Ok(r) = self.results.try_recv() {
            self.take(r);
        }
        while self.made - self.next >= n {
            match self.results.recv() {
                Ok(r) => self.take(r),
                // Every worker has stopped (after a failure): nothing more will come.
                Err(_) => break,
            }
        }
    }

    /// One result: handed on if it is the next clip (with any that waited for it), else kept.
    fn take(&mut self, (i, clip, e): Done) {
        match e {
            Ok(e) => {
                self.waiting.insert(i, (clip, e));
            }
            Err(e) => {
                self.failed.get_or_insert(e);
                // Nothing after a failure is handed on.
                self.next = self.made;
                return;
            }
        }
        while let Some((clip, e)) = self.waiting.remove(&self.next) {
            if self.failed.is_none() {
                (self.done)(self.next, clip, &e);
            }
            self.next += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::augment::Placed;
    use crate::train::fold::{Fold, Source};

    fn assets() -> crate::assets::Assets {
        let models = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
        crate::assets::Assets::locate(Some(&models)).expect("models/ (run .ci/setup)")
    }

    /// `n` clips of speech of different lengths, warps and colours.
    fn clips(n: usize) -> Vec<Clip> {
        let (speech, _) = crate::audio::synth::stream(crate::audio::synth::VOICE, 1).unwrap();
        (0..n)
            .map(|k| Clip {
                audio: Placed {
                    samples: speech[k * 7_000..k * 7_000 + 16_000 + k % 4 * 4_000].to_vec(),
                    word_start: 0.3,
                    word_end: 0.8,
                    warp: 1.0 + (k % 3) as f64 * 0.05,
                    colour: vec![0.1 * (k % 2) as f32; if k % 2 == 1 { 32 } else { 0 }],
                },
                class: k % 3,
                fold: Fold::Take(k),
                clean: false,
                source: Source::Take,
            })
            .collect()
    }

    /// (number, class, embeddings) of each clip handed on, on `workers` threads.
    fn run(emb: &mut Embedder, workers: usize) -> Vec<(usize, usize, Vec<f32>)> {
        let mut own = emb.fastest_copies(workers).unwrap();
        let mut all: Vec<&mut Embedder> = own.iter_mut().collect();
        let mut out = Vec::new();
        let mut make = |emit: &mut dyn FnMut(Clip)| {
            clips(14).into_iter().for_each(emit);
            Ok(())
        };
        let mut done = |i, c: Clip, e: &[f32]| out.push((i, c.class, e.to_vec()));
        embed_clips(&mut all, &mut make, &mut done).unwrap();
        out
    }

    #[test]
    fn the_pool_gives_the_embeddings_of_one_thread_in_the_same_order() {
        let mut emb = Embedder::load(&assets()).unwrap();
        let one = run(&mut emb, 1);
        assert_eq!(one.len(), 14);
        assert!(one
            .iter()
            .enumerate()
            .all(|(k, (i, c, _))| k == *i && *c == k % 3));
        for workers in [2, 3] {
            let many = run(&mut emb, workers);
            assert!(one == many, "{workers} workers differ from one");
        }
    }

    #[test]
    fn a_failure_to_make_clips_is_returned_after_the_workers_stop() {
        let emb = Embedder::load(&assets()).unwrap();
        let mut own = emb.fastest_copies(2).unwrap();
        let mut all: Vec<&mut Embedder> = own.iter_mut().collect();
        let mut make = |emit: &mut dyn FnMut(Clip)| {
            clips(3).into_iter().for_each(emit);
            Err(crate::Error::model("no more clips".to_string()))
        };
        let mut n = 0;
        let e = embed_clips(&mut all, &mut make, &mut |_, _, _| n += 1).unwrap_err();
        assert!(e.to_string().contains("no more clips"), "{e}");
        assert_eq!(n, 3, "the clips made before the failure are handed on");
    }
}
