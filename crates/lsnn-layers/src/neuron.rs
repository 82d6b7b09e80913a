//! Which spiking neuron a model's layers use (design §2.10): [`Neuron`], plain data for the
//! configs, and the crate's spiking layer that holds one neuron's settings and learned
//! parameters and runs the forms the encoder and the attention need.
//!
//! The LIF settings (β, θ, reset, surrogate, what is learned) stay in [`LifConfig`]; a neuron
//! other than `leaky` adds its own parameters here (the current-based LIF its synaptic decay α,
//! the alpha neuron its excitatory decay α, the recurrent LIF its connection, the adaptive LIF
//! its synaptic decay, adaptation and potentials).

use crate::alif::AlifConfig;
use crate::alpha::AlphaConfig;
use crate::error::{LayerError, Result};
use crate::lif::{self, BetaForm, Learn, LearnedLif, LifConfig, RateOutput, ResetMechanism};
use crate::rleaky::{self, Connection, RLeaky, RLeakyConfig};
use crate::rng::SeededRng;
use crate::synaptic::kind::Kind;
use crate::synaptic::{self, LearnedSynaptic, SynapticConfig};
use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// The neuron of a model's spiking layers. In JSON `{"kind": "leaky"}` (the default),
/// `{"kind": "synaptic", "alpha": 0.9, "learn_alpha": "shared"}`, `{"kind": "alpha", "alpha": 0.97}`,
/// `{"kind": "rleaky", "connection": "one_to_one"}` or `{"kind": "alif", "adapt_jump": 0.2}` (the
/// last with the LIF settings' `reset_mechanism` "zero").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Neuron {
    /// The leaky integrate-and-fire neuron (design §2.1, snnTorch `Leaky`). A variant with no
    /// fields rather than a unit one, so that a stray parameter is refused like a misspelt one.
    Leaky {},
    /// The current-based LIF (design §2.10, snnTorch `Synaptic`) with synaptic decay `alpha`
    /// (default 0.9), learned as `learn_alpha` says (default fixed); β, θ, reset, surrogate and
    /// their learning are the LIF settings'.
    Synaptic {
        /// Synaptic decay α ∈ [0, 1].
        #[serde(default = "default_alpha")]
        alpha: f64,
        /// Whether α is learned.
        #[serde(default, skip_serializing_if = "Learn::is_fixed")]
        learn_alpha: Learn,
        /// A learned α's form (`direct` or `sigmoid`, as the LIF settings' `beta_form`).
        #[serde(default, skip_serializing_if = "BetaForm::is_direct")]
        alpha_form: BetaForm,
    },
    /// The alpha neuron (design §2.12, snnTorch `Alpha`) with excitatory decay `alpha` (default
    /// 0.97), learned as `learn_alpha` says (default fixed); the LIF settings' β is the
    /// inhibitory decay (α > β is required), and θ, reset, surrogate and their learning are the
    /// LIF settings'.
    Alpha {
        /// Excitatory decay α ∈ (0, 1], greater than the LIF settings' β.
        #[serde(default = "default_alpha_neuron_alpha")]
        alpha: f64,
        /// Whether α is learned.
        #[serde(default, skip_serializing_if = "Learn::is_fixed")]
        learn_alpha: Learn,
        /// A learned α's form (`direct` or `sigmoid`, as the LIF settings' `beta_form`).
        #[serde(default, skip_serializing_if = "BetaForm::is_direct")]
        alpha_form: BetaForm,
    },
    /// The recurrent LIF (design §2.11, snnTorch `RLeaky`): each layer's spikes of step t−1 come
    /// back through its own trainable weights, all-to-all over the layer's last dim (default,
    /// `recurrent.weight` `[F, F]` and `recurrent.bias` `[F]`) or one-to-one (`V` `[F]`); β, θ, reset,
    /// surrogate and their learning are the LIF settings'.
    Rleaky {
        /// The recurrent connection.
        #[serde(default)]
        connection: Connection,
    },
    /// The adaptive LIF (design §2.13, norse's `LSNNCell`): synaptic decay `alpha` (default
    /// 0.8, norse's), a threshold that rises by `adapt_jump` (default 0.2) with each spike and
    /// decays back with `adapt_decay` (default 0.9: a short adaptation for the model's few spike
    /// steps; norse's own defaults are [`AlifConfig::default`]), leak and reset potentials
    /// (default 0). The LIF settings' β is the membrane decay and θ the baseline threshold;
    /// surrogate and learning are theirs; the reset mechanism must be `zero` (the membrane goes
    /// to `v_reset`).
    Alif {
        /// Synaptic decay α ∈ [0, 1].
        #[serde(default = "default_alif_alpha")]
        alpha: f64,
        /// Adaptation decay ρ ∈ [0, 1].
        #[serde(default = "default_adapt_decay")]
        adapt_decay: f64,
        /// Adaptation jump J ≥ 0 per spike.
        #[serde(default = "default_adapt_jump")]
        adapt_jump: f64,
        /// Leak potential.
        #[serde(default)]
        v_leak: f64,
        /// Reset potential, below θ.
        #[serde(default)]
        v_reset: f64,
        /// Whether α is learned.
        #[serde(default, skip_serializing_if = "Learn::is_fixed")]
        learn_alpha: Learn,
        /// A learned α's form (`direct` or `sigmoid`).
        #[serde(default, skip_serializing_if = "BetaForm::is_direct")]
        alpha_form: BetaForm,
    },
}

