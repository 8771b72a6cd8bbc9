//! Stage 3: the base model (`embedding_model.onnx`, the keyword network without its
//! classification layer) run by ONNX Runtime: one 96-dim embedding per 80 ms block from the
//! newest 76 log-mel frames.

use ort::session::Session;
use ort::session::SessionInputValue;
use ort::value::TensorRef;

use crate::assets::Assets;
use crate::pipeline::frontend::{BLOCK_FRAMES, N_MELS};
use crate::{Error, Result};

pub mod batch;
mod onnx;
mod pieces;
pub mod streaming;

pub use pieces::Pieces;

/// Log-mel frames seen by one embedding (760 ms).
pub const WINDOW_FRAMES: usize = 76;
/// Embedding dimension.
pub const DIM: usize = 96;
const WINDOW_LEN: usize = WINDOW_FRAMES * N_MELS;
/// Frames kept for a cold start: the window plus the 4 frames that put the first call on the
/// model's pooling grid (see `streaming`).
const CONTEXT_FRAMES: usize = WINDOW_FRAMES + 4;
const CONTEXT_LEN: usize = CONTEXT_FRAMES * N_MELS;
/// State inputs of the streaming base model.
const N_STATES: usize = 11;
/// Blocks per call when embedding a whole signal.
const EMBED_BATCH: usize = 64;

/// The base model in streaming form: one ONNX Runtime session and the shapes of its states.
/// It keeps nothing of a stream between calls (that is a [`StreamState`]), so one model serves
/// any number of streams, one call at a time.
pub struct BaseModel {
    session: Session,
    /// The mapped file whose bytes `session` uses in place (declared after it, so dropped
    /// after it), or `None` for a session holding its own copy.
    _mapped: Option<memmap2::Mmap>,
    state_shapes: Vec<[usize; 4]>,
    /// sha256 of the model file.
    pub model_sha256: String,
    /// Where the model came from and its batch dimension, to make more sessions of it.
    origin: (Assets, Option<i64>),
}

/// One stream's part of the base model: the convolutions' states and the newest log-mel
/// frames. A few kilobytes; run through a [`BaseModel`] it borrows at each block.
#[derive(Clone)]
pub struct StreamState {
    /// Each convolution's last 2 input rows, as the streaming model's state inputs.
    states: Vec<Vec<f32>>,
    /// The newest `CONTEXT_FRAMES` scaled log-mel frames, oldest first. Starts as all ones, as
    /// openWakeWord pads its buffer before 76 real frames exist.
    context: Vec<f32>,
    /// Whether `states` follow `context` (false after a reset or a skipped block).
    warm: bool,
    /// Embeddings from the last call of the model.
    out: Vec<f32>,
}

/// The base model with one stream's state: what a single stream (or offline embedding) uses.
pub struct Embedder {
    model: BaseModel,
    state: StreamState,
    /// The convolutions' states after the all-ones warm-up from a cold start (computed once,
    /// when first needed; see [`Pieces::warm`]).
    warmed_up: Option<Vec<Vec<f32>>>,
    /// sha256 of the model file.
    pub model_sha256: String,
}

impl BaseModel {
    /// Loads the base model, checking it is the expected file, and rewrites it into its
    /// streaming form.
    pub fn load(assets: &Assets) -> Result<Self> {
        let mut models = Self::load_copies(assets, 1)?;
        Ok(models.pop().expect("one copy loaded"))
    }

    /// Loads the base model once and makes `n` sessions of it (one per worker thread: a
    /// session runs one call at a time).
    pub fn load_copies(assets: &Assets, n: usize) -> Result<Vec<Self>> {
        Self::load_copies_at(assets, n, false, Some(1))
    }

    /// The same with all of ONNX Runtime's graph optimisations (see
    /// [`crate::assets::session_fastest_from_memory`]): embeddings differ from
    /// [`BaseModel::load`]'s in the 6th digit.
    pub fn load_copies_fastest(assets: &Assets, n: usize) -> Result<Vec<Self>> {
        Self::load_copies_at(assets, n, true, Some(1))
    }

    /// [`BaseModel::load_copies_fastest`] of the streaming form with a batch dimension (fixed
    /// at `Some(B)` or open), which [`batch::Batch`] runs for several streams a call.
    pub fn load_batched(assets: &Assets, n: usize, batch: Option<i64>) -> Result<Vec<Self>> {
        Self::load_copies_at(assets, n, true, batch)
    }

