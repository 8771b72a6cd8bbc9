//! The Unix socket sink: every connected client gets every event line.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use super::Sink;
use crate::daemon::Summary;
use hark::pipeline::detector::Detection;

/// Clients at most; a client beyond it is closed at once.
const MAX_CLIENTS: usize = 256;

/// A Unix socket server: every connected client gets every event line. A client that does not
/// keep up (its socket buffer is full) is dropped and counted; it never slows detection. A
/// client that hangs up is let go within one tick, so connect/close churn cannot pile up file
/// descriptors.
///
/// The socket file is hark's own: it is created with its final mode (bound in a private folder,
/// given its mode there, then linked into place), and at exit it is removed only if it is still
/// the same file (device and inode), never another daemon's socket or a file put there since.
pub struct SocketServer {
    path: PathBuf,
    /// (device, inode) of the socket file this server created.
    identity: (u64, u64),
    clients: Vec<UnixStream>,
    dropped_clients: u64,
    listener: UnixListener,
}

impl SocketServer {
    /// Binds `path` with file mode `mode`. A stale socket file (no daemon answers on it) is
    /// replaced; a path a live daemon holds is refused.
    pub fn bind(path: &Path, mode: u32) -> Result<SocketServer> {
        let shown = path.display();
        if std::fs::symlink_metadata(path).is_ok() {
            remove_stale(path)?;
        }
        let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) if !dir.is_dir() => {
                bail!("{shown}: socket directory {} does not exist", dir.display())
            }
            Some(dir) => dir.to_path_buf(),
            None => PathBuf::from("."),
        };
        let listener = bind_with_mode(path, &dir, mode)?;
        let meta = std::fs::symlink_metadata(path)
            .with_context(|| format!("{shown}: the socket vanished as it was created"))?;
        listener.set_nonblocking(true)?;
        Ok(SocketServer {
            path: path.to_path_buf(),
            identity: (meta.dev(), meta.ino()),
            clients: Vec::new(),
            dropped_clients: 0,
            listener,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts waiting clients (non-blocking), up to [`MAX_CLIENTS`].
    pub fn accept(&mut self) {
        while let Ok((s, _)) = self.listener.accept() {
            if self.clients.len() < MAX_CLIENTS && s.set_nonblocking(true).is_ok() {
                self.clients.push(s);
            }
        }
    }

    /// Lets go of clients that hung up (what they send is read and ignored).
    pub fn prune(&mut self) {
        let mut buf = [0u8; 256];
        self.clients.retain_mut(|c| loop {
            match c.read(&mut buf) {
                Ok(0) => break false,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break false,
            }
        });
    }

    /// Sends one line to every client, dropping (and counting) those that cannot take it now;
    /// those that hung up since the last prune are let go uncounted.
    pub fn broadcast(&mut self, line: &str) {
        use std::io::ErrorKind::{BrokenPipe, ConnectionReset};
        self.accept();
        let mut msg = Vec::with_capacity(line.len() + 1);
        msg.extend_from_slice(line.as_bytes());
        msg.push(b'\n');
        let mut dropped = 0;
        self.clients.retain_mut(|c| match c.write(&msg) {
            Ok(n) if n == msg.len() => true,
            Err(e) if matches!(e.kind(), BrokenPipe | ConnectionReset) => false,
            _ => {
                dropped += 1;
                false
            }
        });
        self.dropped_clients += dropped;
    }
}

/// Removes a stale socket at `path`; refuses a live one and anything that is not a socket.
fn remove_stale(path: &Path) -> Result<()> {
    let shown = path.display();
    if UnixStream::connect(path).is_ok() {
        bail!("{shown}: socket is held by another running hark (stop it, or set socket.path / --socket)");
    }
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.file_type().is_socket() {
        bail!("{shown}: exists and is not a socket; refusing to replace it");
    }
    std::fs::remove_file(path).with_context(|| format!("{shown}: cannot remove the stale socket"))
}

/// Binds a listener at `path` whose file has `mode` from the moment it has that name: bound
/// in a fresh private folder inside `dir`, chmod-ed there, then hard-linked into place (which
/// fails rather than replace a file that appeared meanwhile).
fn bind_with_mode(path: &Path, dir: &Path, mode: u32) -> Result<UnixListener> {
    let shown = path.display();
    let private = dir.join(format!(".hark-sock-{:016x}", rand::random::<u64>()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .with_context(|| format!("{shown}: cannot create a private folder beside it"))?;
    let tmp = private.join("s");
    let result = (|| {
        let listener = UnixListener::bind(&tmp)
            .with_context(|| format!("{shown}: cannot create the socket"))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("{shown}: cannot set socket mode {mode:o}"))?;
        std::fs::hard_link(&tmp, path)
            .with_context(|| format!("{shown}: cannot create the socket"))?;
        Ok(listener)
    })();
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::remove_dir(&private);
    result
}

impl Drop for SocketServer {
    fn drop(&mut self) {
        self.clients.clear();
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| (m.dev(), m.ino()) == self.identity);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
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
        self.prune();
    }

    fn finish(&mut self, summary: &mut Summary) {
        summary.dropped_clients = self.dropped_clients;
    }
}