impl Default for Neuron {
    fn default() -> Self {
        Neuron::Leaky {}
    }
}

fn default_alpha() -> f64 {
    0.9
}

fn default_alpha_neuron_alpha() -> f64 {
    0.97
}

fn default_alif_alpha() -> f64 {
    0.8
}

fn default_adapt_decay() -> f64 {
    0.9
}

fn default_adapt_jump() -> f64 {
    0.2
}

impl Neuron {
    /// True for the default (so configs can leave it out of their files).
    pub fn is_leaky(&self) -> bool {
        matches!(self, Neuron::Leaky {})
    }

    /// The current-based LIF with synaptic decay `alpha`, α fixed.
    pub fn synaptic(alpha: f64) -> Self {
        Neuron::Synaptic {
            alpha,
            learn_alpha: Learn::Fixed,
            alpha_form: BetaForm::Direct,
        }
    }

    /// The alpha neuron with excitatory decay `alpha`, α fixed.
    pub fn alpha(alpha: f64) -> Self {
        Neuron::Alpha {
            alpha,
            learn_alpha: Learn::Fixed,
            alpha_form: BetaForm::Direct,
        }
    }

    /// The recurrent LIF with this connection.
    pub fn rleaky(connection: Connection) -> Self {
        Neuron::Rleaky { connection }
    }

    /// The adaptive LIF with adaptation decay `adapt_decay` and jump `adapt_jump`, the other
    /// fields at their defaults.
    pub fn alif(adapt_decay: f64, adapt_jump: f64) -> Self {
        Neuron::Alif {
            alpha: default_alif_alpha(),
            adapt_decay,
            adapt_jump,
            v_leak: 0.0,
            v_reset: 0.0,
            learn_alpha: Learn::Fixed,
            alpha_form: BetaForm::Direct,
        }
    }

    /// The current-based LIF's settings from the LIF ones (none for another neuron).
    pub fn synaptic_config(&self, lif: &LifConfig) -> Option<SynapticConfig> {
        match *self {
            Neuron::Leaky {}
            | Neuron::Rleaky { .. }
            | Neuron::Alpha { .. }
            | Neuron::Alif { .. } => None,
            Neuron::Synaptic {
                alpha,
                learn_alpha,
                alpha_form,
            } => Some(
                SynapticConfig::new(alpha, lif.beta)
                    .with_threshold(lif.threshold)
                    .with_reset(lif.reset)
                    .with_surrogate(lif.surrogate)
                    .with_learn(learn_alpha, lif.learn_beta, lif.learn_threshold)
                    .with_forms(alpha_form, lif.beta_form),
            ),
        }
    }

    /// The alpha neuron's settings from the LIF ones (none for another neuron).
    pub fn alpha_config(&self, lif: &LifConfig) -> Option<AlphaConfig> {
        match *self {
            Neuron::Alpha {
                alpha,
                learn_alpha,
                alpha_form,
            } => Some(
                AlphaConfig::new(alpha, lif.beta)
                    .with_threshold(lif.threshold)
                    .with_reset(lif.reset)
                    .with_surrogate(lif.surrogate)
                    .with_learn(learn_alpha, lif.learn_beta, lif.learn_threshold)
                    .with_forms(alpha_form, lif.beta_form),
            ),
            _ => None,
        }
    }

    /// The adaptive LIF's settings from the LIF ones (none for another neuron).
    pub fn alif_config(&self, lif: &LifConfig) -> Option<AlifConfig> {
        match *self {
            Neuron::Alif {
                alpha,
                adapt_decay,
                adapt_jump,
                v_leak,
                v_reset,
                learn_alpha,
                alpha_form,
            } => Some(
                AlifConfig::new(alpha, lif.beta)
                    .with_threshold(lif.threshold)
                    .with_adaptation(adapt_decay, adapt_jump)
                    .with_potentials(v_leak, v_reset)
                    .with_surrogate(lif.surrogate)
                    .with_learn(learn_alpha, lif.learn_beta, lif.learn_threshold)
                    .with_forms(alpha_form, lif.beta_form),
            ),
            _ => None,
        }
    }