    fn load_copies_at(
        assets: &Assets,
        n: usize,
        fastest: bool,
        batch: Option<i64>,
    ) -> Result<Vec<Self>> {
        let session = match fastest {
            true => crate::assets::session_fastest_from_memory,
            false => crate::assets::session_from_memory,
        };
        let path = assets.embedding_model();
        let (model, model_sha256) = streaming_model(assets, batch)?;
        (0..n)
            .map(|_| {
                let (session, mapped) = match fastest {
                    true => (session(assets, &path, &model.bytes)?, None),
                    false => mapped_session(assets, &model.bytes)?,
                };
                Ok(BaseModel {
                    session,
                    _mapped: mapped,
                    state_shapes: model.states.clone(),
                    model_sha256: model_sha256.clone(),
                    origin: (assets.clone(), batch),
                })
            })
            .collect()
    }

    /// A stream's state at its start (the warm-up state).
    pub fn new_state(&self) -> StreamState {
        StreamState {
            states: self
                .state_shapes
                .iter()
                .map(|s| vec![0.0; s.iter().product()])
                .collect(),
            context: vec![1.0; CONTEXT_LEN],
            warm: false,
            out: Vec::new(),
        }
    }

    /// Slides one block of `BLOCK_FRAMES` frames into `state` and computes the embedding of
    /// its newest 76 frames into `out`. Runs the model on the new block alone while the states
    /// are warm, and on the whole context after a cold start.
    pub fn push_block(
        &mut self,
        state: &mut StreamState,
        block: &[f32],
        out: &mut [f32],
    ) -> Result<()> {
        let warm = state.warm;
        state.slide(block);
        if warm {
            self.infer(state, Frames::Slice(block))?;
        } else {
            state.cold();
            self.infer(state, Frames::Context)?;
        }
        state.warm = true;
        out.copy_from_slice(&state.out[state.out.len() - DIM..]);
        Ok(())
    }

    /// One call of the streaming model on a multiple of 8 frames; embeddings into
    /// `state.out`, states updated.
    fn infer(&mut self, state: &mut StreamState, frames: Frames) -> Result<()> {
        let frames = match frames {
            Frames::Context => &state.context[..],
            Frames::Slice(f) => f,
        };
        self.call(1, frames, &mut state.states, &mut state.out)
    }

    /// One call for `b` streams: `frames` is `[b, n, 32]`, the first `b` states of each of
    /// `states` go in (stream by stream) and the next ones replace them; the embeddings replace
    /// `emb`'s contents, stream by stream.
    fn call(
        &mut self,
        b: usize,
        frames: &[f32],
        states: &mut [Vec<f32>],
        emb: &mut Vec<f32>,
    ) -> Result<()> {
        let n = frames.len() / (b * N_MELS);
        debug_assert_eq!(n % BLOCK_FRAMES, 0);
        let shapes = &self.state_shapes;
        let mut refused = None;
        let inputs: [Option<SessionInputValue>; 1 + N_STATES] = std::array::from_fn(|i| {
            let view = match i {
                0 => TensorRef::from_array_view(([b, n, N_MELS], frames)),
                _ => {
                    let [_, c, t, w] = shapes[i - 1];
                    let s = &states[i - 1][..b * c * t * w];
                    TensorRef::from_array_view(([b, c, t, w], s))
                }
            };
            view.map_err(|e| refused = Some(e)).ok().map(Into::into)
        });
        if let Some(e) = refused {
            return Err(e.into());
        }
        let outputs = self
            .session
            .run(inputs.map(|v| v.expect("every input checked above")))
            .map_err(|e| Error::Model {
                message: "base model inference failed".into(),
                source: Some(e.into()),
            })?;
        let (_, e) = outputs[0].try_extract_tensor::<f32>()?;
        emb.clear();
        emb.extend_from_slice(e);
        for (i, (s, shape)) in states.iter_mut().zip(shapes).enumerate() {
            let (_, next) = outputs[1 + i].try_extract_tensor::<f32>()?;
            let len = b * shape.iter().product::<usize>();
            if next.len() != len {
                return Err(Error::model(format!(
                    "base model state {i}: {} values out, {len} in",
                    next.len()
                )));
            }
            s[..len].copy_from_slice(next);
        }
        Ok(())
    }
}

