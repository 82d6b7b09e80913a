//! Spike encoding as a data-side option (design §8.4): a sequence task's features turned into
//! spikes by one of lsnn-layers' encoders (snnTorch's `spikegen`) as each batch is built, so a
//! data set holds its features once, not T copies of them.
//!
//! - **rate** and **latency** turn a static row (one position: a classifier's [N, F] file) into
//!   `num_steps` positions; rate also encodes a sequence position by position when `num_steps`
//!   is 1 (snnTorch's `time_var_input`).
//! - **delta** encodes a sequence along its positions and keeps its length.
//!
//! The encoders read the features as the file holds them (no normalisation: a rate's
//! probabilities and a delta's threshold are in the data's own units, as in snnTorch). A rate
//! draws from a generator seeded by the run's seed and the row's own values, so a row has the
//! same spike train in every epoch, in evaluation and in prediction, wherever it sits in a
//! batch, however far a file pads it. Every row is encoded once when the data is loaded, so a
//! value the encoder refuses is a load error naming the array and sequence, never a failure
//! mid-epoch.

use super::split::Split;
use lsnn_layers::spikegen::SpikeEncoding;
use lsnn_layers::{SeededRng, Task};
use serde::{Deserialize, Serialize};

/// An encoder with the seed of its draws, as a run records it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Encoding {
    /// The encoder and its settings.
    pub spike: SpikeEncoding,
    /// The run's seed (rate's draws).
    pub seed: u64,
}

impl Encoding {
    /// `spike` with the run's `seed`.
    pub fn new(spike: SpikeEncoding, seed: u64) -> Self {
        Encoding { spike, seed }
    }

    /// Positions per row after encoding rows of `l` positions.
    pub fn positions(&self, l: usize) -> usize {
        if self.spike.adds_steps() && l == 1 {
            self.spike.num_steps()
        } else {
            l
        }
    }

    /// Checks that `split` (of `task`; its rows are the sequences of the array `array`, named in
    /// messages with their index) can be encoded, and encodes every row once so that a value
    /// the encoder refuses is found now.
    pub fn check(&self, split: &Split, task: Task, array: &str) -> Result<(), String> {
        let name = self.spike.name();
        self.spike
            .validate()
            .map_err(|e| format!("spike_encoding {name}: {e}"))?;
        let steps = self.spike.num_steps();
        match self.spike {
            SpikeEncoding::Latency(_) if split.l > 1 => {
                return Err(format!(
                    "spike_encoding latency: array {array:?} holds sequences of {} positions; \
                     expected static rows (one position, a classifier's [N, F]) — latency codes \
                     a value as a spike time, delta encodes a sequence",
                    split.l
                ))
            }
            SpikeEncoding::Rate(_) if split.l > 1 && steps > 1 => {
                return Err(format!(
                    "spike_encoding rate: num_steps {steps} with array {array:?} holding \
                     sequences of {} positions; expected static rows (one position, a \
                     classifier's [N, F]) to expand into num_steps positions, or num_steps 1 \
                     for one draw per position",
                    split.l
                ))
            }
            SpikeEncoding::Delta(_) if split.l == 1 => {
                return Err(format!(
                    "spike_encoding delta: array {array:?} holds static rows (one position); \
                     expected sequences — delta spikes where a value changes from one position \
                     to the next (rate or latency encode static rows)"
                ))
            }
            _ => {}
        }
        if self.positions(split.l) != split.l {
            if task != Task::Classification {
                return Err(format!(
                    "spike_encoding {name}: num_steps {steps} would turn each row's one position \
                     into {steps}, and a regression's targets are per position; expected a \
                     classification task, or num_steps 1"
                ));
            }
            if split.spans.is_some() {
                return Err(format!(
                    "spike_encoding {name}: time spans (dt) with static rows expanded into \
                     {steps} positions; expected no dt"
                ));
            }
        }
        for r in 0..split.n {
            self.check_range(split, r, array)?;
            self.encode_row(split, r).map_err(|e| {
                format!("spike_encoding {name}: array {array:?}, sequence {r}: {e}")
            })?;
        }
        Ok(())
    }

