//! libFuzzer over the checkpoint loader: one real set, one file replaced or edited per input;
//! see `lsnn_bench::fuzz::CheckpointHarness`.
#![no_main]
use lsnn_bench::fuzz::CheckpointHarness;
use std::sync::OnceLock;

static HARNESS: OnceLock<CheckpointHarness> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let h = HARNESS.get_or_init(|| {
        CheckpointHarness::new(&std::env::temp_dir()).expect("the harness's set is written")
    });
    let o = h.run(data).expect("the harness's directory stays writable");
    assert!(
        o.oversized_message().is_none(),
        "a message grew with the input: {o:?}"
    );
});
