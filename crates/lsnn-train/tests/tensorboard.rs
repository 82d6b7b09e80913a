//! TensorBoard event files (design §10.1): lsnn's records against those TensorBoard's own writer
//! wrote for the same scalars (`tests/fixtures/tensorboard/`, from
//! `scripts/fixtures/gen_tensorboard.py`), byte for byte with their CRCs; the reader's checks;
//! the file names' order; the trainer's events as scalars, a resume's restart record included.

use lsnn_train::lsnn_memory::{MemorySource, MemoryUsage};
use lsnn_train::record::tensorboard::{
    frame, read_event_file, scalars_as_shown, split_records, EventFileWriter, EventPayload,
    SessionStatus, TbEvent, TensorBoardRecorder, FILE_PREFIX, FILE_VERSION, WRITER_NAME,
};
use lsnn_train::{EvalResult, Event, TrainError};
use std::path::{Path, PathBuf};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tensorboard");

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lsnn-tb-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn only_file(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

struct Scalar {
    tag: String,
    step: i64,
    value: f32,
    wall_time: f64,
}

fn scalars(v: &serde_json::Value) -> Vec<Scalar> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| Scalar {
            tag: s["tag"].as_str().unwrap().to_owned(),
            step: s["step"].as_i64().unwrap(),
            value: f32::from_bits(s["value_bits"].as_u64().unwrap() as u32),
            wall_time: s["wall_time"].as_f64().unwrap(),
        })
        .collect()
}

#[test]
fn records_equal_tensorboards_own_writer_byte_for_byte() {
    let theirs = std::fs::read(format!("{FIXTURE}/scalars.tfevents")).unwrap();
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{FIXTURE}/scalars.json")).unwrap())
            .unwrap();
    let before = scalars(&spec["scalars"]);
    let after = scalars(&spec["after_restart"]);
    let (restart_step, restart_time) = (
        spec["restart"]["step"].as_i64().unwrap(),
        spec["restart"]["wall_time"].as_f64().unwrap(),
    );

    let dir = scratch("fixture");
    let header_time = spec["header_wall_time"].as_f64().unwrap();
    let mut w = EventFileWriter::create(&dir, header_time).unwrap();
    for s in &before {
        w.scalar(&s.tag, s.step, s.value, s.wall_time).unwrap();
    }
    w.session_start(restart_step, restart_time).unwrap();
    for s in &after {
        w.scalar(&s.tag, s.step, s.value, s.wall_time).unwrap();
    }
    w.flush().unwrap();
    let ours = std::fs::read(w.path()).unwrap();

    let theirs_records = split_records(&theirs).unwrap();
    let ours_records = split_records(&ours).unwrap();
    assert!(!theirs_records.truncated && !ours_records.truncated);
    assert_eq!(
        theirs_records.payloads.len(),
        spec["records"].as_u64().unwrap() as usize
    );
    assert_eq!(ours_records.payloads.len(), theirs_records.payloads.len());
    // The first record names its writer, so only it may differ: same version and time.
    let (h_theirs, h_ours) = (
        TbEvent::decode(theirs_records.payloads[0]).unwrap(),
        TbEvent::decode(ours_records.payloads[0]).unwrap(),
    );
    assert_eq!(h_theirs.wall_time, header_time);
    assert_eq!(h_ours.wall_time, header_time);
    match (&h_theirs.payload, &h_ours.payload) {
        (
            EventPayload::FileVersion {
                version: v1,
                writer: w1,
            },
            EventPayload::FileVersion {
                version: v2,
                writer: w2,
            },
        ) => {
            assert_eq!((v1.as_str(), v2.as_str()), (FILE_VERSION, FILE_VERSION));
            assert_eq!(w1, "tensorboard.summary.writer.event_file_writer");
            assert_eq!(w2, WRITER_NAME);
        }
        other => panic!("headers: {other:?}"),
    }
    // Every other record, framed, CRCs included: the same bytes.
    let header_len = |bytes: &[u8]| 16 + split_records(bytes).unwrap().payloads[0].len();
    assert_eq!(
        &ours[header_len(&ours)..],
        &theirs[header_len(&theirs)..],
        "the scalar and restart records differ from TensorBoard's"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tensorboards_file_reads_back_with_every_value() {
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{FIXTURE}/scalars.json")).unwrap())
            .unwrap();
    let events = read_event_file(Path::new(&format!("{FIXTURE}/scalars.tfevents"))).unwrap();
    let before = scalars(&spec["scalars"]);
    for (e, s) in events[1..].iter().zip(&before) {
        assert_eq!((e.step, e.wall_time), (s.step, s.wall_time));
        let EventPayload::Scalars(v) = &e.payload else {
            panic!("{e:?}")
        };
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].0, s.tag);
        assert_eq!(v[0].1.to_bits(), s.value.to_bits(), "{}", s.tag);
    }
    let restart = &events[1 + before.len()];
    assert_eq!(
        restart.payload,
        EventPayload::SessionLog(SessionStatus::Start)
    );
    assert_eq!(restart.step, spec["restart"]["step"].as_i64().unwrap());
}

