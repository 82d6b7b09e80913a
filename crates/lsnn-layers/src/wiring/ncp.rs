//! [`NcpConfig`] and [`AutoNcpConfig`]: Neural Circuit Policies (Lechner et al. 2020; ncps `NCP`,
//! `AutoNCP`), drawn with numpy's legacy `RandomState` exactly as ncps draws them.

use super::numpy::RandomState;
use super::Wiring;
use crate::error::{LayerError, Result};
use serde::{Deserialize, Serialize};

/// ncps' `NCP(inter_neurons, command_neurons, motor_neurons, sensory_fanout, inter_fanout,
/// recurrent_command_synapses, motor_fanin, seed)`.
///
/// Neuron ids are ncps': motor neurons first, then command, then inter; the layers a wired cell
/// runs are [inter, command, motor].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NcpConfig {
    /// Inter neurons (layer 0).
    pub inter_neurons: usize,
    /// Command neurons (layer 1).
    pub command_neurons: usize,
    /// Motor neurons (layer 2, the outputs).
    pub motor_neurons: usize,
    /// Synapses from each sensory input to distinct inter neurons.
    pub sensory_fanout: usize,
    /// Synapses from each inter neuron to distinct command neurons.
    pub inter_fanout: usize,
    /// Recurrent synapses drawn among the command neurons.
    pub recurrent_command_synapses: usize,
    /// Synapses into each motor neuron from distinct command neurons.
    pub motor_fanin: usize,
    /// Seed of numpy's `RandomState` (ncps' default 22222).
    #[serde(default = "default_seed")]
    pub seed: u32,
}

fn default_seed() -> u32 {
    22222
}
fn default_sparsity() -> f64 {
    0.5
}

/// ncps' `AutoNCP(units, output_size, sparsity_level, seed)`: an NCP sized from three numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoNcpConfig {
    /// Neurons in all.
    pub units: usize,
    /// Motor neurons (outputs); less than `units − 2`.
    pub outputs: usize,
    /// 0.1 (dense) ..= 1.0 (sparsest), default 0.5.
    #[serde(default = "default_sparsity")]
    pub sparsity: f64,
    /// Seed (ncps' default 22222).
    #[serde(default = "default_seed")]
    pub seed: u32,
}

impl AutoNcpConfig {
    /// `units` neurons of which `outputs` are motor neurons; sparsity 0.5, seed 22222.
    pub fn new(units: usize, outputs: usize) -> Self {
        AutoNcpConfig {
            units,
            outputs,
            sparsity: default_sparsity(),
            seed: default_seed(),
        }
    }

    /// With a sparsity level.
    pub fn with_sparsity(mut self, sparsity: f64) -> Self {
        self.sparsity = sparsity;
        self
    }

    /// With a seed.
    pub fn with_seed(mut self, seed: u32) -> Self {
        self.seed = seed;
        self
    }

    /// The NCP it stands for, by ncps' formulas (command = max(⌊0.4·(units − outputs)⌋, 1),
    /// fan-outs and fan-ins ⌊n·(1 − sparsity)⌋ at least 1), or the error ncps raises.
    pub fn ncp(&self) -> Result<NcpConfig> {
        if self.units < 3 || self.outputs >= self.units - 2 {
            return Err(LayerError::config(
                "outputs",
                format!(
                    "{} with {} units; expected fewer than units − 2 (ncps suggests about 0.3·units)",
                    self.outputs, self.units
                ),
            ));
        }
        if self.outputs == 0 {
            return Err(LayerError::config("outputs", "0; expected at least 1"));
        }
        if !(0.1..=1.0).contains(&self.sparsity) {
            return Err(LayerError::config(
                "sparsity",
                format!("{}; expected 0.1..=1.0", self.sparsity),
            ));
        }
        let density = 1.0 - self.sparsity;
        let inter_and_command = self.units - self.outputs;
        let command = ((0.4 * inter_and_command as f64) as usize).max(1);
        let inter = inter_and_command - command;
        let at_least_one = |v: f64| (v as usize).max(1);
        Ok(NcpConfig {
            inter_neurons: inter,
            command_neurons: command,
            motor_neurons: self.outputs,
            sensory_fanout: at_least_one(inter as f64 * density),
            inter_fanout: at_least_one(command as f64 * density),
            recurrent_command_synapses: at_least_one(command as f64 * density * 2.0),
            motor_fanin: at_least_one(command as f64 * density),
            seed: self.seed,
        })
    }

    /// The wiring for `input_dim` sensory inputs.
    pub fn build(&self, input_dim: usize) -> Result<Wiring> {
        self.ncp()?.build(input_dim)
    }
}

/// ⌊a·b / c⌋ clipped to lo..=hi, as ncps computes its "forgotten neuron" fan-ins.
fn mean_clipped(a: usize, b: usize, c: usize, lo: usize, hi: usize) -> usize {
    let v = ((a * b) as f64 / c as f64) as usize;
    v.clamp(lo, hi.max(lo))
}

