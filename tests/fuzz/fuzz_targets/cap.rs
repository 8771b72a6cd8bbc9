//! An allocator that aborts on any single allocation over [`LIMIT`], so a parser that reserves
//! what a hostile length field claims is a crash the fuzzer reports (with or without a sanitizer).

use std::alloc::{GlobalAlloc, Layout, System};

/// The largest single allocation a parser may make on fuzz input (64 MiB).
pub const LIMIT: usize = 64 << 20;

/// [`System`], refusing allocations over [`LIMIT`].
pub struct Capped;

unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

fn check(size: usize) {
    if size > LIMIT {
        // No formatting here (it could allocate): write and abort.
        let msg = b"fuzz: single allocation over 64 MiB\n";
        unsafe { libc_write(msg) };
        std::process::abort();
    }
}

unsafe fn libc_write(msg: &[u8]) {
    extern "C" {
        fn write(fd: i32, buf: *const u8, n: usize) -> isize;
    }
    write(2, msg.as_ptr(), msg.len());
}