/// The base model checked and rewritten into its streaming form (`batch` as in
/// [`streaming::rewrite_with_batch`]), and the sha256 of the file.
fn streaming_model(
    assets: &Assets,
    batch: Option<i64>,
) -> Result<(streaming::StreamingModel, String)> {
    let path = assets.embedding_model();
    let original = assets.read_embedding_model()?;
    let model_sha256 = crate::util::sha256_hex(&original);
    let model = streaming::rewrite_with_batch(&original, batch).map_err(|e| Error::Model {
        message: format!("{}: cannot stream this model", path.display()),
        source: Some(e.into()),
    })?;
    if model.states.len() != N_STATES {
        return Err(Error::model(format!(
            "{}: the streaming model has {} states, expected {N_STATES}",
            path.display(),
            model.states.len()
        )));
    }
    Ok((model, model_sha256))
}

/// Where the copy in ONNX Runtime's format of the streaming model `bytes` lies (named by the
/// bytes' sha256).
fn ort_copy_path(assets: &Assets, bytes: &[u8]) -> Result<std::path::PathBuf> {
    crate::assets::ort_copy_path(assets, "base", &crate::util::sha256_hex(bytes))
}

/// Writes the streaming model `bytes` in ONNX Runtime's format to `to`.
fn save_ort_format(assets: &Assets, bytes: &[u8], to: &std::path::Path) -> Result<()> {
    crate::assets::save_ort_format_from_memory(assets, &assets.embedding_model(), bytes, to)
}

/// The base model's copy in ONNX Runtime's format that [`BaseModel::load`] maps: whether it
/// is there (`make` false), or made when missing (`make` true: whether it was made).
pub fn runtime_copy(assets: &Assets, make: bool) -> Result<bool> {
    let (model, _) = streaming_model(assets, Some(1))?;
    let copy = ort_copy_path(assets, &model.bytes)?;
    match make {
        false => Ok(copy.exists()),
        true => crate::assets::ort_copy(&copy, |to| save_ort_format(assets, &model.bytes, to)),
    }
}

/// A session of the streaming model `bytes` by way of its copy in ONNX Runtime's format (made
/// once, in the cache folder), mapped and used in place: the runtime neither parses nor
/// optimises a graph at start, and the weights it does not repack stay the file's pages.
fn mapped_session(assets: &Assets, bytes: &[u8]) -> Result<(Session, Option<memmap2::Mmap>)> {
    let m = crate::assets::mapped_session(
        assets,
        &ort_copy_path(assets, bytes)?,
        crate::assets::InPlace::Packed,
        |to| save_ort_format(assets, bytes, to),
    )?;
    Ok((m.session, Some(m.bytes)))
}

impl StreamState {
    /// Forgets the stream (back to the warm-up state).
    pub fn reset(&mut self) {
        self.context.fill(1.0);
        self.warm = false;
    }

    /// Slides one block of `BLOCK_FRAMES` frames into the context without running the model.
    pub fn slide(&mut self, block: &[f32]) {
        debug_assert_eq!(block.len(), BLOCK_FRAMES * N_MELS);
        self.context.copy_within(block.len().., 0);
        self.context[CONTEXT_LEN - block.len()..].copy_from_slice(block);
        self.warm = false;
    }

    /// Zeroes the states before a call that sees a whole window.
    fn cold(&mut self) {
        for s in &mut self.states {
            s.fill(0.0);
        }
    }
}

impl Embedder {
    /// Loads the base model, checking it is the expected file, and rewrites it into its
    /// streaming form.
    pub fn load(assets: &Assets) -> Result<Self> {
        Ok(Self::from_model(BaseModel::load(assets)?))
    }

    /// The model with a new stream's state.
    pub fn from_model(model: BaseModel) -> Self {
        Embedder {
            state: model.new_state(),
            warmed_up: None,
            model_sha256: model.model_sha256.clone(),
            model,
        }
    }

    /// `n` embedders with sessions of the same model with all of ONNX Runtime's graph
    /// optimisations (10% less work than level 2, embeddings differing in the 6th digit), alike
    /// to each other bit for bit.
    pub fn fastest_copies(&self, n: usize) -> Result<Vec<Self>> {
        let (assets, batch) = &self.model.origin;
        let models = BaseModel::load_copies_at(assets, n, true, *batch)?;
        Ok(models.into_iter().map(Self::from_model).collect())
    }

    /// Sets the convolutions' states to those after `warmup_len` all-ones frames from a cold
    /// start, computing them on first use.
    fn start_warmed_up(&mut self, warmup_len: usize) -> Result<()> {
        if self.warmed_up.is_none() {
            self.state.cold();
            let ones = vec![1.0; warmup_len];
            self.model.infer(&mut self.state, Frames::Slice(&ones))?;
            self.warmed_up = Some(self.state.states.clone());
        }
        let warmed = self.warmed_up.as_ref().expect("computed above");
        for (s, w) in self.state.states.iter_mut().zip(warmed) {
            s.copy_from_slice(w);
        }
        Ok(())
    }

