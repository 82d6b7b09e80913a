//! libFuzzer over the sequence tasks' data-file reader (.npz, .safetensors); see
//! `lsnn_bench::fuzz`.
#![no_main]
use lsnn_bench::fuzz::arrays;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let o = arrays(data);
    assert!(
        o.oversized_message().is_none(),
        "a message grew with the input: {o:?}"
    );
});
