//! Where the ONNX Runtime library and the base model live, and loading the runtime once.
//!
//! After `.ci/setup` they are in `models/runtime/` and `models/base/` of the repository. Unless a
//! path is given (`--models`, `models_dir`), hark looks for them in [`Assets::search_path`]'s
//! order: `$HARK_MODELS`, `./models`, a `models/` beside the executable or in its ancestors (so
//! `target/release/hark` finds the repository's), the user's copy made by `hark setup`
//! (`~/.local/share/hark/models`), the source tree it was built from (so `cargo install --path .`
//! finds the clone's), and the system's (`/usr/local/share/hark/models`,
//! `/usr/share/hark/models`, where the Debian package puts them).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::{Error, Result};

/// sha256 of the base model `embedding_model.onnx` from openwakeword 0.5.1.
pub const EMBEDDING_SHA256: &str =
    "70d164290c1d095d1d4ee149bc5e00543250a7316b59f31d056cff7bd3075c1f";
/// sha256 of the reference front end `melspectrogram.onnx` from openwakeword 0.5.1.
pub const MELSPEC_SHA256: &str = "ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f";

/// sha256 of the word check's model: EfficientWord-Net 1.0.5's 8-bit word embedding
/// (`slim_93%_accuracy_72.7390%_qint8.onnx`).
pub const WORD_CHECK_SHA256: &str =
    "08189e02003f00d1438c9fa05277ac1a91affeb7c58981d11bc5ac89ddbd0424";

/// sha256 of the word check's model cut into its five stages (`.ci/setup`, onnx 1.23.2).
pub const WORD_CHECK_STAGE_SHA256: [&str; 5] = [
    "fed4ff74f9119904ccfe587f72ffc5a110561a81c9905f775201c6ce8fad0714",
    "26c491f540ccee6e3d23f448c1f7a3865dbbd331ee52663f979fbd5fb580d6e6",
    "919dd0f3eb684ab60d45430bf11b8e43f08717c5c394bb2477b2b6e8d1397a93",
    "421eda0669426f640a6e2899225f7605cb536e29136173ea642c385b4bf05f8e",
    "1f9b9ea5cbdc47ba29e6a7b40ab7f78b7fea0f9a66fd0d515b9cba9029aee21b",
];

const SETUP_HINT: &str =
    "run `bash .ci/setup` from the repository root to fetch it, or point to it with --models DIR \
                          (or `models_dir` in config/hark.toml)";

/// Locations of the files hark needs from outside the repository.
#[derive(Clone, Debug)]
pub struct Assets {
    /// The `models/` folder.
    pub dir: PathBuf,
}

impl Assets {
    /// Finds the models folder: `explicit` if given, else the first of [`Self::search_path`]
    /// that holds `base/` or `runtime/`.
    pub fn locate(explicit: Option<&Path>) -> Result<Assets> {
        if let Some(p) = explicit {
            if !p.is_dir() {
                return Err(Error::model(format!(
                    "{}: models directory does not exist",
                    p.display()
                )));
            }
            return Ok(Assets {
                dir: p.to_path_buf(),
            });
        }
        let candidates = Self::search_path();
        for c in &candidates {
            if c.join("base").is_dir() || c.join("runtime").is_dir() {
                return Ok(Assets { dir: c.clone() });
            }
        }
        let looked: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
        Err(Error::model(format!(
            "cannot find the models directory (looked in {}); {SETUP_HINT}",
            looked.join(", ")
        )))
    }

