//! Several streams' next blocks through the base model in one call.
//!
//! A [`Batch`] gathers the 80 ms blocks and base-model states of up to `capacity` warm streams
//! into buffers it keeps, runs them in one call of a model loaded with a batch dimension
//! ([`BaseModel::load_batched`]), and hands each stream its embedding and next states back.
//! A stream that is not warm (its first block, or the first after the quiet-room gate closed)
//! needs a call over its whole context instead: it runs alone ([`BaseModel::push_block`]).
//! Nothing is allocated per block here (ONNX Runtime still allocates inside its call).

use super::{BaseModel, StreamState, DIM, N_STATES};
use crate::pipeline::frontend::{BLOCK_FRAMES, N_MELS};
use crate::Result;

/// Values in one block of log-mel frames.
const BLOCK_LEN: usize = BLOCK_FRAMES * N_MELS;

/// Buffers for one call over up to `capacity` streams.
pub struct Batch {
    capacity: usize,
    /// Streams added since the last [`Batch::clear`].
    len: usize,
    /// `[capacity, 8, 32]`: each stream's new block.
    mel: Vec<f32>,
    /// Each state, `[capacity, cin, 2, w]`: in before the call, the next states after it.
    states: Vec<Vec<f32>>,
    /// Values in one stream's part of each state.
    sizes: Vec<usize>,
    /// `[capacity, 96]` embeddings of the last call.
    out: Vec<f32>,
}

impl Batch {
    /// Empty buffers for up to `capacity` streams of `model`.
    pub fn new(model: &BaseModel, capacity: usize) -> Batch {
        let sizes: Vec<usize> = model
            .state_shapes
            .iter()
            .map(|s| s.iter().product())
            .collect();
        debug_assert_eq!(sizes.len(), N_STATES);
        Batch {
            capacity,
            len: 0,
            mel: vec![0.0; capacity * BLOCK_LEN],
            states: sizes.iter().map(|n| vec![0.0; capacity * n]).collect(),
            sizes,
            out: Vec::with_capacity(capacity * DIM),
        }
    }

    /// Most streams one call takes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Streams added since the last clear.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no stream was added since the last clear.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets the streams added (keeps the buffers).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Adds `block`, a warm stream's next block, and slides it into the stream's context;
    /// the stream's place in the batch. `None` (nothing done) if the stream is not warm (run
    /// it alone) or the batch is full. Until [`Batch::take`] gives the stream its next states
    /// it is not warm (if the call fails, its next block starts it cold).
    pub fn add(&mut self, state: &mut StreamState, block: &[f32]) -> Option<usize> {
        if !state.warm || self.len == self.capacity || block.len() != BLOCK_LEN {
            return None;
        }
        let i = self.len;
        self.mel[i * BLOCK_LEN..(i + 1) * BLOCK_LEN].copy_from_slice(block);
        for ((all, one), n) in self.states.iter_mut().zip(&state.states).zip(&self.sizes) {
            all[i * n..(i + 1) * n].copy_from_slice(one);
        }
        state.slide(block);
        self.len += 1;
        Some(i)
    }

    /// Runs the streams added through `model` (loaded with a batch dimension that fits) in
    /// one call.
    pub fn run(&mut self, model: &mut BaseModel) -> Result<()> {
        let b = self.len;
        if b == 0 {
            return Ok(());
        }
        model.call(
            b,
            &self.mel[..b * BLOCK_LEN],
            &mut self.states,
            &mut self.out,
        )
    }

