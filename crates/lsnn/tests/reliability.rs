//! Hostile use of `lsnn` (design §8.3), each case reproduced in real processes: two trainers on
//! one directory, resuming from a set, replacing a run, closed and full stdout, a full disk,
//! signals, huge or empty requests, corrupted sets, changed data, another working directory,
//! and the exit codes README documents.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use support::{copy_dir, current_files, err, lsnn, ok, scratch, setup};

const BIN: &str = env!("CARGO_BIN_EXE_lsnn");

fn command(args: &[&str], cwd: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).current_dir(cwd).env("RAYON_NUM_THREADS", "2");
    c
}

/// Waits for `child` at most `secs` seconds (killing it and failing after).
fn wait(child: &mut Child, secs: u64) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            panic!("lsnn did not finish within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `cond` for at most `secs` seconds.
fn until(secs: u64, what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on a child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

/// A long training run (many epochs of the tiny config) in `d`, writing to `run`.
fn long_run(d: &Path, stdout: Stdio) -> Child {
    command(
        &[
            "train",
            "--config",
            "config.json",
            "--data",
            "data.txt",
            "--out",
            "run",
            "--epochs",
            "100000",
        ],
        d,
    )
    .stdout(stdout)
    .stderr(Stdio::piped())
    .spawn()
    .unwrap()
}

/// A short run in `d` writing to `out` (2 epochs, the tiny config).
fn short_run(d: &Path, out: &str) -> String {
    ok(&lsnn(
        &[
            "train",
            "--config",
            "config.json",
            "--data",
            "data.txt",
            "--out",
            out,
        ],
        d,
    ))
}

fn has_checkpoint(run: &Path) -> bool {
    run.join("CURRENT").is_file()
}

/// Every entry of a run directory that a crashed or failed save would leave behind.
fn debris(run: &Path) -> Vec<String> {
    std::fs::read_dir(run)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".partial-") || n.ends_with(".tmp"))
        .collect()
}

fn current_set(run: &Path) -> PathBuf {
    run.join(std::fs::read_to_string(run.join("CURRENT")).unwrap().trim())
}

/// `--max-batches` a few batches past where the run stands.
fn a_few_more(run: &Path) -> String {
    let s: serde_json::Value = serde_json::from_slice(
        &std::fs::read(current_set(run).join("trainer_state.json")).unwrap(),
    )
    .unwrap();
    (s["batches_seen"].as_u64().unwrap() + 3).to_string()
}

fn step_of(run: &Path) -> u64 {
    let s: serde_json::Value = serde_json::from_slice(
        &std::fs::read(current_set(run).join("trainer_state.json")).unwrap(),
    )
    .unwrap();
    s["step"].as_u64().unwrap()
}

#[test]
fn a_second_trainer_on_a_directory_fails_at_once_naming_the_first() {
    let d = scratch("two-trainers");
    setup(&d);
    let mut a = long_run(&d, Stdio::null());
    let pid = a.id().to_string();
    until(60, "the first trainer's lock", || {
        std::fs::read_to_string(d.join("run/LOCK")).is_ok_and(|t| t.trim() == pid)
    });
    let started = Instant::now();
    let b = lsnn(
        &[
            "train",
            "--config",
            "config.json",
            "--data",
            "data.txt",
            "--out",
            "run",
        ],
        &d,
    );
    let msg = err(&b);
    assert_eq!(code(&b), 4, "{msg}");
    assert!(
        msg.contains("in use by another trainer") && msg.contains(&pid),
        "{msg}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the second trainer waited"
    );
    // The first one is untouched: stop it with SIGTERM (a checkpoint, exit code 3), then the run
    // loads and resumes.
    until(60, "a first checkpoint", || has_checkpoint(&d.join("run")));
    signal(&a, libc::SIGTERM);
    let st = wait(&mut a, 60);
    assert_eq!(st.code(), Some(3), "SIGTERM: interrupted with a checkpoint");
    ok(&lsnn(&["eval", "--checkpoint", "run"], &d));
    let before = step_of(&d.join("run"));
    let more = a_few_more(&d.join("run"));
    ok(&lsnn(
        &["train", "--resume", "run", "--max-batches", &more],
        &d,
    ));
    assert!(step_of(&d.join("run")) > before);
    assert!(debris(&d.join("run")).is_empty());
}