    /// Where hark looks for its models, in order (see the module's documentation).
    pub fn search_path() -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::env::var_os("HARK_MODELS")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .into_iter()
            .collect();
        dirs.push(PathBuf::from("models"));
        if let Ok(exe) = std::env::current_exe() {
            dirs.extend(exe.ancestors().skip(1).map(|a| a.join("models")));
        }
        dirs.extend(user_models_dir());
        dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("models"));
        dirs.push(PathBuf::from("/usr/local/share/hark/models"));
        dirs.push(PathBuf::from("/usr/share/hark/models"));
        dirs
    }

    /// Where hark keeps what it builds once and reuses (the negative bank, cached synthetic
    /// clips): the models folder when hark may write there, else the user's cache folder
    /// (`$XDG_CACHE_HOME/hark`, `~/.cache/hark`), as for the system's read-only copy.
    pub fn cache_dir(&self) -> PathBuf {
        if writable(&self.dir) {
            return self.dir.clone();
        }
        match xdg_dir("XDG_CACHE_HOME", ".cache") {
            Some(b) => b.join("hark"),
            None => std::env::temp_dir().join("hark-cache"),
        }
    }

    pub fn embedding_model(&self) -> PathBuf {
        self.dir.join("base").join("embedding_model.onnx")
    }

    /// The word check's model (see [`crate::pipeline::word_check`]).
    pub fn word_check_model(&self) -> PathBuf {
        self.dir.join("base").join("word_check.onnx")
    }

    /// Stage `k` (1-5) of the word check's model, as `.ci/setup` cuts it.
    pub fn word_check_stage(&self, k: usize) -> PathBuf {
        self.dir
            .join("base")
            .join(format!("word_check.stage-{k}.onnx"))
    }

    pub fn melspec_model(&self) -> PathBuf {
        self.dir.join("base").join("melspectrogram.onnx")
    }

    /// The ONNX Runtime shared library: the newest `libonnxruntime.so*` in `models/runtime/`.
    pub fn runtime_library(&self) -> Result<PathBuf> {
        let dir = self.dir.join("runtime");
        let mut libs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                            n.starts_with("libonnxruntime.so")
                                || n.starts_with("libonnxruntime.") && n.ends_with(".dylib")
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        libs.sort();
        match libs.pop() {
            Some(p) => Ok(p),
            None => Err(Error::model(format!(
                "ONNX Runtime library not found: no libonnxruntime.so in {}; {SETUP_HINT}",
                dir.display()
            ))),
        }
    }

    /// Reads the base model, checking it is the expected file.
    pub fn read_embedding_model(&self) -> Result<Vec<u8>> {
        let p = self.embedding_model();
        self.read_checked(&p, EMBEDDING_SHA256, "base model")
    }

    /// Reads model file `p` (`what`, for the error), checking its sha256 is `sha`.
    pub fn read_checked(&self, p: &Path, sha: &str, what: &str) -> Result<Vec<u8>> {
        if !p.is_file() {
            return Err(Error::model(format!(
                "{}: {what} not found; {SETUP_HINT}",
                p.display()
            )));
        }
        let bytes = std::fs::read(p).map_err(Error::io(p, "cannot read"))?;
        expect_sha(p, &crate::util::sha256_hex(&bytes), sha, what)?;
        Ok(bytes)
    }

    /// Checks that file `p` (`what`, for the error) has sha256 `sha`, reading it in pieces:
    /// for a large model that ONNX Runtime then reads itself ([`session`]), which
    /// [`Self::read_checked`] and [`session_from_memory`] would hold twice while it loads.
    pub fn check_file(&self, p: &Path, sha: &str, what: &str) -> Result<()> {
        if !p.is_file() {
            return Err(Error::model(format!(
                "{}: {what} not found; {SETUP_HINT}",
                p.display()
            )));
        }
        let got = crate::util::sha256_file_hex(p).map_err(Error::io(p, "cannot read"))?;
        expect_sha(p, &got, sha, what)
    }
}

