//! [`WiredCfc`]: ncps' `WiredCfCCell` — one CfC layer without a backbone per layer of a
//! [`Wiring`], layer l fed by layer l − 1's new state, each reading its inputs through the
//! wiring's synapses (design §2.3.3).
//!
//! Layer l's mask is ncps': |sensory_adjacency[:, layer]| (l = 0) or |adjacency[previous layer,
//! layer]| for the input rows, all ones for the recurrent rows. The state is every layer's units
//! side by side in layer order (ncps' `torch.split` layout); the output is the last layer's
//! (the motor neurons of an NCP). Keys: `layer_{l}.ff1.weight`, … as ncps.

use super::op::Span;
use super::prepare::PreparedCfc;
use super::spans;
use super::{Cfc, CfcConfig, CfcMode, CfcState};
use crate::error::{LayerError, Result};
use crate::wiring::Wiring;
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

fn default_ts() -> f64 {
    1.0
}

/// The wired cell's configuration: the wiring (built for its input width), the mode and the
/// constant time span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WiredCfcConfig {
    /// The wiring; its `input_dim` is the cell's input width.
    pub wiring: Wiring,
    /// Mixing mode of every layer (default `default`).
    #[serde(default)]
    pub mode: CfcMode,
    /// Time span of every step (default 1.0).
    #[serde(default = "default_ts")]
    pub ts: f64,
}

impl WiredCfcConfig {
    /// A wired cell over `wiring`, ncps' defaults otherwise.
    pub fn new(wiring: Wiring) -> Self {
        WiredCfcConfig {
            wiring,
            mode: CfcMode::Default,
            ts: default_ts(),
        }
    }

    /// With a mixing mode.
    pub fn with_mode(mut self, mode: CfcMode) -> Self {
        self.mode = mode;
        self
    }

    /// With a constant time span.
    pub fn with_ts(mut self, ts: f64) -> Self {
        self.ts = ts;
        self
    }

    /// Input width.
    pub fn input_size(&self) -> usize {
        self.wiring.input_dim
    }

    /// State width: every neuron.
    pub fn state_size(&self) -> usize {
        self.wiring.units
    }

    /// Output width: the last layer's neurons.
    pub fn output_size(&self) -> usize {
        self.wiring.layer_list().last().map_or(0, Vec::len)
    }

    /// Each layer's cell configuration.
    pub fn layer_configs(&self) -> Vec<CfcConfig> {
        let layers = self.wiring.layer_list();
        let mut input = self.wiring.input_dim;
        layers
            .iter()
            .map(|ids| {
                let c = CfcConfig::new(input, ids.len())
                    .with_backbone(0, 0)
                    .with_mode(self.mode)
                    .with_ts(self.ts);
                input = ids.len();
                c
            })
            .collect()
    }

    /// Checks the wiring and the time span.
    pub fn validate(&self) -> Result<()> {
        self.wiring.validate()?;
        if !self.ts.is_finite() {
            return Err(LayerError::config(
                "ts",
                format!("{}; expected a finite time span", self.ts),
            ));
        }
        Ok(())
    }
}

/// The wired CfC cell.
#[derive(Debug, Clone)]
pub struct WiredCfc {
    layers: Vec<Cfc>,
    cfg: WiredCfcConfig,
}

