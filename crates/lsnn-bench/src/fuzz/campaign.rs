//! A fuzz campaign without coverage feedback: the seeds of a target, then inputs made from them
//! by a few mutations each (and now and then plain random bytes), every one run under
//! `catch_unwind`. A panic is a failure: its input is kept under the crash directory to become a
//! regression test. So is a refusal whose message outgrew [`super::MAX_MESSAGE_BYTES`].

use super::mutate::{mutate, random_bytes, Rng};
use super::{CheckpointHarness, Outcome, Target};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What a campaign ran and found.
#[derive(Debug, Clone)]
pub struct Report {
    /// The target.
    pub target: Target,
    /// Inputs run (seeds included).
    pub inputs: u64,
    /// Inputs the reader accepted.
    pub accepted: u64,
    /// Inputs the reader refused with a typed error.
    pub refused: u64,
    /// Inputs that panicked, as saved (or, without a crash directory, their lengths).
    pub panics: Vec<String>,
    /// Refusals whose message was longer than allowed: the length and where the input went.
    pub oversized: Vec<(usize, String)>,
    /// The longest refusal message seen, in bytes.
    pub longest_message: usize,
    /// Wall time of the campaign.
    pub seconds: f64,
}

impl Report {
    /// Whether the campaign found nothing wrong.
    pub fn clean(&self) -> bool {
        self.panics.is_empty() && self.oversized.is_empty()
    }
}

/// The valid files a target's inputs start from.
pub fn seeds(target: Target, harness: Option<&CheckpointHarness>) -> Vec<Vec<u8>> {
    match target {
        Target::Config => {
            let own = lsnn_train::RunConfig {
                model: lsnn_train::lsnn_layers::ModelConfig::default(),
                train: lsnn_train::TrainConfig::default(),
            }
            .to_json()
            .expect("the default config serialises");
            vec![
                own.into_bytes(),
                include_bytes!("../../../lsnn-train/tests/fixtures/orig_config_full.json").to_vec(),
                include_bytes!("../../../lsnn-train/tests/fixtures/orig_config_sample.json")
                    .to_vec(),
                include_bytes!("../../../../docs/configs/ncp.json").to_vec(),
            ]
        }
        Target::Text => {
            let text: String = (0..40).map(|i| format!("{i:03} fish swim\n")).collect();
            let mut a = vec![0u8, 16];
            a.extend_from_slice(text.as_bytes());
            let mut b = vec![0u8, 3];
            b.extend_from_slice("héllo wörld ✓ ".repeat(4).as_bytes());
            vec![a, b]
        }
        Target::Arrays => {
            let with_task = |t: u8, bytes: &[u8]| [&[t][..], bytes].concat();
            vec![
                with_task(
                    0,
                    include_bytes!("../../../lsnn-train/tests/fixtures/arrays/regression.npz"),
                ),
                with_task(
                    0,
                    include_bytes!(
                        "../../../lsnn-train/tests/fixtures/arrays/regression.safetensors"
                    ),
                ),
                with_task(
                    1,
                    include_bytes!("../../../lsnn-train/tests/fixtures/arrays/classification.npz"),
                ),
                with_task(
                    1,
                    include_bytes!(
                        "../../../lsnn-train/tests/fixtures/arrays/classification.safetensors"
                    ),
                ),
                with_task(
                    0,
                    include_bytes!("../../../lsnn-train/tests/fixtures/arrays/dtypes.npz"),
                ),
            ]
        }
        Target::Checkpoint => harness
            .map(|h| {
                h.originals()
                    .flat_map(|(i, bytes)| {
                        // Each file unchanged and replaced whole (with and without the manifest
                        // rewritten), and a small edit of it.
                        [
                            [&[i | 0x08][..], bytes].concat(),
                            [&[i | 0x18][..], bytes].concat(),
                            vec![i | 0x10, 0, 0, 1],
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Runs one input through `target`'s harness.
pub fn run_one(target: Target, input: &[u8], harness: Option<&CheckpointHarness>) -> Outcome {
    match target {
        Target::Config => super::config(input),
        Target::Text => super::text(input),
        Target::Arrays => super::arrays(input),
        Target::Checkpoint => match harness {
            Some(h) => h
                .run(input)
                .unwrap_or_else(|e| Outcome::Refused(format!("harness I/O: {e}"))),
            None => Outcome::Refused("no checkpoint harness".into()),
        },
    }
}

/// Runs the seeds of `target` and then `n` mutated inputs from `seed`; panicking inputs go to
/// `crash_dir` when given.
pub fn campaign(
    target: Target,
    n: u64,
    seed: u64,
    crash_dir: Option<&Path>,
) -> anyhow::Result<Report> {
    let harness = match target {
        Target::Checkpoint => Some(CheckpointHarness::new(&std::env::temp_dir())?),
        _ => None,
    };
    let seeds = seeds(target, harness.as_ref());
    anyhow::ensure!(!seeds.is_empty(), "no seeds for {}", target.name());
    let mut rng = Rng::new(seed);
    let mut report = Report {
        target,
        inputs: 0,
        accepted: 0,
        refused: 0,
        panics: Vec::new(),
        oversized: Vec::new(),
        longest_message: 0,
        seconds: 0.0,
    };
    // Accepted mutants join the pool the next inputs start from (a little of what coverage
    // feedback would keep).
    let mut pool = seeds.clone();
    let started = Instant::now();
    let total = seeds.len() as u64 + n;
    for i in 0..total {
        let input = if (i as usize) < seeds.len() {
            seeds[i as usize].clone()
        } else if rng.below(16) == 0 {
            random_bytes(512, &mut rng)
        } else {
            let mut x = pool[rng.below(pool.len())].clone();
            let other = &pool[rng.below(pool.len())];
            for _ in 0..1 + rng.below(4) {
                mutate(&mut x, other, &mut rng);
            }
            x
        };
        report.inputs += 1;
        match catch_unwind(AssertUnwindSafe(|| {
            run_one(target, &input, harness.as_ref())
        })) {
            Ok(Outcome::Accepted) => {
                report.accepted += 1;
                if pool.len() < 256 {
                    pool.push(input);
                }
            }
            Ok(o @ Outcome::Refused(_)) => {
                report.refused += 1;
                if let Outcome::Refused(m) = &o {
                    report.longest_message = report.longest_message.max(m.len());
                }
                if let Some(len) = o.oversized_message() {
                    let at = save(crash_dir, target, "long-message", &input)?;
                    report.oversized.push((len, at));
                }
            }
            Err(_) => {
                report
                    .panics
                    .push(save(crash_dir, target, "panic", &input)?);
                if let Some(h) = &harness {
                    h.restore()?;
                }
            }
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Keeps a failing input under `dir` and says where (or, without a directory, its length).
fn save(dir: Option<&Path>, target: Target, kind: &str, input: &[u8]) -> anyhow::Result<String> {
    let Some(dir) = dir else {
        return Ok(format!("{kind}: an input of {} bytes", input.len()));
    };
    std::fs::create_dir_all(dir)?;
    let digest = lsnn_train::checkpoint::manifest::sha256_hex(input);
    let path: PathBuf = dir.join(format!("{}-{kind}-{}.bin", target.name(), &digest[..16]));
    std::fs::write(&path, input)?;
    Ok(path.display().to_string())
}
