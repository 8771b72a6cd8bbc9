//! Small helpers shared by several stages: atomic writes, hashing and memory figures.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A file written beside its destination and then put in place whole, so a reader never sees
/// it half-written and a failed write leaves the old file as it was.
///
/// The temporary file has a random name and is created exclusively without following links
/// (`O_CREAT|O_EXCL|O_NOFOLLOW`), so a link planted beside the destination cannot redirect the
/// write. A destination that exists and is not a regular file (a device, a FIFO, a folder, a
/// symbolic link) is refused, not replaced. Dropped without a commit, the temporary file is
/// removed.
pub struct AtomicFile {
    tmp: PathBuf,
    dest: PathBuf,
    file: std::fs::File,
    committed: bool,
}

impl AtomicFile {
    /// Creates the temporary file for `dest` (and `dest`'s folder if it is missing).
    pub fn create(dest: &Path) -> Result<AtomicFile> {
        use std::os::unix::fs::OpenOptionsExt;
        refuse_non_regular(dest)?;
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(Error::io(dir, "cannot create directory"))?;
        }
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        loop {
            let tmp = dest.with_file_name(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
            let opened = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&tmp);
            match opened {
                Ok(file) => {
                    return Ok(AtomicFile {
                        tmp,
                        dest: dest.to_path_buf(),
                        file,
                        committed: false,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(&tmp, "cannot create")(e)),
            }
        }
    }

    /// The open temporary file, to write into.
    pub fn file(&self) -> &std::fs::File {
        &self.file
    }

    /// The temporary file's path (for messages).
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// Syncs the file and renames it over the destination.
    pub fn commit(mut self) -> Result<()> {
        self.file
            .sync_all()
            .map_err(Error::io(&self.tmp, "cannot write"))?;
        refuse_non_regular(&self.dest)?;
        std::fs::rename(&self.tmp, &self.dest).map_err(Error::io(&self.dest, "cannot write"))?;
        self.committed = true;
        Ok(())
    }

    /// Syncs the file and gives it the destination's name only if that name is free: an
    /// existing file is never replaced.
    pub fn commit_new(self) -> Result<()> {
        self.file
            .sync_all()
            .map_err(Error::io(&self.tmp, "cannot write"))?;
        std::fs::hard_link(&self.tmp, &self.dest)
            .map_err(Error::io(&self.dest, "cannot write (it may already exist)"))
        // Drop removes the temporary name; the file lives on under `dest`.
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Refuses a destination that exists and is not a regular file.
fn refuse_non_regular(dest: &Path) -> Result<()> {
    match std::fs::symlink_metadata(dest) {
        Ok(m) if !m.file_type().is_file() => Err(Error::invalid(
            dest,
            "exists and is not a regular file; refusing to replace it",
        )),
        _ => Ok(()),
    }
}

/// Writes `bytes` to `path` atomically (see [`AtomicFile`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let out = AtomicFile::create(path)?;
    out.file()
        .write_all(bytes)
        .map_err(Error::io(out.temp_path(), "cannot write"))?;
    out.commit()
}

/// Copies `from` to `to` through a synced temporary file renamed into place: over an existing
/// `to` when `replace`, else only to a free name (an existing `to` is an error).
pub fn copy_atomic(from: &Path, to: &Path, replace: bool) -> Result<()> {
    let out = AtomicFile::create(to)?;
    let mut src = std::fs::File::open(from).map_err(Error::io(from, "cannot read"))?;
    std::io::copy(&mut src, &mut out.file()).map_err(Error::io(out.temp_path(), "cannot write"))?;
    if replace {
        out.commit()
    } else {
        out.commit_new()
    }
}

/// The little-endian bytes of `values` (how hark keeps f32 rows on disk and in heads).
pub fn f32_le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The f32 values of little-endian `bytes` (a trailing partial value is dropped: callers
/// check the length first).
pub fn f32s_from_le_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The sha256 of a file's bytes, read in pieces (a large file is never held whole).
pub fn sha256_file_hex(path: &std::path::Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// This process's peak resident set size in kB (`VmHWM`), on Linux. Unlike a parent's
/// `wait4`/`getrusage` figure, it does not include the parent's memory at the time it spawned
/// this process.
pub fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

/// The `VmHWM:` figure (kB) of a `/proc/<pid>/status` text.
pub fn parse_vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A TOML error as one line: where (file, line, column, and the line's start) and what.
pub fn toml_error_line(origin: &str, text: &str, e: &toml::de::Error) -> String {
    let at = e.span().map(|span| {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.len() - start + 1;
        let source: String = text[start..]
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(60)
            .collect();
        format!(" line {line}, column {column} (`{}`):", source.trim())
    });
    let message = e.message().lines().collect::<Vec<_>>().join(" ");
    format!("{origin}:{} {message}", at.unwrap_or_default())
}

/// One malloc arena for the whole process (glibc): each thread would otherwise keep an arena at
/// its own high-water mark, memory the process holds but does not use (training's workers:
/// 4-7 MB more at the peak). And blocks of 128 KiB and more always mapped on their own, so
/// that they go back to the system when freed: glibc otherwise raises that bar to the largest
/// block freed, and the word check's buffers of a few MB would stay in the heap after each
/// check (7 MB of `hark listen`'s peak). Call before starting threads.
pub fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before other threads start.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Blocks of up to `bytes` taken from the heap rather than mapped on their own, and up to as
/// much of the heap's free memory kept rather than handed back (glibc): for a server whose word
/// check allocates a few MB of buffers several times a second and frees them after each run.
/// Mapping them anew each time costs a fifth more CPU (`hark bench --streams 100`: 0.53%
/// against 0.44% of a core per stream) for 2 MB less; `hark serve` keeps up to 8 MB (2 MB cost
/// 0.52%). Call once loading is done.
pub fn keep_large_blocks(bytes: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters.
    unsafe {
        let bytes = i32::try_from(bytes).unwrap_or(i32::MAX);
        libc::mallopt(libc::M_MMAP_THRESHOLD, bytes);
        libc::mallopt(libc::M_TRIM_THRESHOLD, bytes);
    }
}

/// Hands the heap's free memory back to the system (glibc), so that a peak passed does not stay
/// resident.
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory the allocator holds.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_rows_round_trip_through_little_endian_bytes() {
        let v = [1.5f32, -0.0, f32::MIN_POSITIVE, 3.0e38];
        let b = f32_le_bytes(&v);
        assert_eq!(b.len(), 16);
        assert_eq!(&b[..4], &1.5f32.to_le_bytes());
        let back = f32s_from_le_bytes(&b);
        assert!(back.iter().zip(&v).all(|(a, b)| a.to_bits() == b.to_bits()));
        assert_eq!(f32s_from_le_bytes(&b[..6]), vec![1.5]);
    }

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn an_atomic_write_replaces_a_regular_file_and_leaves_no_temporary() {
        let d = dir();
        let p = d.path().join("x.head");
        std::fs::write(&p, b"old").unwrap();
        write_atomic(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn links_devices_fifos_and_folders_are_refused_and_left_alone() {
        let d = dir();
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let link = d.path().join("link.head");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let fifo = d.path().join("fifo.head");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let folder = d.path().join("folder.head");
        std::fs::create_dir(&folder).unwrap();
        for dest in [&link, &fifo, &folder, Path::new("/dev/null")] {
            let e = write_atomic(dest, b"new").unwrap_err().to_string();
            assert!(e.contains("not a regular file"), "{e}");
        }
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            4,
            "no temporaries left"
        );
    }

    #[test]
    fn temporary_names_are_unpredictable_and_never_followed() {
        let d = dir();
        let dest = d.path().join("h.head");
        let a = AtomicFile::create(&dest).unwrap();
        let b = AtomicFile::create(&dest).unwrap();
        assert_ne!(a.temp_path(), b.temp_path());
        assert!(!a
            .temp_path()
            .to_string_lossy()
            .contains(&std::process::id().to_string()));
        drop((a, b));
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            0,
            "dropped = removed"
        );
    }

    #[test]
    fn commit_new_never_replaces_an_existing_file() {
        let d = dir();
        let p = d.path().join("take-1.wav");
        let f = AtomicFile::create(&p).unwrap();
        std::io::Write::write_all(&mut f.file(), b"first").unwrap();
        f.commit_new().unwrap();
        let f = AtomicFile::create(&p).unwrap();
        std::io::Write::write_all(&mut f.file(), b"second").unwrap();
        assert!(f.commit_new().is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"first");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn vm_hwm_is_read_from_a_status_text() {
        let status = "Name:\thark\nVmPeak:\t  100 kB\nVmHWM:\t   36148 kB\nVmRSS:\t 30000 kB\n";
        assert_eq!(super::parse_vm_hwm(status), Some(36148));
        assert_eq!(super::parse_vm_hwm("Name: x\n"), None);
        assert!(super::peak_rss_kb().unwrap_or(1) > 0);
    }
}
