//! The Wyoming frame reader of `hark serve` (src/serve/wyoming/frame.rs, in the binary crate,
//! included here by path: it needs only std, serde, serde_json and thiserror) on arbitrary
//! bytes: read events until the end or the first error, under small caps so the caps themselves
//! are hit.
#![no_main]

mod cap;

#[allow(dead_code)]
#[path = "../../../src/serve/wyoming/frame.rs"]
mod frame;

use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: cap::Capped = cap::Capped;

fuzz_target!(|data: &[u8]| {
    for limits in [
        frame::Limits::default(),
        frame::Limits {
            header: 64,
            data: 64,
            payload: 256,
        },
    ] {
        let mut r = data;
        while let Ok(Some(event)) = frame::read_event(&mut r, &limits) {
            assert!(event.payload.len() <= limits.payload);
        }
    }
});