#[test]
fn a_second_signal_exits_at_once_and_the_previous_checkpoint_stays_loadable() {
    let d = scratch("two-signals");
    setup(&d);
    let mut a = long_run(&d, Stdio::null());
    until(60, "a first checkpoint", || has_checkpoint(&d.join("run")));
    // Two different signals: two of one kind sent back to back can merge into one pending
    // signal before the process runs. Whichever is handled second ends the process.
    signal(&a, libc::SIGINT);
    signal(&a, libc::SIGTERM);
    let st = wait(&mut a, 60);
    assert!(
        [128 + libc::SIGINT, 128 + libc::SIGTERM].contains(&st.code().unwrap_or(-1)),
        "the second signal exits at once with 128 + its number, got {st:?}"
    );
    let e = ok(&lsnn(&["eval", "--checkpoint", "run"], &d));
    assert!(e.contains("val loss"), "{e}");
    // The next writer starts (the lock died with the process) and leaves no debris.
    let more = a_few_more(&d.join("run"));
    let r = lsnn(&["train", "--resume", "run", "--max-batches", &more], &d);
    ok(&r);
    assert!(debris(&d.join("run")).is_empty());
}

#[test]
fn a_closed_or_full_stdout_stops_training_with_a_checkpoint() {
    let d = scratch("stdout");
    setup(&d);
    // `lsnn train | head -1`: read one line, then close the pipe.
    let mut a = long_run(&d, Stdio::piped());
    let mut first = String::new();
    BufReader::new(a.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("training:"), "{first}");
    // (The reader is dropped here: the pipe is closed.)
    let st = wait(&mut a, 120);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut a.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(st.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("standard output closed") && !stderr.contains("panicked"),
        "{stderr}"
    );
    ok(&lsnn(&["eval", "--checkpoint", "run"], &d));

    // `> /dev/full`.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let o = command(
        &[
            "train",
            "--config",
            "config.json",
            "--data",
            "data.txt",
            "--out",
            "full",
        ],
        &d,
    )
    .stdout(Stdio::from(full))
    .output()
    .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 3, "{e}");
    assert!(!e.contains("panicked"), "{e}");
    ok(&lsnn(&["eval", "--checkpoint", "full"], &d));
    // eval and generate to a full stdout: the I/O exit code, no panic.
    let o = command(&["eval", "--checkpoint", "full"], &d)
        .stdout(Stdio::from(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        ))
        .output()
        .unwrap();
    assert_eq!(code(&o), 4, "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_full_disk_fails_the_save_and_keeps_the_previous_checkpoint() {
    let d = scratch("full-disk");
    setup(&d);
    ok(&lsnn(
        &[
            "train",
            "--config",
            "config.json",
            "--data",
            "data.txt",
            "--out",
            "run",
            "--max-batches",
            "2",
        ],
        &d,
    ));
    let before = current_files(&d.join("run"));
    // A file-size limit (RLIMIT_FSIZE) of a few KiB, with SIGXFSZ ignored so that writes fail
    // with EFBIG as on a full disk.
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f 8; exec '{BIN}' train --resume run --max-batches 4"
        ))
        .current_dir(&d)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 4, "{e}");
    assert!(
        e.contains("model.safetensors") || e.contains("save failed"),
        "{e}"
    );
    assert_eq!(
        current_files(&d.join("run")),
        before,
        "the previous checkpoint changed"
    );
    assert!(
        debris(&d.join("run")).is_empty(),
        "{:?}",
        debris(&d.join("run"))
    );
    let sets = std::fs::read_dir(d.join("run"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("ckpt-"))
        .count();
    assert_eq!(sets, 1, "the failed save left a set behind");
    // Without the limit the run continues.
    ok(&lsnn(
        &["train", "--resume", "run", "--max-batches", "4"],
        &d,
    ));
    assert_eq!(step_of(&d.join("run")), 1);
}