/// TensorBoard's `EventAccumulator` shows the fixture's train/loss at steps 0, 1, 3, 4 (the
/// fixture script asserts it): the restart at step 3 dropped 300 and 301.
#[test]
fn scalars_as_shown_applies_the_restart_as_tensorboard_does() {
    let dir = scratch("shown");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        format!("{FIXTURE}/scalars.tfevents"),
        dir.join("events.out.tfevents.1.fixture"),
    )
    .unwrap();
    std::fs::write(dir.join("notes.txt"), b"not an event file").unwrap();
    let shown = scalars_as_shown(&dir).unwrap();
    let steps: Vec<i64> = shown
        .iter()
        .filter(|(t, _, _)| t == "train/loss")
        .map(|(_, s, _)| *s)
        .collect();
    assert_eq!(steps, [0, 1, 3, 4]);
    // Every other tag written before the restart at a step ≥ 3 is gone too.
    assert!(shown.iter().all(|(t, s, _)| *s < 3 || t == "train/loss"));
    assert_eq!(
        shown.len(),
        4 + 2,
        "four scalars before step 3, two after the restart"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_changed_byte_is_an_error_naming_the_record_and_a_cut_record_ends_the_file() {
    let bytes = std::fs::read(format!("{FIXTURE}/scalars.tfevents")).unwrap();
    let records = split_records(&bytes).unwrap();
    // Flip one payload byte of record 3, then one byte of its length.
    let start3: usize = records.payloads[..3].iter().map(|p| 16 + p.len()).sum();
    let mut bad = bytes.clone();
    bad[start3 + 12 + 2] ^= 0x01;
    let e = split_records(&bad).unwrap_err();
    assert!(e.contains("record 3") && e.contains("payload's CRC"), "{e}");
    let mut bad = bytes.clone();
    bad[start3] ^= 0x01;
    let e = split_records(&bad).unwrap_err();
    assert!(e.contains("record 3") && e.contains("length's CRC"), "{e}");
    // Through the file reader: a typed error with the path.
    let dir = scratch("corrupt");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("events.out.tfevents.bad");
    std::fs::write(&path, &bad).unwrap();
    match read_event_file(&path) {
        Err(TrainError::Record { path: p, message }) => {
            assert_eq!(p, path);
            assert!(message.contains("record 3"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Cut inside record 5: records 0..5 are kept, the cut is reported.
    let start5: usize = records.payloads[..5].iter().map(|p| 16 + p.len()).sum();
    for cut in [start5 + 1, start5 + 12, start5 + 20] {
        let r = split_records(&bytes[..cut]).unwrap();
        assert!(r.truncated);
        assert_eq!(r.payloads, &records.payloads[..5]);
    }
    // A payload that is not an Event: an error.
    std::fs::write(&path, frame(&[0x0B])).unwrap();
    assert!(matches!(
        read_event_file(&path),
        Err(TrainError::Record { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_new_file_sorts_after_those_already_in_the_directory() {
    let dir = scratch("order");
    let a = EventFileWriter::create(&dir, 1_000.0).unwrap();
    // Same second, and a clock that went back: still later in name order.
    let b = EventFileWriter::create(&dir, 1_000.0).unwrap();
    let c = EventFileWriter::create(&dir, 10.0).unwrap();
    let names: Vec<String> = [&a, &b, &c]
        .iter()
        .map(|w| w.path().file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    assert!(
        names.iter().all(|n| n.starts_with(FILE_PREFIX)),
        "{names:?}"
    );
    assert!(names[0] < names[1] && names[1] < names[2], "{names:?}");
    assert!(names[0].starts_with("events.out.tfevents.0000001000."));
    std::fs::remove_dir_all(&dir).unwrap();
}

fn batch(loss: f64) -> Event {
    Event::Batch {
        epoch: 0,
        batch: 1,
        of: 4,
        step: 1,
        loss,
        lr: 1e-3,
        tokens_per_s: 100.0,
        live_bytes: 4096,
    }
}

fn start(resumed_at: Option<u64>) -> Event {
    Event::Start {
        epochs: 1,
        batches_per_epoch: 4,
        parameters: 10,
        resumed_at,
        baseline: None,
    }
}

#[test]
fn the_recorder_writes_the_trainers_events_and_a_resume_drops_the_orphaned_steps() {
    let dir = scratch("recorder");
    let mut r = TensorBoardRecorder::create(&dir).unwrap();
    r.on_event(&start(None)).unwrap();
    for loss in [4.0, 3.0] {
        r.on_event(&batch(loss)).unwrap();
    }
    r.on_event(&Event::Memory {
        label: "x".into(),
        usage: MemoryUsage {
            live_bytes: 1,
            peak_bytes: 2048,
            rss_bytes: 1 << 20,
            source: MemorySource::CountingAllocator,
        },
        released: None,
    })
    .unwrap();
    r.on_event(&Event::EpochEnd {
        epoch: 0,
        train_loss: 3.5,
        eval: EvalResult {
            metrics: vec![("val_loss".into(), 2.5), ("accuracy".into(), 0.75)],
            examples: 8,
            firing: Vec::new(),
        },
    })
    .unwrap();
    // Two batches past the checkpoint (at 2), then the process dies.
    r.on_event(&batch(9.0)).unwrap();
    r.on_event(&batch(9.5)).unwrap();
    r.finish().unwrap();
    let first = only_file(&dir);
    let events = read_event_file(&first).unwrap();
    assert!(matches!(
        events[0].payload,
        EventPayload::FileVersion { .. }
    ));

    // The resume restarts at batch 3.
    let mut r = TensorBoardRecorder::create(&dir).unwrap();
    r.on_event(&start(Some(2))).unwrap();
    r.on_event(&batch(2.75)).unwrap();
    r.finish().unwrap();
    let resumed = read_event_file(&{
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert_eq!(files[0], first, "the resumed file sorts after the first");
        files.pop().unwrap()
    })
    .unwrap();
    assert_eq!(
        (resumed[1].step, &resumed[1].payload),
        (3, &EventPayload::SessionLog(SessionStatus::Start))
    );

    let shown = scalars_as_shown(&dir).unwrap();
    let of = |tag: &str| -> Vec<(i64, f32)> {
        shown
            .iter()
            .filter(|(t, _, _)| t == tag)
            .map(|(_, s, v)| (*s, *v))
            .collect()
    };
    assert_eq!(of("train/loss"), [(1, 4.0), (2, 3.0), (3, 2.75)]);
    assert_eq!(of("train/lr"), [(1, 1e-3), (2, 1e-3), (3, 1e-3)]);
    assert_eq!(of("memory/live_bytes").len(), 3);
    assert_eq!(of("memory/rss_bytes"), [(2, 1048576.0)]);
    assert_eq!(of("memory/peak_live_bytes"), [(2, 2048.0)]);
    assert_eq!(of("epoch/train_loss"), [(2, 3.5)]);
    assert_eq!(of("val/val_loss"), [(2, 2.5)]);
    assert_eq!(of("val/accuracy"), [(2, 0.75)]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unwritable_directory_is_a_typed_error() {
    let dir = scratch("unwritable");
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    std::fs::write(&dir, b"a file, not a directory").unwrap();
    match TensorBoardRecorder::create(&dir) {
        Err(TrainError::Record { path, message }) => {
            assert_eq!(path, dir);
            assert!(message.contains("expected a directory"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_file(&dir).unwrap();
}
