//! Data (design §8.1, §8.2): text files that cannot be used are typed errors naming the problem; the
//! windows; the built-in arithmetic task; the bigram baseline.

mod common;

use common::scratch;
use lsnn_train::data::{bigram_baseline, ARITH_VAL_PROBLEMS, VAL_FRACTION};
use lsnn_train::lsnn_layers::SeededRng;
use lsnn_train::{ArithmeticTask, ByteTokenizer, DataSource, TokenDataset, TrainError};
use proptest::prelude::*;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

#[track_caller]
fn expect_data_error(path: &Path, seq_len: usize, words: &[&str]) {
    let err = TokenDataset::from_text_file(path, seq_len).unwrap_err();
    let shown = err.to_string();
    match &err {
        TrainError::Data { path: p, message } => {
            assert_eq!(p, path, "{shown}");
            for w in words {
                assert!(message.contains(w), "{w:?} not in: {shown}");
            }
            assert!(shown.contains(&path.display().to_string()), "{shown}");
        }
        other => panic!("expected TrainError::Data, got {other:?}"),
    }
}

#[test]
fn unusable_text_files_are_data_errors() {
    let dir = scratch("data-errors");
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, b"").unwrap();
    expect_data_error(&empty, 16, &["empty"]);

    expect_data_error(&dir.join("missing.txt"), 16, &["cannot read"]);
    // A directory is not readable as a file.
    expect_data_error(&dir, 16, &["cannot read"]);

    let latin1 = dir.join("latin1.txt");
    std::fs::write(&latin1, b"caf\xe9 au lait, and more text after it").unwrap();
    expect_data_error(&latin1, 4, &["not valid UTF-8", "offset 3"]);

    // Two windows of 17 bytes are the least: 33 bytes is one too few.
    let short = dir.join("short.txt");
    std::fs::write(&short, "x".repeat(33)).unwrap();
    expect_data_error(&short, 16, &["too short", "33 bytes", "at least 34"]);
    std::fs::write(&short, "x".repeat(34)).unwrap();
    let ds = TokenDataset::from_text_file(&short, 16).unwrap();
    assert_eq!((ds.train_windows(), ds.val_windows()), (1, 1));
}

#[test]
fn token_streams_shorter_than_a_window_are_data_errors() {
    let src = DataSource::TextFile {
        path: PathBuf::from("stream"),
        sha256: None,
    };
    let err = TokenDataset::new(vec![1; 17], vec![1; 16], 16, src.clone()).unwrap_err();
    assert!(
        matches!(&err, TrainError::Data { message, .. } if message.contains("16 validation tokens")),
        "{err}"
    );
    let err = TokenDataset::new(vec![1; 5], vec![1; 17], 16, src.clone()).unwrap_err();
    assert!(
        matches!(&err, TrainError::Data { message, .. } if message.contains("5 train")),
        "{err}"
    );
    assert!(TokenDataset::new(vec![1; 17], vec![1; 17], 16, src).is_ok());
}

/// Windows are `seq_len + 1` long, start every `seq_len` tokens, and their next-token targets
/// cover the training split exactly once (all but a tail shorter than one window).
fn check_windows(ds: &TokenDataset) {
    let l = ds.seq_len();
    let train = ds.train_tokens();
    let n = ds.train_windows();
    assert!(n >= 1);
    let mut targets = Vec::new();
    for i in 0..n {
        let w = ds.train_window(i);
        assert_eq!(w.len(), l + 1);
        assert_eq!(w, &train[i * l..i * l + l + 1]);
        if i + 1 < n {
            // Consecutive windows overlap by exactly one token (the last input is the next
            // window's first).
            assert_eq!(w[l], ds.train_window(i + 1)[0]);
        }
        targets.extend_from_slice(&w[1..]);
    }
    assert_eq!(
        targets,
        &train[1..n * l + 1],
        "targets are each training position once"
    );
    let uncovered = train.len() - (n * l + 1);
    assert!(
        uncovered < l,
        "{uncovered} training tokens left over (window {l})"
    );
    for i in 0..ds.val_windows() {
        assert_eq!(ds.val_window(i).len(), l + 1);
    }
    assert!(ds.val_tokens().len() - (ds.val_windows() * l + 1) < l);
}

