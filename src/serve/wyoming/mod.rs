//! The Wyoming protocol (Home Assistant, wyoming-satellite): hark as a wake-word service.
//!
//! - [`frame`]: reading and writing one event (pure code over byte streams, every length capped);
//! - [`events`]: one connection's state, the events a wake-word service answers;
//! - [`server`]: the TCP server, a thread per connection, timeouts and a maximum of connections;
//! - [`batched`]: a connection's reads, batched to one wake-up per block of audio.

pub mod batched;
pub mod events;
pub mod frame;
pub mod server;