    /// Stream `i`'s results of the last [`Batch::run`]: its next states into `state` (warm
    /// again) and its embedding into `embedding`.
    pub fn take(&self, i: usize, state: &mut StreamState, embedding: &mut [f32]) {
        debug_assert!(i < self.len);
        for ((all, one), n) in self.states.iter().zip(&mut state.states).zip(&self.sizes) {
            one.copy_from_slice(&all[i * n..(i + 1) * n]);
        }
        state.warm = true;
        embedding.copy_from_slice(&self.out[i * DIM..(i + 1) * DIM]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assets::Assets;
    use std::path::PathBuf;

    pub(super) fn assets() -> Assets {
        let models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
        Assets::locate(Some(&models)).expect("models/ (run .ci/setup)")
    }

    /// The log-mel blocks of `streams` different streams of speech (the demo's, each from a
    /// different point and level), `blocks` blocks each.
    pub(super) fn speech_blocks(streams: usize, blocks: usize) -> Vec<Vec<f32>> {
        let (speech, _) = crate::audio::synth::stream(crate::audio::synth::VOICE, 1).unwrap();
        let mel = super::super::logmel(&speech);
        let total = mel.len() / BLOCK_LEN;
        assert!(total > blocks, "{total} blocks of speech");
        (0..streams)
            .map(|s| {
                let start = (s * 7) % (total - blocks);
                let gain = 0.05 * s as f32;
                mel[start * BLOCK_LEN..(start + blocks) * BLOCK_LEN]
                    .iter()
                    .map(|v| v + gain)
                    .collect()
            })
            .collect()
    }

    /// The largest difference between two runs of embeddings.
    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn a_batch_of_streams_gives_the_embeddings_of_each_stream_alone() {
        let assets = assets();
        let mut single = BaseModel::load_copies_fastest(&assets, 1)
            .unwrap()
            .remove(0);
        let mut batched = BaseModel::load_batched(&assets, 1, None).unwrap().remove(0);
        let (n, blocks) = (6, 40);
        let mel = speech_blocks(n, blocks);
        // Each stream alone, block by block, as `hark listen` runs it.
        let mut expected = vec![Vec::new(); n];
        for (s, m) in mel.iter().enumerate() {
            let mut state = single.new_state();
            let mut e = [0.0; DIM];
            for (j, block) in m.chunks_exact(BLOCK_LEN).enumerate() {
                if (s, j) == (3, blocks / 2) {
                    state.reset();
                }
                single.push_block(&mut state, block, &mut e).unwrap();
                expected[s].extend_from_slice(&e);
            }
        }
        // All together, stream `s` starting `s` blocks late (its first block is cold, so it
        // runs alone) and stream 3 reset halfway (cold again), in batches of at most 4.
        let mut states: Vec<StreamState> = (0..n).map(|_| batched.new_state()).collect();
        let mut got = vec![Vec::new(); n];
        let mut batch = Batch::new(&batched, 4);
        let mut places = Vec::with_capacity(n);
        let mut sizes = Vec::new();
        for step in 0..blocks + n {
            if step == 3 + blocks / 2 {
                states[3].reset();
            }
            let ready: Vec<usize> = (0..n)
                .filter(|&s| (s..s + blocks).contains(&step))
                .collect();
            for chunk in ready.chunks(batch.capacity()) {
                batch.clear();
                places.clear();
                for &s in chunk {
                    let block = &mel[s][(step - s) * BLOCK_LEN..(step - s + 1) * BLOCK_LEN];
                    match batch.add(&mut states[s], block) {
                        Some(i) => places.push((s, i)),
                        None => {
                            let mut e = [0.0; DIM];
                            batched.push_block(&mut states[s], block, &mut e).unwrap();
                            got[s].extend_from_slice(&e);
                        }
                    }
                }
                batch.run(&mut batched).unwrap();
                sizes.push(batch.len());
                for &(s, i) in &places {
                    let mut e = [0.0; DIM];
                    batch.take(i, &mut states[s], &mut e);
                    got[s].extend_from_slice(&e);
                }
            }
        }
        assert!(sizes.contains(&4) && sizes.contains(&2), "{sizes:?}");
        for s in 0..n {
            let d = max_diff(&got[s], &expected[s]);
            assert!(d <= 1e-5, "stream {s}: batched and alone differ by {d}");
        }
    }
}

/// What a block costs at each batch size (`cargo test --release --lib batch_cost --
/// --ignored --nocapture`): thread CPU time per block, the configurations interleaved, best
/// of 3 rounds (docs/design.md, "Several streams in one call").
#[cfg(test)]
mod cost {
    use super::*;

    fn thread_cpu() -> f64 {
        let mut t: libc::timespec = unsafe { std::mem::zeroed() };
        assert_eq!(
            unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) },
            0
        );
        t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
    }