/// A folder of the XDG base directories: `$var` when set, else `$HOME/in_home`.
fn xdg_dir(var: &str, in_home: &str) -> Option<PathBuf> {
    let set = |v: &str| {
        std::env::var_os(v)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    set(var).or_else(|| set("HOME").map(|h| h.join(in_home)))
}

/// The models folder `hark setup` fills: `$XDG_DATA_HOME/hark/models`, else
/// `~/.local/share/hark/models`.
pub fn user_models_dir() -> Option<PathBuf> {
    xdg_dir("XDG_DATA_HOME", ".local/share").map(|d| d.join("hark").join("models"))
}

/// Whether this process may create files in `dir` (tried, not guessed from the mode bits: a
/// read-only mount or a service's `ProtectSystem=` says no whatever the bits say).
fn writable(dir: &Path) -> bool {
    let probe = dir.join(format!(".hark-write-test-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => std::fs::remove_file(&probe).is_ok(),
        Err(_) => false,
    }
}

/// The error for file `p` (`what`) whose sha256 is `got` where `expected` was.
fn expect_sha(p: &Path, got: &str, expected: &str, what: &str) -> Result<()> {
    if got == expected {
        return Ok(());
    }
    Err(Error::model(format!(
        "{}: {what} has sha256 {got}, expected {expected}",
        p.display()
    )))
}

static RUNTIME: OnceLock<std::result::Result<ort::environment::Environment, String>> =
    OnceLock::new();

/// Loads the ONNX Runtime library once per process and returns its environment.
pub fn runtime(assets: &Assets) -> Result<&'static ort::environment::Environment> {
    let r = RUNTIME.get_or_init(|| {
        let lib = assets.runtime_library().map_err(|e| e.to_string())?;
        let builder = ort::init_from(&lib).map_err(|e| {
            format!(
                "{}: cannot load the ONNX Runtime library: {e}",
                lib.display()
            )
        })?;
        let env = builder
            .with_name("hark")
            .with_telemetry(false)
            .build()
            .map_err(|e| format!("{}: ONNX Runtime failed to start: {e}", lib.display()));
        crate::pages::release_file_pages();
        env
    });
    r.as_ref().map_err(|e| Error::model(e.clone()))
}

use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};

/// Graph optimisations up to level 2: level 3 adds the NCHWc layout rewrite, which keeps
/// reordered copies of the weights: 2 MB more at peak for 10% less CPU (docs/research/cost.md).
const OPTIMIZATION: GraphOptimizationLevel = GraphOptimizationLevel::Level2;

/// What of the inference settings can change an embedding's last digits (for cache keys).
pub const INFERENCE_SETTINGS: &str = "ort graph level 2, 1 thread";

/// Builds a single-threaded ONNX Runtime session for a model file.
pub fn session(assets: &Assets, model: &Path) -> Result<ort::session::Session> {
    build_session(assets, model, OPTIMIZATION, |b| b.commit_from_file(model))
}

/// The same with ONNX Runtime's default (all) graph optimisations: the fastest plain
/// inference, which the benchmark's floor uses.
pub fn session_fastest(assets: &Assets, model: &Path) -> Result<ort::session::Session> {
    build_session(assets, model, GraphOptimizationLevel::All, |b| {
        b.commit_from_file(model)
    })
}

/// Builds a single-threaded ONNX Runtime session for a model in memory (`origin` names the
/// file it came from, for errors).
pub fn session_from_memory(
    assets: &Assets,
    origin: &Path,
    bytes: &[u8],
) -> Result<ort::session::Session> {
    build_session(assets, origin, OPTIMIZATION, |b| {
        b.commit_from_memory(bytes)
    })
}

/// The same with ONNX Runtime's default (all) graph optimisations: 10% less CPU than
/// [`session_from_memory`] for about 2 MB more per session (docs/research/cost.md); `hark serve` runs
/// its few shared sessions so.
pub fn session_fastest_from_memory(
    assets: &Assets,
    origin: &Path,
    bytes: &[u8],
) -> Result<ort::session::Session> {
    build_session(assets, origin, GraphOptimizationLevel::All, |b| {
        b.commit_from_memory(bytes)
    })
}

/// Writes model `onnx` in ONNX Runtime's own format (a flatbuffer whose weights a session can
/// use where they lie) to `ort`, optimised as [`session`] would (write-then-rename).
pub fn save_ort_format(assets: &Assets, onnx: &Path, ort: &Path) -> Result<()> {
    save_ort_format_with(assets, onnx, ort, |b| b.commit_from_file(onnx))
}

/// [`save_ort_format`] of a model in memory (`origin` names the file it came from).
pub fn save_ort_format_from_memory(
    assets: &Assets,
    origin: &Path,
    bytes: &[u8],
    ort: &Path,
) -> Result<()> {
    save_ort_format_with(assets, origin, ort, |b| b.commit_from_memory(bytes))
}