struct Builder {
    rng: RandomState,
    w: Wiring,
}

impl Builder {
    fn sample(&mut self, from: &[usize], size: usize, what: &str) -> Result<Vec<usize>> {
        self.rng.sample(from, size).ok_or_else(|| {
            LayerError::config(
                what,
                format!(
                    "needs {size} distinct neurons of {}; expected at most that many (ncps raises here too)",
                    from.len()
                ),
            )
        })
    }

    fn polarity(&mut self) -> i8 {
        self.rng.choice(&[-1i8, 1])
    }

    /// Each of `sources` to `fanout` distinct `targets`; then every target left unreached gets
    /// ⌊|sources|·fanout/|targets|⌋ (clipped to 1..=`clip`) distinct sources.
    #[allow(clippy::too_many_arguments)]
    fn fan_out(
        &mut self,
        sources: &[usize],
        targets: &[usize],
        fanout: usize,
        clip: usize,
        sensory: bool,
        what: &str,
    ) -> Result<()> {
        let mut unreached: Vec<usize> = targets.to_vec();
        for &src in sources {
            for dest in self.sample(targets, fanout, what)? {
                unreached.retain(|&d| d != dest);
                let p = self.polarity();
                self.set(sensory, src, dest, p);
            }
        }
        let fanin = mean_clipped(sources.len(), fanout, targets.len(), 1, clip);
        for dest in unreached {
            for src in self.sample(sources, fanin, what)? {
                let p = self.polarity();
                self.set(sensory, src, dest, p);
            }
        }
        Ok(())
    }

    fn set(&mut self, sensory: bool, src: usize, dest: usize, p: i8) {
        if sensory {
            self.w.sensory_adjacency_matrix[src][dest] = p;
        } else {
            self.w.adjacency_matrix[src][dest] = p;
        }
    }
}

impl NcpConfig {
    /// The wiring for `input_dim` sensory inputs, drawn in ncps' order: sensory → inter,
    /// inter → command, recurrent command synapses, command → motor.
    pub fn build(&self, input_dim: usize) -> Result<Wiring> {
        let (ni, nc, nm) = (self.inter_neurons, self.command_neurons, self.motor_neurons);
        for (field, v) in [
            ("inter_neurons", ni),
            ("command_neurons", nc),
            ("motor_neurons", nm),
        ] {
            if v == 0 {
                return Err(LayerError::config(field, "0; expected at least 1"));
            }
        }
        for (field, v, of, limit) in [
            ("motor_fanin", self.motor_fanin, "command neurons", nc),
            ("sensory_fanout", self.sensory_fanout, "inter neurons", ni),
            ("inter_fanout", self.inter_fanout, "command neurons", nc),
        ] {
            if v > limit {
                return Err(LayerError::config(
                    field,
                    format!("{v} but there are only {limit} {of}; expected at most {limit}"),
                ));
            }
        }
        if input_dim == 0 {
            return Err(LayerError::config("input_dim", "0; expected at least 1"));
        }
        let units = ni + nc + nm;
        let motor: Vec<usize> = (0..nm).collect();
        let command: Vec<usize> = (nm..nm + nc).collect();
        let inter: Vec<usize> = (nm + nc..units).collect();
        let sensory: Vec<usize> = (0..input_dim).collect();
        let mut w = Wiring::empty(units, input_dim, nm);
        w.layers = vec![inter.clone(), command.clone(), motor.clone()];
        let mut b = Builder {
            rng: RandomState::new(self.seed),
            w,
        };
        b.fan_out(
            &sensory,
            &inter,
            self.sensory_fanout,
            input_dim,
            true,
            "sensory_fanout",
        )?;
        b.fan_out(
            &inter,
            &command,
            self.inter_fanout,
            nc,
            false,
            "inter_fanout",
        )?;
        for _ in 0..self.recurrent_command_synapses {
            let src = b.rng.choice(&command);
            let dest = b.rng.choice(&command);
            let p = b.polarity();
            b.set(false, src, dest, p);
        }
        // Command → motor runs from the motor side: each motor neuron draws its command inputs,
        // and command neurons left out get ⌊motor·fanin/command⌋ motor targets.
        let mut unreached: Vec<usize> = command.clone();
        for &dest in &motor {
            for src in b.sample(&command, self.motor_fanin, "motor_fanin")? {
                unreached.retain(|&s| s != src);
                let p = b.polarity();
                b.set(false, src, dest, p);
            }
        }
        let fanout = mean_clipped(nm, self.motor_fanin, nc, 1, nm);
        for src in unreached {
            for dest in b.sample(&motor, fanout, "motor_fanin")? {
                let p = b.polarity();
                b.set(false, src, dest, p);
            }
        }
        b.w.validate()?;
        Ok(b.w)
    }
}