    /// CPU seconds per block for `total` blocks of `mel`'s streams in calls of `b` streams,
    /// from `warm` states.
    fn per_block(
        model: &mut BaseModel,
        b: usize,
        mel: &[Vec<f32>],
        warm: &[StreamState],
        total: usize,
    ) -> f64 {
        let mut states = warm.to_vec();
        let mut e = [0.0; DIM];
        let mut batch = Batch::new(model, b);
        let blocks = mel[0].len() / BLOCK_LEN;
        let t = thread_cpu();
        for call in 0..total / b {
            let j = 1 + call % (blocks - 1);
            batch.clear();
            for (s, st) in states.iter_mut().enumerate().take(b) {
                batch
                    .add(st, &mel[s][j * BLOCK_LEN..(j + 1) * BLOCK_LEN])
                    .unwrap();
            }
            batch.run(model).unwrap();
            for (i, st) in states.iter_mut().enumerate().take(b) {
                batch.take(i, st, &mut e);
            }
        }
        (thread_cpu() - t) / total as f64
    }

    #[test]
    #[ignore = "a measurement: run it on its own"]
    fn batch_cost() {
        let assets = tests::assets();
        let mel = tests::speech_blocks(16, 60);
        let mut fixed1 = BaseModel::load_copies_fastest(&assets, 1)
            .unwrap()
            .remove(0);
        let mut open = BaseModel::load_batched(&assets, 1, None).unwrap().remove(0);
        let mut fixed: Vec<(usize, BaseModel)> = [4, 8, 16]
            .map(|b| {
                (
                    b,
                    BaseModel::load_batched(&assets, 1, Some(b as i64))
                        .unwrap()
                        .remove(0),
                )
            })
            .into();
        let total = 800;
        let mut e = [0.0; DIM];
        let warm: Vec<StreamState> = mel
            .iter()
            .map(|m| {
                let mut st = fixed1.new_state();
                fixed1.push_block(&mut st, &m[..BLOCK_LEN], &mut e).unwrap();
                st
            })
            .collect();
        let mut rows: Vec<(String, Vec<f64>)> = Vec::new();
        let mut record = |name: String, v: f64| match rows.iter_mut().find(|r| r.0 == name) {
            Some(r) => r.1.push(v),
            None => rows.push((name, vec![v])),
        };
        for _round in 0..3 {
            record(
                "fixed batch 1".into(),
                per_block(&mut fixed1, 1, &mel, &warm, total),
            );
            for b in [1, 2, 4, 8, 16] {
                record(
                    format!("open batch, {b}"),
                    per_block(&mut open, b, &mel, &warm, total),
                );
            }
            for (b, m) in &mut fixed {
                record(
                    format!("fixed batch {b}"),
                    per_block(m, *b, &mel, &warm, total),
                );
            }
        }
        let best = |name: &str| {
            let row = rows.iter().find(|r| r.0 == name).expect("measured");
            row.1.iter().copied().fold(f64::INFINITY, f64::min)
        };
        let base = best("fixed batch 1");
        for (name, v) in &rows {
            let all: Vec<String> = v.iter().map(|x| format!("{:.0}", x * 1e6)).collect();
            eprintln!(
                "batch_cost: {name:>16}: {:>4.0} us a block (best of {}), {:.2} of batch 1",
                best(name) * 1e6,
                all.join(" "),
                best(name) / base
            );
        }
        // What the engine relies on: an open batch costs no more alone, and less full.
        assert!(best("open batch, 1") < 1.2 * base);
        assert!(best("open batch, 8") < 0.9 * base);
    }
}
