//! The Wyoming TCP server: one thread accepts, one small-stack thread per connection reads
//! events, answers them through its [`Connection`] and writes the answers back. While audio
//! flows, a connection's reads wait for a whole block of it ([`super::batched`]).
//!
//! Each connection is on its own: its reads time out after the idle timeout, its writes after
//! [`WRITE_TIMEOUT`] (a client that does not read is dropped), an oversized or malformed frame
//! gets an `error` event and the connection closes. Beyond the maximum of connections a new
//! client gets an `error` event and is closed. [`Server::stop`] closes every connection.

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::batched::{set_low_water_mark, Batched, MAX_WANT};
use super::events::{error_event, Connection, WakeStream};
use super::frame::{read_event, write_event, FrameError, Limits};
use crate::daemon::Log;
use crate::serve::engine::{Engine, Stream};
use hark::pipeline::detector::Detection;

/// How long a write may block before the client is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Stack of a connection thread.
const STACK: usize = 1 << 20;
/// The kernel's send buffer of a connection: far more than the answers ever need, and a client
/// that does not read can hold no more than this of the server's memory.
const SEND_BUFFER: libc::c_int = 64 << 10;

/// How the server runs.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Connections served at once; more are refused.
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// Caps on frames.
    pub limits: Limits,
}

/// What the server did, counted as it runs.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Connections accepted and served.
    pub connections: AtomicU64,
    /// Connections refused (over the maximum).
    pub refused: AtomicU64,
    /// `detection` events sent.
    pub detections: AtomicU64,
    /// Connections closed for a bad frame, a timeout or a failed write.
    pub dropped: AtomicU64,
}

/// The counts at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    pub connections: u64,
    pub refused: u64,
    pub detections: u64,
    pub dropped: u64,
}

impl ServerStats {
    /// The counts now.
    pub fn snapshot(&self) -> Counts {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counts {
            connections: get(&self.connections),
            refused: get(&self.refused),
            detections: get(&self.detections),
            dropped: get(&self.dropped),
        }
    }
}

/// What the accept thread and the connection threads share.
struct Shared {
    engine: Arc<Engine>,
    opts: ServerOptions,
    log: Log,
    stop: AtomicBool,
    stats: ServerStats,
    /// The open connections (a clone of each socket, to close them on stop).
    open: Mutex<HashMap<u64, TcpStream>>,
}

/// The running server.
pub struct Server {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: JoinHandle<Vec<JoinHandle<()>>>,
}

