//! hark's head loader on arbitrary bytes: parse the JSON and validate it (`Head::parse`, what
//! `Head::load` does before its base-model checks). A head that passes is then run: one
//! probability pass and a few scorer steps, which must not panic either.
#![no_main]

mod cap;

use hark::pipeline::embedding::DIM;
use hark::pipeline::head::{Head, Scorer};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

#[global_allocator]
static ALLOC: cap::Capped = cap::Capped;

fuzz_target!(|data: &[u8]| {
    let Ok(head) = Head::parse(data, Path::new("fuzz.head.json")) else {
        return;
    };
    let p = head.probabilities(&vec![0.5; head.feature_dim()]);
    assert_eq!(p.len(), head.labels.len() + 1);
    let mut scorer = Scorer::new(&head);
    for i in 0..head.context + 2 {
        scorer.push(&head, &vec![i as f32; DIM]);
    }
});