impl WiredCfc {
    /// Creates every layer's weights through `vb` (`layer_{l}.…`), masked by the wiring.
    pub fn new(cfg: &WiredCfcConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let mut layers = Vec::new();
        for (l, lc) in cfg.layer_configs().iter().enumerate() {
            let (inp, h) = (lc.input_size, lc.hidden_size);
            let mut rows: Vec<f64> = cfg.wiring.layer_input_mask(l).concat();
            rows.extend(std::iter::repeat_n(1.0, h * h));
            let mask = Tensor::from_vec(rows, (inp + h, h), vb.device())?;
            layers.push(Cfc::with_mask(lc, &mask, vb.pp(format!("layer_{l}")))?);
        }
        Ok(WiredCfc {
            layers,
            cfg: cfg.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &WiredCfcConfig {
        &self.cfg
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Cfc] {
        &self.layers
    }

    /// The same cell with detached parameters.
    pub fn detached(&self) -> Self {
        WiredCfc {
            layers: self.layers.iter().map(Cfc::detached).collect(),
            cfg: self.cfg.clone(),
        }
    }

    fn output_of(&self, states: &Tensor) -> Result<Tensor> {
        let out = self.cfg.output_size();
        let last = states.rank() - 1;
        Ok(states.narrow(last, self.cfg.state_size() - out, out)?)
    }

    fn prepared(&self, span: Span) -> Result<PreparedCfc> {
        let refs: Vec<&Cfc> = self.layers.iter().collect();
        PreparedCfc::new(&refs, span)
    }

    /// Every layer's states [B, L, units] of a sequence x [B, L, in] from `state` (zero when
    /// `None`), with per-step `timespans` ([B, L] or [B, L, 1]) or the constant span.
    pub fn states(
        &self,
        x: &Tensor,
        timespans: Option<&Tensor>,
        state: Option<&CfcState>,
    ) -> Result<Tensor> {
        let (b, l) = spans::check_sequence(x, self.cfg.input_size(), "wired cfc input [B, L, in]")?;
        let ts = timespans.map(|t| spans::check_spans(t, b, l)).transpose()?;
        let h0 = match state {
            Some(s) => {
                spans::check_state(
                    &s.h,
                    b,
                    self.cfg.state_size(),
                    "wired cfc state h [B, units]",
                )?;
                s.h.clone()
            }
            None => Tensor::zeros((b, self.cfg.state_size()), x.dtype(), x.device())?,
        };
        let span = if ts.is_some() {
            Span::PerStep
        } else {
            Span::Constant(self.cfg.ts)
        };
        let prep = self.prepared(span)?;
        prep.sequence(&prep.layers[0].project(x)?, ts.as_ref(), &h0)
    }

    /// The outputs (the last layer's states) [B, L, out] of a sequence x [B, L, in] from `state`
    /// at the constant span, and the final state.
    pub fn forward_state(
        &self,
        x: &Tensor,
        state: Option<&CfcState>,
    ) -> Result<(Tensor, CfcState)> {
        let hs = self.states(x, None, state)?;
        self.split(&hs)
    }

    /// [`WiredCfc::forward_state`] with a time span per row and step.
    pub fn forward_timespans(
        &self,
        x: &Tensor,
        timespans: &Tensor,
        state: Option<&CfcState>,
    ) -> Result<(Tensor, CfcState)> {
        let hs = self.states(x, Some(timespans), state)?;
        self.split(&hs)
    }

    fn split(&self, hs: &Tensor) -> Result<(Tensor, CfcState)> {
        let l = hs.dim(1)?;
        let h = hs.narrow(1, l - 1, 1)?.squeeze(1)?;
        Ok((self.output_of(hs)?, CfcState { h }))
    }

    /// One step exactly as ncps' `WiredCfCCell` computes it: x [B, in], h [B, units], an
    /// optional span per row (`[B]` or `[B, 1]`) → (output [B, out], new state [B, units]).
    pub fn step(&self, x: &Tensor, h: &Tensor, ts: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let b = x.dim(0)?;
        spans::check_state(h, b, self.cfg.state_size(), "wired cfc state h [B, units]")?;
        let ts = ts.map(|t| spans::check_step_span(t, b)).transpose()?;
        let mut input = x.clone();
        let mut col = 0;
        let mut new = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let hd = layer.config().hidden_size;
            let hl = h.narrow(1, col, hd)?;
            col += hd;
            let hn = match &ts {
                Some(t) => super::reference::step_with_span(layer, &input, &hl, t)?,
                None => super::reference::step(layer, &input, &hl)?,
            };
            input = hn.clone();
            new.push(hn);
        }
        Ok((input, Tensor::cat(&new, 1)?))
    }
}

impl Module for WiredCfc {
    /// The outputs [B, L, out] of a sequence x [B, L, in] from a zero state.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        Ok(self.forward_state(x, None)?.0)
    }
}

impl candle_nn::rnn::RNN for WiredCfc {
    type State = CfcState;

    fn zero_state(&self, batch_dim: usize) -> candle_core::Result<CfcState> {
        let w = self.layers[0].ff1.weight();
        Ok(CfcState {
            h: Tensor::zeros((batch_dim, self.cfg.state_size()), w.dtype(), w.device())?,
        })
    }

    /// One step exactly as ncps computes it (the constant span).
    fn step(&self, input: &Tensor, state: &CfcState) -> candle_core::Result<CfcState> {
        Ok(CfcState {
            h: WiredCfc::step(self, input, &state.h, None)?.1,
        })
    }

    /// The whole sequence through the fused op; each state is a view of its output.
    fn seq_init(&self, input: &Tensor, init: &CfcState) -> candle_core::Result<Vec<CfcState>> {
        let hs = self.states(input, None, Some(init))?;
        (0..hs.dim(1)?)
            .map(|t| {
                Ok(CfcState {
                    h: hs.narrow(1, t, 1)?.squeeze(1)?,
                })
            })
            .collect()
    }

    /// The outputs (the last layer's units) of the states, stacked: [B, L, out].
    fn states_to_tensor(&self, states: &[CfcState]) -> candle_core::Result<Tensor> {
        let hs: Vec<&Tensor> = states.iter().map(|s| &s.h).collect();
        Ok(self.output_of(&Tensor::stack(&hs, 1)?)?)
    }
}