fn save_ort_format_with(
    assets: &Assets,
    onnx: &Path,
    ort: &Path,
    commit: impl FnOnce(&mut SessionBuilder) -> ort::Result<ort::session::Session>,
) -> Result<()> {
    // One name per process and call: threads of one process (tests, workers) may make the
    // same copy at once, and each renames a whole file of its own into place.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = ort.with_extension(format!("ort.{}-{call}.tmp", std::process::id()));
    // The error is ort's own (`BuilderResult`), large because it holds the builder.
    #[allow(clippy::result_large_err)]
    let configure = |b: SessionBuilder| {
        b.with_config_entry("session.save_model_format", "ORT")?
            .with_optimized_model_path(&tmp)
    };
    let saved = build_session_with(assets, onnx, OPTIMIZATION, configure, commit);
    if let Err(e) = saved {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, ort).map_err(Error::io(ort, "cannot write"))
}

/// How a session of a model in ONNX Runtime's format whose bytes stay where they are (a mapped
/// file) runs: `bytes` must outlive the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InPlace {
    /// The weights used in place, not copied and not repacked, so that they are the file's
    /// clean pages, which [`crate::pages::release_mapped`] can drop between runs; without the
    /// CPU arena, a run's buffers go back to the allocator when it ends. For a model run now
    /// and then (the word check).
    Lean,
    /// The runtime's usual CPU arena and prepacked weights (a copy of the convolutions' weights
    /// on the heap), the other weights in place: for a model run every 80 ms, where allocating
    /// each run's buffers anew costs more CPU than they take (the base model).
    Packed,
    /// Prepacked weights, the others in place, and no CPU arena: for a model run several times
    /// a second but not every block (the word check of `hark serve`'s many streams).
    PackedWithoutArena,
}

/// A session of the model in ONNX Runtime's format `bytes` (from file `origin`), run `how`.
pub fn session_in_place(
    assets: &Assets,
    origin: &Path,
    bytes: &[u8],
    how: InPlace,
) -> Result<ort::session::Session> {
    #[allow(clippy::result_large_err)]
    let configure = |b: SessionBuilder| {
        let b = b
            .with_config_entry("session.use_ort_model_bytes_directly", "1")?
            .with_config_entry("session.use_ort_model_bytes_for_initializers", "1")?;
        match how {
            InPlace::Packed => Ok(b),
            InPlace::PackedWithoutArena => b.with_execution_providers([cpu_without_arena()]),
            InPlace::Lean => b
                .with_config_entry("session.disable_prepacking", "1")?
                .with_execution_providers([cpu_without_arena()]),
        }
    };
    build_session_with(assets, origin, OPTIMIZATION, configure, |b| {
        b.commit_from_memory(bytes)
    })
}

/// ONNX Runtime's CPU provider without its arena.
fn cpu_without_arena() -> ort::ep::ExecutionProviderDispatch {
    ort::ep::CPU::default().with_arena_allocator(false).build()
}

/// Where hark keeps the copy in ONNX Runtime's format of model `name` whose bytes have sha256
/// `sha`: in the cache folder's `.cache/`, named by the sha and by the runtime's library, whose
/// own format it is.
pub fn ort_copy_path(assets: &Assets, name: &str, sha: &str) -> Result<PathBuf> {
    let runtime = assets.runtime_library()?;
    let runtime = runtime.file_name().unwrap_or_default().to_string_lossy();
    let file = format!("{name}-{}-{runtime}.ort", &sha[..16]);
    Ok(assets.cache_dir().join(".cache").join(file))
}

/// Makes the copy at `path` with `make` (which writes it there) when it is missing, its folder
/// too; whether it made it.
pub fn ort_copy(path: &Path, make: impl Fn(&Path) -> Result<()>) -> Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io(dir, "cannot create"))?;
    }
    make(path)?;
    Ok(true)
}

/// A session whose model is a mapped file in ONNX Runtime's format, used in place.
pub struct MappedSession {
    /// Declared before `bytes`, so dropped before the mapping it reads.
    pub session: ort::session::Session,
    pub bytes: memmap2::Mmap,
}

