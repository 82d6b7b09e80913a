//! libFuzzer over the text data reader; see `lsnn_bench::fuzz`.
#![no_main]
use lsnn_bench::fuzz::text;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let o = text(data);
    assert!(
        o.oversized_message().is_none(),
        "a message grew with the input: {o:?}"
    );
});
