//! The built-in sequence tasks (design §8.5): generated from a seed, no downloads, each
//! learnable in minutes on two cores and each needing both order and memory — so that the
//! time-shuffled control ([`super::sequence::Split::shuffle_time`]) of the same data leaves a
//! model near its trivial baseline.
//!
//! - **regression — a driven two-mass oscillator, irregularly sampled.** Two masses on springs,
//!   coupled, damped, pushed by two forces held constant between samples; the samples are
//!   `dt` ∈ [0.5, 1.5] apart (the CfC's time spans). Features: the forces of the interval that
//!   ends at each sample (2); targets: the masses' positions at the sample (2). A position is
//!   the response to the forces of the last few periods (memory), in their order.
//! - **classification — the order of three events.** Four channels of noise; channels 0, 1 and
//!   2 each carry one pulse, at three distinct random positions; the class is which of the six
//!   orders they came in. Shuffling time keeps every pulse and destroys the order, so the label
//!   is then independent of the input; the readout at the end must remember the first pulse.

use super::sequence::{Encoding, SeqSource, SequenceData, Split, SplitTargets};
use crate::error::{Result, TrainError};
use lsnn_layers::spikegen::SpikeEncoding;
use lsnn_layers::{SeededRng, Task};

/// Sequences and length of the regression task.
pub const OSC_TRAIN: usize = 1600;
/// Held-out sequences of the regression task.
pub const OSC_VAL: usize = 200;
/// Positions per regression sequence.
pub const OSC_LEN: usize = 48;
/// Sequences of the classification task.
pub const ORDER_TRAIN: usize = 2400;
/// Held-out sequences of the classification task.
pub const ORDER_VAL: usize = 400;
/// Positions per classification sequence.
pub const ORDER_LEN: usize = 24;

/// The two-mass oscillator: state [p1, v1, p2, v2], forces held over `dt`, RK4 in steps of at
/// most 0.05.
fn oscillate(state: &mut [f64; 4], force: [f64; 2], dt: f64) {
    const K1: f64 = 1.2;
    const K2: f64 = 0.8;
    const K12: f64 = 0.5;
    const C: f64 = 0.15;
    let deriv = |s: &[f64; 4]| -> [f64; 4] {
        let (p1, v1, p2, v2) = (s[0], s[1], s[2], s[3]);
        [
            v1,
            -K1 * p1 - C * v1 + K12 * (p2 - p1) + force[0],
            v2,
            -K2 * p2 - C * v2 + K12 * (p1 - p2) + force[1],
        ]
    };
    let steps = (dt / 0.05).ceil().max(1.0) as usize;
    let h = dt / steps as f64;
    for _ in 0..steps {
        let k1 = deriv(state);
        let add = |s: &[f64; 4], k: &[f64; 4], a: f64| -> [f64; 4] {
            [
                s[0] + a * k[0],
                s[1] + a * k[1],
                s[2] + a * k[2],
                s[3] + a * k[3],
            ]
        };
        let k2 = deriv(&add(state, &k1, h / 2.0));
        let k3 = deriv(&add(state, &k2, h / 2.0));
        let k4 = deriv(&add(state, &k3, h));
        for i in 0..4 {
            state[i] += h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
        }
    }
}

/// `n` oscillator sequences.
fn oscillator_split(n: usize, rng: &mut SeededRng) -> Split {
    let l = OSC_LEN;
    let (mut x, mut y, mut spans) = (
        Vec::with_capacity(n * l * 2),
        Vec::with_capacity(n * l * 2),
        Vec::with_capacity(n * l),
    );
    for _ in 0..n {
        // A warm-up under random forces so each sequence starts mid-motion.
        let mut state = [0.0; 4];
        for _ in 0..10 {
            oscillate(&mut state, [rng.normal(), rng.normal()], 1.0);
        }
        let mut force = [0.0; 2];
        let mut hold = 0usize;
        for _ in 0..l {
            if hold == 0 {
                force = [rng.normal(), rng.normal()];
                hold = 1 + rng.below(std::num::NonZeroU64::new(6).expect("6 > 0")) as usize;
            }
            hold -= 1;
            let dt = 0.5 + rng.next_f64();
            oscillate(&mut state, force, dt);
            x.extend([force[0] as f32, force[1] as f32]);
            y.extend([state[0] as f32, state[2] as f32]);
            spans.push(dt as f32);
        }
    }
    Split {
        n,
        l,
        f: 2,
        x,
        y: Some(SplitTargets::Values { data: y, width: 2 }),
        spans: Some(spans),
        lengths: None,
    }
}

/// `n` event-order sequences.
fn order_split(n: usize, rng: &mut SeededRng) -> Split {
    let (l, f) = (ORDER_LEN, 4);
    let mut x = Vec::with_capacity(n * l * f);
    let mut y = Vec::with_capacity(n);
    let positions = std::num::NonZeroU64::new(l as u64 - 2).expect("L > 2");
    for _ in 0..n {
        let mut row: Vec<f32> = (0..l * f).map(|_| (0.3 * rng.normal()) as f32).collect();
        // Three distinct positions, one per channel.
        let mut at = [0usize; 3];
        for c in 0..3 {
            loop {
                let p = rng.below(positions) as usize;
                if !at[..c].contains(&p) {
                    at[c] = p;
                    break;
                }
            }
            row[at[c] * f + c] += 2.0;
        }
        // The class: the rank pattern of the three positions, 0..6.
        let mut order = [0usize, 1, 2];
        order.sort_by_key(|&c| at[c]);
        let class = match order {
            [0, 1, 2] => 0,
            [0, 2, 1] => 1,
            [1, 0, 2] => 2,
            [1, 2, 0] => 3,
            [2, 0, 1] => 4,
            _ => 5,
        };
        x.extend(row);
        y.push(class);
    }
    Split {
        n,
        l,
        f,
        x,
        y: Some(SplitTargets::Classes(y)),
        spans: None,
        lengths: None,
    }
}

/// The built-in data of `task` for `seed` (the time-shuffled control when `shuffle_time`),
/// spike encoded with `spike` when given (its draws seeded by `seed`).
pub fn builtin(
    task: Task,
    seed: u64,
    shuffle_time: bool,
    spike: Option<SpikeEncoding>,
) -> Result<SequenceData> {
    let mut rng = SeededRng::new(seed ^ 0xB17_7A5C);
    let (train, val) = match task {
        Task::Regression => (
            oscillator_split(OSC_TRAIN, &mut rng),
            oscillator_split(OSC_VAL, &mut rng),
        ),
        Task::Classification => (
            order_split(ORDER_TRAIN, &mut rng),
            order_split(ORDER_VAL, &mut rng),
        ),
        Task::Llm => {
            return Err(TrainError::Config {
                field: "task_type".into(),
                message: "\"llm\" has its own built-in data (the arithmetic task)".into(),
            })
        }
    };
    let source = SeqSource::Builtin {
        task: task.name().into(),
        seed,
        shuffle_time,
    };
    SequenceData::from_splits(
        task,
        train,
        val,
        None,
        shuffle_time.then_some(seed),
        source,
        spike.map(|s| Encoding::new(s, seed)),
    )
    .map_err(|message| TrainError::Config {
        field: "built-in data".into(),
        message,
    })
}
