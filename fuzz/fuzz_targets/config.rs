//! libFuzzer over the config reader (both kinds); see `lsnn_bench::fuzz`.
#![no_main]
use lsnn_bench::fuzz::{config, Outcome};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let o: Outcome = config(data);
    assert!(
        o.oversized_message().is_none(),
        "a message grew with the input: {o:?}"
    );
});