    /// The values rate and latency read must lie in [0, 1] (rate: gain·x + offset, unless it
    /// saturates): the first that does not, by row, position and feature.
    fn check_range(&self, split: &Split, r: usize, array: &str) -> Result<(), String> {
        let (what, map): (&str, Box<dyn Fn(f64) -> f64>) = match self.spike {
            SpikeEncoding::Rate(c) if !c.saturate => {
                ("gain·x + offset", Box::new(move |x| c.gain * x + c.offset))
            }
            SpikeEncoding::Latency(_) => ("the value", Box::new(|x| x)),
            _ => return Ok(()),
        };
        let f = split.f;
        for t in 0..split.len_of(r) {
            for k in 0..f {
                let v = map(split.x[(r * split.l + t) * f + k] as f64);
                if !(0.0..=1.0).contains(&v) {
                    let hint = match self.spike {
                        SpikeEncoding::Rate(_) => {
                            "scale the data, set gain and offset, or \"saturate\": true"
                        }
                        _ => "scale the data into [0, 1]",
                    };
                    return Err(format!(
                        "spike_encoding {}: array {array:?}, sequence {r}, position {t}, \
                         feature {k}: {what} is {v}; expected a value in [0, 1] ({hint})",
                        self.spike.name()
                    ));
                }
            }
        }
        Ok(())
    }

    /// Row `r` of `split` encoded: `positions(l)` × F values, padded positions 0.
    pub fn encode_row(&self, split: &Split, r: usize) -> lsnn_layers::Result<Vec<f32>> {
        let (l, f) = (split.l, split.f);
        let len = split.len_of(r);
        let row = &split.x[r * l * f..(r + 1) * l * f];
        let cpu = candle_core::Device::Cpu;
        let mut rng = SeededRng::new(self.row_seed(&row[..len * f]));
        let out = if self.spike.adds_steps() && l == 1 {
            // One position in, T out: [F] → [T, F].
            let x = candle_core::Tensor::from_slice(row, f, &cpu)?;
            self.spike.encode(&x, &mut rng)?
        } else {
            // The valid positions, time-major [len, F]: delta along them, or rate with one draw
            // per position ([1, len, F]).
            let x = candle_core::Tensor::from_slice(&row[..len * f], (len, f), &cpu)?;
            self.spike.encode(&x, &mut rng)?
        };
        let mut values = out.flatten_all()?.to_vec1::<f32>()?;
        // Padded positions stay silent.
        values.resize(self.positions(l) * f, 0.0);
        Ok(values)
    }

    /// The seed of a row's draws: the run's seed mixed with the values at the row's valid
    /// positions (and so their count), so that a row's spikes depend neither on where it is
    /// stored or batched nor on how far a file pads it.
    fn row_seed(&self, valid: &[f32]) -> u64 {
        let mut h = self.seed ^ 0x5B1C_E7E0_C0DE_0001 ^ (valid.len() as u64).rotate_left(32);
        for v in valid {
            h ^= v.to_bits() as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01B3);
        }
        h
    }

    /// `part`'s rows encoded, as a split of `positions(l)` positions (spans and lengths kept
    /// where the length is; a static row expanded into T positions is whole).
    pub fn encode(&self, part: &Split) -> lsnn_layers::Result<Split> {
        let positions = self.positions(part.l);
        let mut x = Vec::with_capacity(part.n * positions * part.f);
        for r in 0..part.n {
            x.extend(self.encode_row(part, r)?);
        }
        let expanded = positions != part.l;
        Ok(Split {
            n: part.n,
            l: positions,
            f: part.f,
            x,
            y: part.y.clone(),
            spans: if expanded { None } else { part.spans.clone() },
            lengths: if expanded { None } else { part.lengths.clone() },
        })
    }
}