#[test]
fn text_file_windows_cover_the_train_split() {
    let dir = scratch("data-windows");
    let p = dir.join("t.txt");
    let text = common::repetitive_text(1000) + "é€ — multi-byte tail";
    std::fs::write(&p, &text).unwrap();
    let ds = TokenDataset::from_text_file(&p, 16).unwrap();
    // The recorded source: the absolute path and the content's SHA-256.
    assert_eq!(
        ds.source(),
        &DataSource::TextFile {
            path: p.canonicalize().unwrap(),
            sha256: Some(lsnn_train::checkpoint::manifest::sha256_hex(
                text.as_bytes()
            )),
        }
    );
    // The split: the tail (10%, at least one window) is validation; together they are the file.
    let bytes: Vec<u32> = text.bytes().map(u32::from).collect();
    let mut joined = ds.train_tokens().to_vec();
    joined.extend_from_slice(ds.val_tokens());
    assert_eq!(joined, bytes);
    assert_eq!(
        ds.val_tokens().len(),
        (bytes.len() as f64 * VAL_FRACTION) as usize
    );
    check_windows(&ds);
    // Rebuilding from the recorded source gives the same data.
    let again = TokenDataset::from_source(ds.source(), 16).unwrap();
    assert_eq!(again.train_tokens(), ds.train_tokens());
    assert_eq!(again.val_tokens(), ds.val_tokens());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn windows_cover_any_stream(train_len in 2usize..400, val_len in 2usize..100, seq in 1usize..20) {
        prop_assume!(train_len > seq && val_len > seq);
        let train: Vec<u32> = (0..train_len as u32).collect();
        let val: Vec<u32> = (0..val_len as u32).map(|x| x + 10_000).collect();
        let ds = TokenDataset::new(train, val, seq, DataSource::Arithmetic { seed: 0 }).unwrap();
        check_windows(&ds);
        // An epoch order is a permutation of the windows.
        let mut order = ds.epoch_order(&mut SeededRng::new(train_len as u64));
        order.sort_unstable();
        prop_assert_eq!(order, (0..ds.train_windows() as u32).collect::<Vec<_>>());
    }
}

#[test]
fn small_text_files_keep_at_least_one_validation_window() {
    let dir = scratch("data-small");
    let p = dir.join("t.txt");
    std::fs::write(&p, "abcdefghij".repeat(5)).unwrap(); // 50 bytes, 10% = 5 < 17
    let ds = TokenDataset::from_text_file(&p, 16).unwrap();
    assert_eq!(ds.val_tokens().len(), 17);
    assert_eq!(ds.train_tokens().len(), 33);
    assert_eq!((ds.train_windows(), ds.val_windows()), (2, 1));
}

fn parse_line(line: &str) -> (u32, u32, u32) {
    let b = line.as_bytes();
    assert_eq!(b.len(), 10, "{line:?}");
    assert!(b[..2].iter().all(u8::is_ascii_digit), "{line:?}");
    assert_eq!(b[2], b'+', "{line:?}");
    assert!(b[3..5].iter().all(u8::is_ascii_digit), "{line:?}");
    assert_eq!(b[5], b'=', "{line:?}");
    assert!(b[6..9].iter().all(u8::is_ascii_digit), "{line:?}");
    assert_eq!(b[9], b'\n', "{line:?}");
    (
        line[..2].parse().unwrap(),
        line[3..5].parse().unwrap(),
        line[6..9].parse().unwrap(),
    )
}

