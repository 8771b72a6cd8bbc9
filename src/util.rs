//! Small helpers shared by several stages: atomic writes and hashing.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A temporary path beside `path` (same directory, so a rename is atomic).
pub fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Renames a finished temporary file over its destination, removing the temporary on failure.
pub fn commit(tmp: &Path, dest: &Path) -> Result<()> {
    std::fs::rename(tmp, dest).map_err(|e| {
        let _ = std::fs::remove_file(tmp);
        Error::io(dest, "cannot write")(e)
    })
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, synced, then renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(Error::io(dir, "cannot create directory"))?;
    }
    let tmp = temp_sibling(path);
    let mut f = std::fs::File::create(&tmp).map_err(Error::io(&tmp, "cannot create"))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(Error::io(&tmp, "cannot write"))?;
    drop(f);
    commit(&tmp, path)
}

/// Hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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

#[cfg(test)]
mod tests {
    #[test]
    fn vm_hwm_is_read_from_a_status_text() {
        let status = "Name:\thark\nVmPeak:\t  100 kB\nVmHWM:\t   36148 kB\nVmRSS:\t 30000 kB\n";
        assert_eq!(super::parse_vm_hwm(status), Some(36148));
        assert_eq!(super::parse_vm_hwm("Name: x\n"), None);
        assert!(super::peak_rss_kb().unwrap_or(1) > 0);
    }
}
