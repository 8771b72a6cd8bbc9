//! The page cache's part in a peak RSS. A file mapped by the daemon (ONNX Runtime's library,
//! the models' copies in its format, hark itself) counts in its resident set by the pages it
//! faults in, and the kernel maps a fault's neighbours too when they are already cached: the
//! same run is larger right after set-up wrote or read the files than after they have left
//! the cache. The benchmark measures both: with the files read through first ("warm"), and
//! with their pages dropped from the cache first ("cold"; `posix_fadvise(DONTNEED)`, which
//! needs no privilege and drops only clean pages no one else maps).

use std::path::{Path, PathBuf};

/// The files a listening daemon maps: hark, the runtime library, the base models and the
/// models' copies in ONNX Runtime's format (in `cache`, hark's cache folder).
pub fn mapped_files(exe: &Path, models: &Path, cache: &Path) -> Vec<PathBuf> {
    let mut files = vec![exe.to_path_buf()];
    let listed = |dir: PathBuf, keep: &dyn Fn(&str) -> bool| -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut v: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && keep(&p.file_name().unwrap_or_default().to_string_lossy()))
            .collect();
        v.sort();
        v
    };
    files.extend(listed(models.join("runtime"), &|n| n.contains(".so")));
    files.extend(listed(models.join("base"), &|n| n.ends_with(".onnx")));
    files.extend(listed(cache.to_path_buf(), &|n| n.ends_with(".ort")));
    files
}

/// Reads each file through, so that all its pages are in the cache.
pub fn warm(files: &[PathBuf]) {
    use std::io::Read;
    let mut buf = vec![0u8; 1 << 20];
    for f in files {
        if let Ok(mut file) = std::fs::File::open(f) {
            while matches!(file.read(&mut buf), Ok(n) if n > 0) {}
        }
    }
}

/// Drops each file's clean pages from the cache (where the kernel can: pages another process
/// maps stay).
pub fn evict(files: &[PathBuf]) {
    #[cfg(target_os = "linux")]
    for f in files {
        use std::os::fd::AsRawFd;
        if let Ok(file) = std::fs::File::open(f) {
            // SAFETY: an advice on an open descriptor; it reads or writes no memory.
            unsafe {
                libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
            }
        }
    }
}
