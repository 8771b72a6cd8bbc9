//! The Unix socket sink: every connected client gets every event line.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::Sink;
use crate::daemon::Summary;
use hark::pipeline::detector::Detection;

/// A Unix socket server: every connected client gets every event line. A client that does not
/// keep up (its socket buffer is full) is dropped and counted; it never slows detection.
pub struct SocketServer {
    path: PathBuf,
    clients: Arc<Mutex<Vec<UnixStream>>>,
    pub dropped_clients: Arc<AtomicU64>,
    listener: UnixListener,
}

impl SocketServer {
    /// Binds `path` with file mode `mode`. A stale socket file (no daemon answers on it) is
    /// replaced; a path a live daemon holds is refused.
    pub fn bind(path: &Path, mode: u32) -> Result<SocketServer> {
        let shown = path.display();
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                bail!("{shown}: socket is held by another running hark (stop it, or set socket.path / --socket)");
            }
            let meta = std::fs::symlink_metadata(path)?;
            if !std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) {
                bail!("{shown}: exists and is not a socket; refusing to replace it");
            }
            std::fs::remove_file(path)
                .with_context(|| format!("{shown}: cannot remove the stale socket"))?;
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                bail!("{shown}: socket directory {} does not exist", dir.display());
            }
        }
        let listener = UnixListener::bind(path)
            .with_context(|| format!("{shown}: cannot create the socket"))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("{shown}: cannot set socket mode {mode:o}"))?;
        listener.set_nonblocking(true)?;
        Ok(SocketServer {
            path: path.to_path_buf(),
            clients: Arc::new(Mutex::new(Vec::new())),
            dropped_clients: Arc::new(AtomicU64::new(0)),
            listener,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts waiting clients (non-blocking).
    pub fn accept(&self) {
        while let Ok((s, _)) = self.listener.accept() {
            if s.set_nonblocking(true).is_ok() {
                self.clients.lock().unwrap().push(s);
            }
        }
    }

    /// Sends one line to every client, dropping those that cannot take it now.
    pub fn broadcast(&self, line: &str) {
        self.accept();
        let mut msg = Vec::with_capacity(line.len() + 1);
        msg.extend_from_slice(line.as_bytes());
        msg.push(b'\n');
        let mut clients = self.clients.lock().unwrap();
        let before = clients.len();
        clients.retain_mut(|c| matches!(c.write(&msg), Ok(n) if n == msg.len()));
        self.dropped_clients
            .fetch_add((before - clients.len()) as u64, Ordering::Relaxed);
    }
}

impl Drop for SocketServer {
    fn drop(&mut self) {
        self.clients.lock().unwrap().clear();
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Sink for SocketServer {
    fn event(&mut self, _d: &Detection, json: &str) -> Result<()> {
        self.broadcast(json);
        Ok(())
    }

    fn describe(&self) -> Option<String> {
        Some(format!("events on socket {}", self.path().display()))
    }

    fn tick(&mut self) {
        self.accept();
    }

    fn finish(&mut self, summary: &mut Summary) {
        summary.dropped_clients = self.dropped_clients.load(Ordering::Relaxed);
    }
}