    /// The dynamics the synaptic op runs for the current-based LIF, the alpha neuron or the
    /// adaptive LIF (none for another neuron).
    fn two_decay(&self, lif: &LifConfig) -> Option<(Kind, SynapticConfig)> {
        if let Some(cfg) = self.synaptic_config(lif) {
            return Some((Kind::Synaptic, cfg));
        }
        if let Some(cfg) = self.alif_config(lif) {
            return Some((Kind::Alif(cfg.adaptation()), cfg.dynamics()));
        }
        self.alpha_config(lif).map(|c| (Kind::Alpha, c.dynamics()))
    }

    /// The recurrent LIF's settings from the LIF ones (none for another neuron).
    pub fn rleaky_config(&self, lif: &LifConfig) -> Option<RLeakyConfig> {
        match *self {
            Neuron::Rleaky { connection } => Some(
                RLeakyConfig::new(lif.beta, connection)
                    .with_threshold(lif.threshold)
                    .with_reset(lif.reset)
                    .with_surrogate(lif.surrogate)
                    .with_learn(lif.learn_beta, lif.learn_threshold),
            ),
            _ => None,
        }
    }

    /// The spike steps a stack of `layers` layers of this neuron needs for its output to depend
    /// on its input: the adaptive LIF's input reaches the membrane one step late (as in norse),
    /// so each layer adds a step and the first step's spikes come from the resting state alone;
    /// every other neuron needs one step.
    pub fn min_steps(&self, layers: usize) -> usize {
        match self {
            Neuron::Alif { .. } => layers + 1,
            _ => 1,
        }
    }

    /// A typed error naming `field` when `steps` is below [`Neuron::min_steps`] for `layers`.
    pub fn check_steps(&self, field: &'static str, steps: usize, layers: usize) -> Result<()> {
        let need = self.min_steps(layers);
        if steps >= need {
            return Ok(());
        }
        Err(LayerError::config(
            field,
            format!(
                "{steps}; expected at least {need}: the {} neuron's input reaches its membrane one step late, so {layers} stacked layer(s) need {need} steps before their output depends on the input",
                self.name()
            ),
        ))
    }

    /// The config name of the neuron.
    fn name(&self) -> &'static str {
        match self {
            Neuron::Leaky {} => "leaky",
            Neuron::Synaptic { .. } => "synaptic",
            Neuron::Alpha { .. } => "alpha",
            Neuron::Rleaky { .. } => "rleaky",
            Neuron::Alif { .. } => "alif",
        }
    }

    /// Checks the neuron's parameters together with the LIF settings it shares.
    pub fn validate(&self, lif: &LifConfig) -> Result<()> {
        lif.validate()?;
        // The recurrent LIF learns β directly; the two-decay neurons take either form.
        let rleaky = matches!(self, Neuron::Rleaky { .. });
        if rleaky && !lif.learn_beta.is_fixed() && lif.beta_form != BetaForm::Direct {
            return Err(LayerError::config(
                "beta_form",
                format!(
                    "sigmoid is not offered for the {} neuron, which learns β directly (expected \"direct\")",
                    self.name()
                ),
            ));
        }
        if let Some(cfg) = self.synaptic_config(lif) {
            cfg.validate()?;
        }
        if let Some(cfg) = self.alpha_config(lif) {
            cfg.validate()?;
        }
        if let Some(cfg) = self.rleaky_config(lif) {
            cfg.validate()?;
        }
        if let Some(cfg) = self.alif_config(lif) {
            if lif.reset != ResetMechanism::Zero {
                return Err(LayerError::config(
                    "reset_mechanism",
                    format!(
                        "{:?} for the alif neuron, which resets its membrane to v_reset as norse does (expected \"zero\")",
                        lif.reset
                    ),
                ));
            }
            cfg.validate()?;
        }
        Ok(())
    }
}

/// One spiking layer of a model: the neuron's settings and, when some are learned, its
/// variables; the forms the encoder (constant-current spikes with dropout, sequence spikes,
/// the rate) and the attention (the constant-current rate) use, each from a zero state.
#[derive(Debug, Clone)]
pub(crate) enum SpikingLayer {
    /// A leaky LIF layer.
    Leaky(LifConfig, Option<LearnedLif>),
    /// A current-based LIF, alpha-neuron or adaptive-LIF layer (the op's [`Kind`] says which).
    Synaptic(Kind, SynapticConfig, Option<LearnedSynaptic>),
    /// A recurrent LIF layer, its recurrent weights and learned β, θ inside.
    Rleaky(RLeaky),
}

