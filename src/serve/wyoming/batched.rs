//! A connection's reads, batched by the kernel: a connection thread wakes once per 80 ms block
//! of audio instead of once per 10 ms chunk.
//!
//! Home Assistant sends a chunk every 10 ms, and a thread that reads each as it comes wakes 100
//! times a second per satellite: at 100 satellites those wake-ups cost more than the front end.
//! Before each read that would block, the connection asks for the bytes that complete the
//! stream's next block ([`Batched::want`], from the size of the last chunk event): the socket's
//! low-water mark (`SO_RCVLOWAT`) then keeps the thread asleep until they have come, and a
//! short timeout ([`TICK`]) hands on whatever has come if they do not (a client that pauses,
//! sends a smaller event or stops). The idle timeout counts from the last byte received.

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Longest a read waits for the rest of a block before taking what has come.
pub const TICK: Duration = Duration::from_millis(50);
/// Most bytes a read waits for (the connection's read buffer is 16 KiB).
pub const MAX_WANT: usize = 16 << 10;

/// The socket's reads, waiting for [`Batched::want`] bytes at a time.
pub struct Batched {
    sock: TcpStream,
    idle: Duration,
    last_data: Instant,
    /// Bytes received so far.
    received: u64,
    /// The low-water mark set on the socket.
    want: usize,
}

impl Batched {
    /// Reads of `sock`, whose read timeout must be `idle` and low-water mark 1 (the default);
    /// a read fails once nothing has come for `idle`.
    pub fn new(sock: TcpStream, idle: Duration) -> Self {
        Batched {
            sock,
            idle,
            last_data: Instant::now(),
            received: 0,
            want: 1,
        }
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The next read waits for `bytes` (clamped to 1..=[`MAX_WANT`]), or [`TICK`] if more
    /// than 1; 1 restores plain reads.
    pub fn want(&mut self, bytes: usize) {
        let bytes = bytes.clamp(1, MAX_WANT);
        if bytes == self.want {
            return;
        }
        if (bytes > 1) != (self.want > 1) {
            let timeout = if bytes > 1 {
                TICK.min(self.idle)
            } else {
                self.idle
            };
            if self.sock.set_read_timeout(Some(timeout)).is_err() {
                return;
            }
        }
        if set_low_water_mark(&self.sock, bytes) {
            self.want = bytes;
        }
    }
}

impl Read for Batched {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match (&self.sock).read(buf) {
                Ok(n) => {
                    if n > 0 {
                        self.last_data = Instant::now();
                        self.received += n as u64;
                    }
                    return Ok(n);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if self.last_data.elapsed() >= self.idle {
                        return Err(e);
                    }
                    // Nothing within a tick: take whatever comes next at once.
                    self.want(1);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Sets the socket's `SO_RCVLOWAT`; false if the system refused.
pub fn set_low_water_mark(sock: &TcpStream, bytes: usize) -> bool {
    let value = bytes.min(libc::c_int::MAX as usize) as libc::c_int;
    // SAFETY: a valid socket, and a pointer to an int with its length.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    r == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        client.set_nodelay(true).unwrap();
        (client, l.accept().unwrap().0)
    }

    #[test]
    fn a_read_waits_for_the_bytes_wanted_or_a_tick_and_fails_only_when_idle() {
        let (mut client, server) = pair();
        let idle = Duration::from_millis(400);
        server.set_read_timeout(Some(idle)).unwrap();
        let mut r = Batched::new(server, idle);
        let mut buf = [0u8; 4096];
        r.want(300);
        // Fewer bytes than wanted: held until the tick, then handed on.
        client.write_all(&[7; 100]).unwrap();
        let t = Instant::now();
        assert_eq!(r.read(&mut buf).unwrap(), 100);
        assert!(
            t.elapsed() >= TICK - Duration::from_millis(5),
            "{:?}",
            t.elapsed()
        );
        // As many as wanted: all of them in one read.
        client.write_all(&[8; 300]).unwrap();
        assert_eq!(r.read(&mut buf).unwrap(), 300);
        assert_eq!(r.received(), 400);
        // Nothing more: ticks pass, and the read fails once idle.
        let t = Instant::now();
        let e = r.read(&mut buf).unwrap_err();
        assert!(matches!(
            e.kind(),
            ErrorKind::WouldBlock | ErrorKind::TimedOut
        ));
        assert!(
            t.elapsed() >= idle - Duration::from_millis(50),
            "{:?}",
            t.elapsed()
        );
        // A plain read again afterwards: one byte is enough.
        client.write_all(&[9]).unwrap();
        assert_eq!(r.read(&mut buf).unwrap(), 1);
    }
}