impl Server {
    /// Starts serving `listener`.
    pub fn start(
        engine: Arc<Engine>,
        listener: TcpListener,
        opts: ServerOptions,
        log: Log,
    ) -> Result<Server> {
        let addr = listener.local_addr()?;
        listener
            .set_nonblocking(true)
            .context("cannot make the listener non-blocking")?;
        let shared = Arc::new(Shared {
            engine,
            opts,
            log,
            stop: AtomicBool::new(false),
            stats: ServerStats::default(),
            open: Mutex::new(HashMap::new()),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("wyoming-accept".into())
            .spawn(move || accept_loop(&s, listener))?;
        Ok(Server {
            shared,
            addr,
            accept,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes every connection and waits for their threads.
    pub fn stop(self) -> Counts {
        self.shared.stop.store(true, Ordering::SeqCst);
        let threads = self.accept.join().unwrap_or_default();
        for s in self.shared.open.lock().unwrap().values() {
            let _ = s.shutdown(Shutdown::Both);
        }
        for t in threads {
            let _ = t.join();
        }
        self.shared.stats.snapshot()
    }
}

/// Accepts until the stop flag; returns the connection threads.
fn accept_loop(shared: &Arc<Shared>, listener: TcpListener) -> Vec<JoinHandle<()>> {
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    let mut next_id = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        let (sock, peer) = match listener.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => {
                shared.log.warn(&format!("wyoming: accept failed: {e}"));
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        threads.retain(|t| !t.is_finished());
        next_id += 1;
        if let Err(e) = admit(shared, sock, peer, next_id).map(|t| threads.push(t)) {
            shared.log.warn(&format!("wyoming: client {peer}: {e:#}"));
        }
    }
    threads
}

/// Registers a new connection and starts its thread, or refuses it when the server is full.
fn admit(
    shared: &Arc<Shared>,
    sock: TcpStream,
    peer: SocketAddr,
    id: u64,
) -> Result<JoinHandle<()>> {
    sock.set_nonblocking(false)?;
    sock.set_write_timeout(Some(WRITE_TIMEOUT))?;
    sock.set_read_timeout(Some(shared.opts.idle_timeout))?;
    let _ = sock.set_nodelay(true);
    set_send_buffer(&sock);
    {
        let mut open = shared.open.lock().unwrap();
        if open.len() >= shared.opts.max_connections {
            drop(open);
            shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            let max = shared.opts.max_connections;
            let text = format!("too many connections: this server takes {max} at once");
            let _ = write_event(&mut &sock, &error_event(&text, "too-many-connections"));
            let _ = sock.shutdown(Shutdown::Both);
            anyhow::bail!("refused: already {max} connections (wyoming.max_connections)");
        }
        open.insert(id, sock.try_clone()?);
    }
    shared.stats.connections.fetch_add(1, Ordering::Relaxed);
    let s = shared.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("wyoming-{id}"))
        .stack_size(STACK)
        .spawn(move || {
            s.log.debug(&format!("wyoming: client {peer} connected"));
            serve_connection(&s, sock, peer);
            s.open.lock().unwrap().remove(&id);
            s.log.debug(&format!("wyoming: client {peer} closed"));
        });
    if spawned.is_err() {
        shared.open.lock().unwrap().remove(&id);
    }
    spawned.context("cannot start a connection thread")
}

/// Fixes the socket's send buffer at [`SEND_BUFFER`] (instead of letting it grow to megabytes).
fn set_send_buffer(sock: &TcpStream) {
    let fd = std::os::fd::AsRawFd::as_raw_fd(sock);
    let size = SEND_BUFFER;
    // SAFETY: a valid socket, and a pointer to an int with its length.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            &size as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Reads events and answers them until the client closes, times out or sends a bad frame.
fn serve_connection(shared: &Shared, sock: TcpStream, peer: SocketAddr) {
    let Ok(read_half) = sock.try_clone() else {
        return;
    };
    let idle = shared.opts.idle_timeout;
    let mut reader = BufReader::with_capacity(MAX_WANT, Batched::new(read_half, idle));
    let mut conn = Connection::new(EngineStream::new(shared.engine.clone()));
    let log = &shared.log;
    // The size of the last event, header included.
    let mut event_bytes = 0;
    loop {
        let consumed = |r: &BufReader<Batched>| r.get_ref().received() - r.buffer().len() as u64;
        if reader.buffer().len() < event_bytes.max(1) {
            // Wait for the bytes that complete the next block (see `batched`).
            let block = conn.chunks_to_block().map_or(1, |c| c * event_bytes);
            let want = block.saturating_sub(reader.buffer().len() + event_bytes / 2);
            reader.get_mut().want(want);
        }
        let before = consumed(&reader);
        let event = match read_event(&mut reader, &shared.opts.limits) {
            Ok(Some(e)) => e,
            Ok(None) => return,
            Err(e) => return frame_error(shared, &sock, peer, e),
        };
        event_bytes = (consumed(&reader) - before) as usize;
        for out in conn.handle(&event) {
            match out.kind.as_str() {
                "detection" => shared.stats.detections.fetch_add(1, Ordering::Relaxed),
                "error" => {
                    log.warn(&format!("wyoming: client {peer}: {}", out.data["text"]));
                    0
                }
                _ => 0,
            };
            if let Err(e) = write_event(&mut Deadline::new(&sock, WRITE_TIMEOUT), &out) {
                return write_failed(shared, peer, &e);
            }
        }
    }
}

/// A writer that gives a whole event [`WRITE_TIMEOUT`], not each write call: a client that
/// takes a trickle of bytes now and then cannot hold its connection thread for ever.
struct Deadline<'a> {
    sock: &'a TcpStream,
    end: Instant,
}

impl<'a> Deadline<'a> {
    fn new(sock: &'a TcpStream, limit: Duration) -> Self {
        Deadline {
            sock,
            end: Instant::now() + limit,
        }
    }
}

impl Write for Deadline<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let left = self.end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        self.sock.set_write_timeout(Some(left))?;
        (&mut &*self.sock).write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An answer that could not be written: the client is dropped (unless the server is stopping).
fn write_failed(shared: &Shared, peer: SocketAddr, e: &std::io::Error) {
    if shared.stop.load(Ordering::SeqCst) {
        return;
    }
    shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
    let why = match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => {
            format!(
                "it has not read its events for {} s",
                WRITE_TIMEOUT.as_secs()
            )
        }
        _ => e.to_string(),
    };
    let log = &shared.log;
    log.warn(&format!(
        "wyoming: client {peer} dropped: cannot write: {why}"
    ));
}

/// A frame that could not be read: an idle or vanished client is closed quietly; a bad frame
/// gets an `error` event first.
fn frame_error(shared: &Shared, sock: &TcpStream, peer: SocketAddr, e: FrameError) {
    if shared.stop.load(Ordering::SeqCst) {
        return;
    }
    shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
    let log = &shared.log;
    match &e {
        FrameError::Io(io) if matches!(io.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            let idle = shared.opts.idle_timeout.as_secs_f32();
            log.info(&format!("wyoming: client {peer} closed: idle for {idle} s"));
        }
        FrameError::Io(io) => log.info(&format!("wyoming: client {peer} closed: {io}")),
        FrameError::Truncated(_) => log.info(&format!("wyoming: client {peer}: {e}")),
        _ => {
            log.warn(&format!("wyoming: client {peer} closed: {e}"));
            let _ = write_event(&mut &*sock, &error_event(&e.to_string(), e.code()));
            return close_after_error(sock);
        }
    }
    let _ = sock.shutdown(Shutdown::Both);
}

/// Closes a connection that has just been sent an `error` event, reading (and dropping) what
/// the client still sends for up to a second and a megabyte first: closing with unread bytes
/// would reset the connection, and the client could lose the error event.
fn close_after_error(sock: &TcpStream) {
    let _ = sock.shutdown(Shutdown::Write);
    set_low_water_mark(sock, 1);
    let _ = sock.set_read_timeout(Some(Duration::from_secs(1)));
    let started = std::time::Instant::now();
    let (mut buf, mut total) = ([0u8; 4096], 0);
    while total < (1 << 20) && started.elapsed() < Duration::from_secs(1) {
        match (&*sock).read(&mut buf) {
            Ok(n) if n > 0 => total += n,
            _ => break,
        }
    }
    let _ = sock.shutdown(Shutdown::Read);
}

/// A connection's stream of the engine, opened at its first use (a `describe` alone costs no
/// stream).
pub struct EngineStream {
    engine: Arc<Engine>,
    stream: Option<Stream>,
}

impl EngineStream {
    /// Not opened yet.
    pub fn new(engine: Arc<Engine>) -> Self {
        EngineStream {
            engine,
            stream: None,
        }
    }

    fn get(&mut self) -> Result<&mut Stream> {
        if self.stream.is_none() {
            self.stream = Some(self.engine.open()?);
        }
        Ok(self.stream.as_mut().unwrap())
    }
}

impl WakeStream for EngineStream {
    fn words(&self) -> Vec<String> {
        self.engine.words()
    }
    fn select(&mut self, words: Option<Vec<String>>) -> Result<()> {
        self.get()?.select(words)
    }
    fn restart(&mut self, rate: u32) -> Result<()> {
        self.get()?.restart(rate)
    }
    fn push(&mut self, samples: &[f32], rate: u32) -> Result<Vec<Detection>> {
        self.get()?.push(samples, rate)
    }
    fn samples_to_block(&self) -> usize {
        self.stream.as_ref().map_or(1, Stream::samples_to_block)
    }
}