#[test]
fn an_existing_run_is_never_silently_replaced() {
    let d = scratch("replace");
    setup(&d);
    short_run(&d, "run");
    let old = current_set(&d.join("run"));
    let o = lsnn(
        &[
            "train",
            "--config",
            "config.json",
            "--data",
            "data.txt",
            "--out",
            "run",
        ],
        &d,
    );
    let e = err(&o);
    assert_eq!(code(&o), 2);
    assert!(
        e.contains("already holds a run") && e.contains("--overwrite"),
        "{e}"
    );
    assert_eq!(current_set(&d.join("run")), old);
    // --overwrite replaces it: the old sets go once the new run's first set is current.
    ok(&lsnn(
        &[
            "train",
            "--config",
            "config.json",
            "--data",
            "data.txt",
            "--out",
            "run",
            "--overwrite",
            "--epochs",
            "1",
        ],
        &d,
    ));
    assert_ne!(current_set(&d.join("run")), old);
    assert!(!old.exists());
}

#[test]
fn resuming_from_a_set_writes_to_its_run_directory() {
    let d = scratch("resume-set");
    setup(&d);
    ok(&lsnn(
        &[
            "train",
            "--config",
            "config.json",
            "--data",
            "data.txt",
            "--out",
            "run",
            "--max-batches",
            "3",
        ],
        &d,
    ));
    let set = current_set(&d.join("run"));
    let set_arg = format!("run/{}", set.file_name().unwrap().to_string_lossy());
    ok(&lsnn(
        &["train", "--resume", &set_arg, "--max-batches", "6"],
        &d,
    ));
    // The new checkpoint is the run's, not nested in the old set: the run directory holds one
    // set, the new one, and the old set (this run's, older) was retired by retention.
    let sets: Vec<_> = std::fs::read_dir(d.join("run"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("ckpt-"))
        .collect();
    assert_eq!(sets.len(), 1, "{sets:?}");
    assert_ne!(current_set(&d.join("run")), set);
    assert!(!set.exists(), "the old set was retired, not written into");
    ok(&lsnn(&["eval", "--checkpoint", "run"], &d));
    let s: serde_json::Value = serde_json::from_slice(
        &std::fs::read(current_set(&d.join("run")).join("trainer_state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(s["batches_seen"], 6);
}

#[test]
fn runs_that_would_train_nothing_say_so_and_write_nothing() {
    let d = scratch("nothing");
    setup(&d);
    for args in [
        &[
            "train",
            "--config",
            "config.json",
            "--data",
            "data.txt",
            "--out",
            "zero",
            "--epochs",
            "0",
        ][..],
        &[
            "train",
            "--config",
            "config.json",
            "--data",
            "data.txt",
            "--out",
            "zero",
            "--max-batches",
            "0",
        ][..],
    ] {
        let o = lsnn(args, &d);
        let e = err(&o);
        assert_eq!(code(&o), 2, "{e}");
        assert!(e.contains("trains nothing"), "{e}");
        assert!(!d.join("zero").exists(), "{args:?} wrote something");
    }
    // A finished run resumed: nothing to train, said, non-zero.
    short_run(&d, "done");
    let o = lsnn(&["train", "--resume", "done"], &d);
    let e = err(&o);
    assert_eq!(code(&o), 2);
    assert!(e.contains("nothing to train"), "{e}");
}

#[test]
fn huge_requests_are_refused_before_allocating() {
    let d = scratch("huge");
    setup(&d);
    short_run(&d, "run");
    let g = lsnn(
        &[
            "generate",
            "--checkpoint",
            "run",
            "--prompt",
            "a",
            "--max-tokens",
            "18446744073709551615",
        ],
        &d,
    );
    assert_eq!(code(&g), 2);
    assert!(err(&g).contains("max_position_embeddings"));
    let g = lsnn(
        &[
            "generate",
            "--checkpoint",
            "run",
            "--prompt",
            "a",
            "--max-tokens",
            "18446744073709551616",
        ],
        &d,
    );
    assert_eq!(code(&g), 2, "a number beyond u64 is a usage error");
    // hidden_dim 10^12 with a budget: a bound, not an abort in allocation.
    let mut v: serde_json::Value = serde_json::from_str(support::CONFIG).unwrap();
    v["hidden_dim"] = serde_json::json!(1_000_000_000_000u64);
    std::fs::write(d.join("huge.json"), v.to_string()).unwrap();
    let o = lsnn(
        &[
            "train",
            "--config",
            "huge.json",
            "--data",
            "data.txt",
            "--out",
            "h",
            "--memory-budget",
            "1GiB",
        ],
        &d,
    );
    let e = err(&o);
    assert_eq!(code(&o), 2, "{e}");
    assert!(e.contains("hidden_dim") && e.contains("at most"), "{e}");
    // Parameters that fit (a few MiB) but a step that does not (long windows, a big batch).
    let mut v: serde_json::Value = serde_json::from_str(support::CONFIG).unwrap();
    v["sequence_length"] = 4096.into();
    v["max_position_embeddings"] = 4096.into();
    v["batch_size"] = 512.into();
    std::fs::write(d.join("step.json"), v.to_string()).unwrap();
    let text: String = (0..3000)
        .map(|i| format!("line {i} of a longer text\n"))
        .collect();
    std::fs::write(d.join("long.txt"), text).unwrap();
    let o = lsnn(
        &[
            "train",
            "--config",
            "step.json",
            "--data",
            "long.txt",
            "--out",
            "s",
            "--memory-budget",
            "1GiB",
        ],
        &d,
    );
    let e = err(&o);
    assert_eq!(code(&o), 2, "{e}");
    assert!(e.contains("training step's activations"), "{e}");
    assert!(!d.join("s").join("CURRENT").exists());
}

#[test]
fn a_bad_input_message_does_not_grow_with_the_input() {
    let d = scratch("long-message");
    setup(&d);
    let key = "k".repeat(100_000);
    std::fs::write(d.join("bad.json"), format!("{{\"{key}\": 1}}")).unwrap();
    let o = lsnn(&["train", "--config", "bad.json", "--out", "r"], &d);
    let e = err(&o);
    assert_eq!(code(&o), 2);
    assert!(e.len() < 400, "{} bytes", e.len());
    assert!(e.contains("unknown config field"), "{e}");
}

/// A copy of the run's current set with `edit` applied to it, as a run of its own.
fn edited_copy(d: &Path, from: &str, to: &str, edit: impl FnOnce(&Path)) {
    let src = current_set(&d.join(from));
    let name = src.file_name().unwrap().to_owned();
    let dst = d.join(to).join(&name);
    copy_dir(&src, &dst);
    std::fs::write(
        d.join(to).join("CURRENT"),
        format!("{}\n", name.to_string_lossy()),
    )
    .unwrap();
    edit(&dst);
}

/// `resume`, `eval` and `generate` of `run` all fail with exit code 2 and a message containing
/// every one of `words`.
fn every_loader_refuses(d: &Path, run: &str, words: &[&str]) {
    for args in [
        vec!["train", "--resume", run],
        vec!["eval", "--checkpoint", run],
        vec![
            "generate",
            "--checkpoint",
            run,
            "--prompt",
            "a",
            "--max-tokens",
            "1",
        ],
    ] {
        let o = lsnn(&args, d);
        let e = err(&o);
        assert_eq!(code(&o), 2, "{args:?}: {e}");
        for w in words {
            assert!(e.contains(w), "{args:?}: {w:?} not in {e}");
        }
    }
}

#[test]
fn every_loader_verifies_a_set_the_same_way() {
    let d = scratch("verify");
    setup(&d);
    ok(&lsnn(
        &[
            "train",
            "--config",
            "config.json",
            "--data",
            "data.txt",
            "--out",
            "run",
            "--max-batches",
            "2",
        ],
        &d,
    ));
    // A bit flipped inside the tensor data (not the header): only the content hash sees it.
    edited_copy(&d, "run", "flipped", |set| {
        let p = set.join("model.safetensors");
        let mut b = std::fs::read(&p).unwrap();
        let at = b.len() - 100;
        b[at] ^= 0x10;
        std::fs::write(&p, b).unwrap();
    });
    every_loader_refuses(&d, "flipped", &["model.safetensors", "corrupted"]);
    // A set without a manifest (set format 1) whose optimizer file lacks a tensor: resume refused
    // it, and eval and generate now refuse it too.
    edited_copy(&d, "run", "lenient", |set| {
        std::fs::remove_file(set.join("MANIFEST.json")).unwrap();
        let p = set.join("optimizer.safetensors");
        let bytes = std::fs::read(&p).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = meta.metadata().clone();
        let mut t =
            candle_core::safetensors::load_buffer(&bytes, &candle_core::Device::Cpu).unwrap();
        let key = t.keys().find(|k| k.starts_with("v.")).unwrap().clone();
        t.remove(&key);
        let out = safetensors::serialize(t.iter().map(|(k, v)| (k.as_str(), v)), meta).unwrap();
        std::fs::write(&p, out).unwrap();
    });
    every_loader_refuses(&d, "lenient", &["optimizer.safetensors", "missing tensor"]);
    // The intact set loads, and an old one says it cannot be verified.
    ok(&lsnn(&["eval", "--checkpoint", "run"], &d));
    edited_copy(&d, "run", "old", |set| {
        std::fs::remove_file(set.join("MANIFEST.json")).unwrap()
    });
    let o = lsnn(&["eval", "--checkpoint", "old"], &d);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("set format 1"));
}

#[test]
fn changed_data_is_refused_and_a_run_works_from_any_directory() {
    let d = scratch("data-path");
    setup(&d);
    ok(&lsnn(
        &[
            "train",
            "--config",
            "config.json",
            "--data",
            "data.txt",
            "--out",
            "run",
            "--max-batches",
            "2",
        ],
        &d,
    ));
    // From another working directory: the run recorded the data's absolute path.
    let sub = d.join("elsewhere");
    std::fs::create_dir_all(&sub).unwrap();
    ok(&lsnn(&["eval", "--checkpoint", "../run"], &sub));
    ok(&lsnn(
        &["train", "--resume", "../run", "--max-batches", "3"],
        &sub,
    ));
    // The data file edited in place at the same length.
    let mut b = std::fs::read(d.join("data.txt")).unwrap();
    b[50] = if b[50] == b'q' { b'z' } else { b'q' };
    std::fs::write(d.join("data.txt"), b).unwrap();
    for args in [
        vec!["train", "--resume", "run"],
        vec!["eval", "--checkpoint", "run"],
    ] {
        let o = lsnn(&args, &d);
        let e = err(&o);
        assert_eq!(code(&o), 2, "{e}");
        assert!(
            e.contains("data.txt") && e.contains("changed"),
            "{args:?}: {e}"
        );
    }
}

#[test]
fn a_round_one_set_loads_with_a_notice() {
    let d = scratch("round-one");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lsnn-train/tests/fixtures/ckpt_v1");
    copy_dir(&src.join("run"), &d.join("v1"));
    let o = lsnn(&["eval", "--checkpoint", "v1"], &d);
    let out = ok(&o);
    assert!(out.contains("val loss"), "{out}");
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(
        said.contains("note:") && said.contains("set format 1"),
        "{said}"
    );
}