    /// The model alone, to run other streams' states through it.
    pub fn model_mut(&mut self) -> &mut BaseModel {
        &mut self.model
    }

    /// Forgets the stream (back to the warm-up state).
    pub fn reset(&mut self) {
        self.state.reset();
    }

    /// Slides one block of `BLOCK_FRAMES` frames into the context without running the model.
    pub fn slide(&mut self, block: &[f32]) {
        self.state.slide(block);
    }

    /// Slides one block of `BLOCK_FRAMES` frames in and computes the embedding of the newest 76
    /// frames into `out` (see [`BaseModel::push_block`]).
    pub fn push_block(&mut self, block: &[f32], out: &mut [f32]) -> Result<()> {
        self.model.push_block(&mut self.state, block, out)
    }

    /// Embeds arbitrary 76-frame windows (`windows.len() / WINDOW_LEN` of them), each from a
    /// cold start.
    pub fn embed_windows(&mut self, windows: &[f32]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(windows.len() / WINDOW_LEN * DIM);
        let mut frames = vec![0.0; CONTEXT_LEN];
        let state = &mut self.state;
        for w in windows.chunks_exact(WINDOW_LEN) {
            frames[CONTEXT_LEN - WINDOW_LEN..].copy_from_slice(w);
            state.cold();
            self.model.infer(state, Frames::Slice(&frames))?;
            out.extend_from_slice(&state.out[state.out.len() - DIM..]);
        }
        state.warm = false;
        Ok(out)
    }
}

/// What one call of the model runs on: the stream's kept context (after a gap), or given
/// frames.
enum Frames<'a> {
    Context,
    Slice(&'a [f32]),
}

/// Log-mel frames for a whole 16 kHz signal, as the streaming front end computes them (blocks
/// only; a trailing partial block is dropped).
pub fn logmel(samples: &[f32]) -> Vec<f32> {
    let mut fe = crate::pipeline::frontend::Frontend::new();
    let mut frames =
        Vec::with_capacity(samples.len() / crate::pipeline::frontend::HOP * N_MELS + N_MELS);
    fe.push(samples, |b| {
        frames.extend_from_slice(b);
        Ok(())
    })
    .expect("collecting blocks cannot fail");
    frames
}

/// The embedding sequence of a whole 16 kHz signal, equal to what the streaming pipeline yields
/// block by block (starting from the all-ones warm-up window), computed in large calls.
pub fn embed_signal(emb: &mut Embedder, samples: &[f32]) -> Result<Vec<f32>> {
    embed_signal_warped(emb, samples, 1.0, &[])
}

/// [`embed_signal`] of the signal as a speaker with a vocal tract `alpha` times shorter would
/// say it (the log-mel frames warped, see [`crate::pipeline::frontend::warp_frames`]), heard
/// through a microphone that colours band `m` by `colour[m]` (log-mel units, 10 dB; empty for
/// none).
pub fn embed_signal_warped(
    emb: &mut Embedder,
    samples: &[f32],
    alpha: f64,
    colour: &[f32],
) -> Result<Vec<f32>> {
    let mut pieces = Pieces::new(emb, alpha, samples.len()).coloured(colour);
    pieces.push(samples)?;
    pieces.finish()
}

/// [`embed_signal_warped`] started from the model's states after the warm-up (computed once per
/// embedder) rather than running the warm-up again: a third less work for a 1.5 s clip. The
/// embeddings differ from [`embed_signal_warped`]'s in float rounding only (a few 1e-6).
pub fn embed_signal_warm(
    emb: &mut Embedder,
    samples: &[f32],
    alpha: f64,
    colour: &[f32],
) -> Result<Vec<f32>> {
    let mut pieces = Pieces::warm(emb, alpha, samples.len())?.coloured(colour);
    pieces.push(samples)?;
    pieces.finish()
}

/// Stream time (seconds) at the end of block `b` (0-based): when its embedding is available.
pub fn block_end_time(b: usize) -> f64 {
    use crate::pipeline::frontend::{HOP, N_FFT, SAMPLE_RATE};
    let last_frame = (b + 1) * BLOCK_FRAMES - 1;
    (last_frame * HOP + N_FFT) as f64 / SAMPLE_RATE as f64
}