impl SpikingLayer {
    /// The layer of `features` neurons (the last dim of its input), its learned variables (if
    /// any) from `vb`.
    pub(crate) fn new(
        lif: &LifConfig,
        neuron: &Neuron,
        features: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        neuron.validate(lif)?;
        if let Some(cfg) = neuron.rleaky_config(lif) {
            return Ok(SpikingLayer::Rleaky(RLeaky::new(&cfg, features, vb)?));
        }
        Ok(match neuron.two_decay(lif) {
            None => SpikingLayer::Leaky(
                *lif,
                match lif.learns() {
                    true => Some(LearnedLif::new(lif, features, vb)?),
                    false => None,
                },
            ),
            Some((kind, cfg)) => SpikingLayer::Synaptic(
                kind,
                cfg,
                match cfg.learns() {
                    true => Some(LearnedSynaptic::new_for(kind, &cfg, features, vb)?),
                    false => None,
                },
            ),
        })
    }

    /// The same layer with its learned parameters detached.
    pub(crate) fn detached(&self) -> Self {
        match self {
            SpikingLayer::Leaky(c, l) => SpikingLayer::Leaky(*c, l.as_ref().map(|l| l.detached())),
            SpikingLayer::Synaptic(k, c, l) => {
                SpikingLayer::Synaptic(*k, *c, l.as_ref().map(|l| l.detached()))
            }
            SpikingLayer::Rleaky(l) => SpikingLayer::Rleaky(l.detached()),
        }
    }

    /// Spikes [steps, …] of a constant current […], with dropout in training.
    pub(crate) fn const_spikes(
        &self,
        x: &Tensor,
        steps: usize,
        dropout: Option<(f64, &mut SeededRng)>,
    ) -> Result<Tensor> {
        match self {
            SpikingLayer::Leaky(c, l) => {
                let p = lif_params(l, x)?;
                lif::stateless::const_spikes(x, steps, c, p.as_ref(), dropout)
            }
            SpikingLayer::Synaptic(k, c, l) => {
                let p = syn_params(l, x)?;
                synaptic::stateless::const_spikes(*k, x, steps, c, p.as_ref(), dropout)
            }
            SpikingLayer::Rleaky(l) => {
                let p = l.params(x)?;
                rleaky::stateless::const_spikes(
                    x,
                    steps,
                    l.config(),
                    l.recurrent(),
                    p.as_ref(),
                    dropout,
                )
            }
        }
    }

    /// The rate and the detached mean membrane of currents [T, …]; `detach_params` stops the
    /// learned parameters' gradient too (for a second pass that only reads the membrane).
    pub(crate) fn rate(&self, x: &Tensor, detach_params: bool) -> Result<RateOutput> {
        let layer = if detach_params {
            self.detached()
        } else {
            self.clone()
        };
        match &layer {
            SpikingLayer::Leaky(c, l) => lif::stateless::rate(x, c, lif_params(l, x)?.as_ref()),
            SpikingLayer::Synaptic(k, c, l) => {
                synaptic::stateless::rate(*k, x, c, syn_params(l, x)?.as_ref())
            }
            SpikingLayer::Rleaky(l) => {
                rleaky::stateless::rate(x, l.config(), l.recurrent(), l.params(x)?.as_ref())
            }
        }
    }

    /// Spikes [T, …] of currents [T, …].
    pub(crate) fn spikes(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            SpikingLayer::Leaky(c, l) => lif::stateless::spikes(x, c, lif_params(l, x)?.as_ref()),
            SpikingLayer::Synaptic(k, c, l) => {
                synaptic::stateless::spikes(*k, x, c, syn_params(l, x)?.as_ref())
            }
            SpikingLayer::Rleaky(l) => {
                rleaky::stateless::spikes(x, l.config(), l.recurrent(), l.params(x)?.as_ref())
            }
        }
    }

    /// The firing rate […] of a constant current […] over `steps` steps, O(1) memory in T.
    pub(crate) fn const_rate(&self, x: &Tensor, steps: usize) -> Result<Tensor> {
        match self {
            SpikingLayer::Leaky(c, l) => {
                lif::stateless::const_rate(x, steps, c, lif_params(l, x)?.as_ref())
            }
            SpikingLayer::Synaptic(k, c, l) => {
                synaptic::stateless::const_rate(*k, x, steps, c, syn_params(l, x)?.as_ref())
            }
            SpikingLayer::Rleaky(l) => {
                let p = l.params(x)?;
                rleaky::stateless::const_rate(x, steps, l.config(), l.recurrent(), p.as_ref())
            }
        }
    }
}

fn lif_params(l: &Option<LearnedLif>, x: &Tensor) -> Result<Option<lif::LifParams>> {
    match l {
        Some(l) => l.params(x.dtype(), x.device()),
        None => Ok(None),
    }
}

fn syn_params(l: &Option<LearnedSynaptic>, x: &Tensor) -> Result<Option<synaptic::SynapticParams>> {
    match l {
        Some(l) => l.params(x.dtype(), x.device()),
        None => Ok(None),
    }
}