#[test]
fn arithmetic_lines_have_the_fixed_format() {
    assert_eq!(ArithmeticTask::line(7, 5), "07+05=012\n");
    assert_eq!(ArithmeticTask::line(99, 99), "99+99=198\n");
    assert_eq!(ArithmeticTask::line(0, 0), "00+00=000\n");
    assert_eq!(ArithmeticTask::prompt(7, 5), "\n07+05=");
    assert_eq!(ArithmeticTask::answer(7, 5), "012");
    let task = ArithmeticTask::new(42);
    let ds = task.dataset(16).unwrap();
    assert_eq!(ds.source(), &DataSource::Arithmetic { seed: 42 });
    for (tokens, problems) in [
        (ds.train_tokens(), task.train_problems()),
        (ds.val_tokens(), task.val_problems()),
    ] {
        let text = ByteTokenizer.decode(tokens);
        assert_eq!(text.len(), 10 * problems.len());
        for (line, &(a, b)) in text.split_inclusive('\n').zip(problems) {
            let (x, y, s) = parse_line(line);
            assert_eq!((x, y, s), (a, b, a + b));
        }
    }
    // A prompt followed by its answer occurs in the text, as the model is asked to complete it.
    let (a, b) = task.val_problems()[0];
    let val_text = ByteTokenizer.decode(ds.val_tokens());
    let asked = format!(
        "{}{}",
        ArithmeticTask::prompt(a, b),
        ArithmeticTask::answer(a, b)
    );
    assert!(val_text.contains(&asked) || val_text.starts_with(&asked[1..]));
    check_windows(&ds);
}

#[test]
fn arithmetic_validation_problems_are_held_out() {
    let task = ArithmeticTask::new(42);
    let train: HashSet<(u32, u32)> = task.train_problems().iter().copied().collect();
    let val: HashSet<(u32, u32)> = task.val_problems().iter().copied().collect();
    assert_eq!(val.len(), ARITH_VAL_PROBLEMS);
    assert_eq!(task.val_problems().len(), ARITH_VAL_PROBLEMS);
    assert_eq!(train.len(), 10_000 - ARITH_VAL_PROBLEMS);
    assert!(
        train.is_disjoint(&val),
        "a validation problem is also a training problem"
    );
    assert_eq!(
        train.union(&val).count(),
        10_000,
        "every problem is in one split"
    );
    // The split depends on the seed, deterministically.
    assert_eq!(ArithmeticTask::new(42).val_problems(), task.val_problems());
    assert_ne!(ArithmeticTask::new(43).val_problems(), task.val_problems());
}

#[test]
fn byte_tokenizer_round_trips() {
    let text = "héllo, wörld → ∑ 🙂\n";
    let ids = ByteTokenizer.encode(text);
    assert_eq!(ids.len(), text.len());
    assert!(ids.iter().all(|&t| (t as usize) < ByteTokenizer::VOCAB));
    assert_eq!(ByteTokenizer.decode(&ids), text);
    // Ids outside the vocabulary are skipped, never wrapped.
    assert_eq!(ByteTokenizer.decode(&[104, 256 + 105, 105]), "hi");
}

#[test]
fn bigram_baseline_is_lower_on_predictable_text() {
    let seq = 16;
    let src = DataSource::Arithmetic { seed: 0 };
    let cycle = |n: usize| -> Vec<u32> {
        b"abcdefgh"
            .iter()
            .cycle()
            .take(n)
            .map(|&b| b as u32)
            .collect()
    };
    let det = TokenDataset::new(cycle(4001), cycle(401), seq, src.clone()).unwrap();
    let mut rng = SeededRng::new(9);
    let mut random = |n: usize| -> Vec<u32> {
        (0..n)
            .map(|_| rng.below(std::num::NonZeroU64::new(256).unwrap()) as u32)
            .collect()
    };
    let rnd = TokenDataset::new(random(4001), random(401), seq, src).unwrap();
    let b_det = bigram_baseline(&det, 256);
    let b_rnd = bigram_baseline(&rnd, 256);
    assert!(b_det.is_finite() && b_rnd.is_finite());
    // Deterministic successor: add-one smoothing leaves ≈ −ln(501/756) ≈ 0.41 nats.
    assert!(b_det < 0.5, "deterministic text: {b_det}");
    // Uniform bytes: no better than ln 256 ≈ 5.55.
    assert!(b_rnd > 5.0, "random text: {b_rnd}");
    assert!(b_det < b_rnd);
}
