//! Hostile use of `lsnn` (design §8.3), each case reproduced in real processes: two trainers on
//! one directory, resuming from a set, replacing a run, closed and full stdout, a full disk,
//! signals, huge or empty requests, and the exit codes README documents. Corrupted sets and
//! changed data are `integrity.rs`'s.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use support::{code, current_files, current_set, err, lsnn, ok, scratch, setup, train_tiny};

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
    train_tiny(&d, "run", &["--max-batches", "2"]);
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
    train_tiny(&d, "run", &[]);
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
    train_tiny(&d, "run", &["--overwrite", "--epochs", "1"]);
    assert_ne!(current_set(&d.join("run")), old);
    assert!(!old.exists());
}

#[test]
fn resuming_from_a_set_writes_to_its_run_directory() {
    let d = scratch("resume-set");
    setup(&d);
    train_tiny(&d, "run", &["--max-batches", "3"]);
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
    train_tiny(&d, "done", &[]);
    let o = lsnn(&["train", "--resume", "done"], &d);
    let e = err(&o);
    assert_eq!(code(&o), 2);
    assert!(e.contains("nothing to train"), "{e}");
}

#[test]
fn huge_requests_are_refused_before_allocating() {
    let d = scratch("huge");
    setup(&d);
    train_tiny(&d, "run", &[]);
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
    // Parameters that fit (a few MiB) but a step that does not (long windows, a big batch in
    // one shard: the estimate counts the rows in flight, a shard's rows times the threads).
    let mut v: serde_json::Value = serde_json::from_str(support::CONFIG).unwrap();
    v["sequence_length"] = 4096.into();
    v["max_position_embeddings"] = 4096.into();
    v["batch_size"] = 512.into();
    v["shard_rows"] = 512.into();
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