/// The session, run `how`, of the copy in ONNX Runtime's format at `path`, made by `make` when
/// missing, mapped. A copy the runtime refuses (damaged, or written by a build it no longer
/// reads) is made again, once.
pub fn mapped_session(
    assets: &Assets,
    path: &Path,
    how: InPlace,
    make: impl Fn(&Path) -> Result<()>,
) -> Result<MappedSession> {
    ort_copy(path, &make)?;
    match map_session(assets, path, how) {
        Ok(m) => Ok(m),
        Err(_) => {
            std::fs::remove_file(path).map_err(Error::io(path, "cannot remove"))?;
            ort_copy(path, &make)?;
            map_session(assets, path, how)
        }
    }
}

fn map_session(assets: &Assets, path: &Path, how: InPlace) -> Result<MappedSession> {
    let file = std::fs::File::open(path).map_err(Error::io(path, "cannot open"))?;
    // SAFETY: a private read-only mapping; hark replaces the file only by a rename, which
    // leaves the mapped one as it was.
    let bytes = unsafe { memmap2::Mmap::map(&file) }.map_err(Error::io(path, "cannot map"))?;
    let session = session_in_place(assets, path, &bytes, how)?;
    crate::pages::release_mapped(&bytes);
    Ok(MappedSession { session, bytes })
}

fn build_session(
    assets: &Assets,
    model: &Path,
    optimization: GraphOptimizationLevel,
    commit: impl FnOnce(&mut SessionBuilder) -> ort::Result<ort::session::Session>,
) -> Result<ort::session::Session> {
    build_session_with(assets, model, optimization, Ok, commit)
}

/// [`build_session`] with more options set by `configure`.
fn build_session_with(
    assets: &Assets,
    model: &Path,
    optimization: GraphOptimizationLevel,
    configure: impl FnOnce(SessionBuilder) -> ort::session::builder::BuilderResult,
    commit: impl FnOnce(&mut SessionBuilder) -> ort::Result<ort::session::Session>,
) -> Result<ort::session::Session> {
    let env = runtime(assets)?;
    let cannot_load = |source: crate::error::Cause| Error::Model {
        message: format!("{}: ONNX Runtime cannot load this model", model.display()),
        source: Some(source),
    };
    let builder = ort::session::Session::builder(env).map_err(|e| cannot_load(e.into()))?;
    // A builder's error holds the builder, which cannot cross threads: keep its message.
    let option_refused = |e: ort::Error<SessionBuilder>| cannot_load(e.to_string().into());
    let builder = builder.with_intra_threads(1).map_err(option_refused)?;
    let builder = builder.with_inter_threads(1).map_err(option_refused)?;
    // No memory-pattern planning: one small model, one window at a time; saves resident memory.
    let builder = builder.with_memory_pattern(false).map_err(option_refused)?;
    let mut builder = builder
        .with_optimization_level(optimization)
        .map_err(option_refused)?;
    builder = configure(builder).map_err(option_refused)?;
    let s = commit(&mut builder).map_err(|e| cannot_load(e.into()))?;
    crate::pages::release_file_pages();
    Ok(s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_model_file_is_checked_in_pieces_against_its_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let assets = super::Assets {
            dir: dir.path().to_path_buf(),
        };
        let p = dir.path().join("m.onnx");
        // More than one piece of `io::copy` (8 KB).
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &bytes).unwrap();
        let sha = crate::util::sha256_hex(&bytes);
        assert!(assets.check_file(&p, &sha, "the model").is_ok());
        assert_eq!(assets.read_checked(&p, &sha, "the model").unwrap(), bytes);
        let wrong = "0".repeat(64);
        let e = assets
            .check_file(&p, &wrong, "the model")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("m.onnx") && e.contains(&sha) && e.contains(&wrong),
            "{e}"
        );
        let missing = dir.path().join("none.onnx");
        let e = assets
            .check_file(&missing, &sha, "the model")
            .unwrap_err()
            .to_string();
        assert!(e.contains("none.onnx") && e.contains("not found"), "{e}");
    }
}
