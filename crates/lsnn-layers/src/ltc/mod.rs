//! The liquid time-constant cell, LTC (design §2.14; ncps `LTCCell`, `LTC`).
//!
//! Per step, from the mapped input x̃ = x·input_w + input_b and the potentials v `[N]`:
//!
//! ```text
//! a_s[i, j] = sensory_w⁺·σ(sensory_sigma·(x̃_i − sensory_mu))·sensory_mask     (once per step)
//! unfold K times (v⁰ = v, ode_unfolds = K, cm_t = cm⁺ / (ts / K)):
//!   a[i, j] = w⁺·σ(sigma·(vᵏ_i − mu))·mask
//!   vᵏ⁺¹_j  = (cm_t·vᵏ + gleak⁺·vleak + Σ_i a·erev + Σ_i a_s·sensory_erev)
//!             / (cm_t + gleak⁺ + Σ_i a + Σ_i a_s + ε)
//! output = v^K[..O]·output_w + output_b       (the first O neurons: the wiring's motor neurons)
//! ```
//! p⁺ is softplus(p) under the implicit constraint and p under the explicit one (then clamped
//! to ≥ 0 after each optimizer step by [`Ltc::apply_weight_constraints`]). The masks are the
//! wiring's |adjacency| (all ones for a fully connected wiring); erev and sensory_erev start at
//! its polarities.
//!
//! Keys (ncps names, no prefix of their own): `gleak`, `vleak`, `cm` `[N]`; `sigma`, `mu`, `w`,
//! `erev` [N, N]; `sensory_sigma`, `sensory_mu`, `sensory_w`, `sensory_erev` [I, N];
//! `input_w`, `input_b` `[I]`; `output_w`, `output_b` `[O]`. ncps also saves its masks as frozen
//! parameters (`sparsity_mask`, `sensory_sparsity_mask`); here they come from the wiring.
//!
//! Sequences run as one fused CPU op (forward and BPTT backward through the unfolds, the
//! crate-private `op`) with [`reference`](mod@reference) as its composition.

mod config;
pub(crate) mod op;
mod params;
pub mod reference;

pub use config::{LtcConfig, LtcConstraint, LtcMapping, LtcSettings, MAX_UNFOLDS};
pub use params::{softplus, LtcParams, POSITIVE};

use crate::error::Result;
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

/// The recurrent state of an [`Ltc`]: the potentials v [B, N].
#[derive(Debug, Clone)]
pub struct LtcState {
    /// v [B, N].
    pub v: Tensor,
}

/// The LTC cell, dense (a fully connected wiring) or wired (an NCP).
#[derive(Debug, Clone)]
pub struct Ltc {
    params: LtcParams,
    cfg: LtcConfig,
}

impl Ltc {
    /// Creates the cell's parameters through `vb` (ncps' initial values).
    pub fn new(cfg: &LtcConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        Ok(Ltc {
            params: LtcParams::new(cfg, &vb)?,
            cfg: cfg.clone(),
        })
    }

    /// The same cell with detached parameters.
    pub fn detached(&self) -> Self {
        Ltc {
            params: self.params.detached(),
            cfg: self.cfg.clone(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LtcConfig {
        &self.cfg
    }

    /// The parameters.
    pub fn params(&self) -> &LtcParams {
        &self.params
    }

    /// ncps' `apply_weight_constraints` (see [`LtcParams::apply_weight_constraints`]); call it
    /// after each optimizer step under the explicit constraint (lsnn's trainer does).
    pub fn apply_weight_constraints(&self) -> Result<()> {
        self.params.apply_weight_constraints(self.cfg.constraint)
    }

    /// x [.., I] through the input mapping.
    pub fn map_inputs(&self, x: &Tensor) -> Result<Tensor> {
        let mut y = x.clone();
        if let Some(w) = &self.params.input_w {
            y = y.broadcast_mul(w)?;
        }
        if let Some(b) = &self.params.input_b {
            y = y.broadcast_add(b)?;
        }
        Ok(y)
    }

    /// The outputs [.., O] of states [.., N]: the motor neurons through the output mapping.
    pub fn output_of(&self, states: &Tensor) -> Result<Tensor> {
        let (n, o) = (self.cfg.state_size(), self.cfg.output_size());
        let mut y = if o < n {
            states.narrow(states.rank() - 1, 0, o)?
        } else {
            states.clone()
        };
        if let Some(w) = &self.params.output_w {
            y = y.broadcast_mul(w)?;
        }
        if let Some(b) = &self.params.output_b {
            y = y.broadcast_add(b)?;
        }
        Ok(y)
    }

    fn check_state(&self, v: &Tensor, batch: usize) -> Result<()> {
        let n = self.cfg.state_size();
        crate::cfc::spans::check_state(v, batch, n, "ltc state v [B, N]")?;
        crate::nn::check_finite(v, "ltc state v")
    }

    /// Every state v_1..v_L [B, L, N] of x [B, L, I] from `state` (zero when `None`): the fused
    /// op on the CPU, [`reference::sequence`] elsewhere.
    pub fn states(&self, x: &Tensor, state: Option<&LtcState>) -> Result<Tensor> {
        let (b, l) =
            crate::cfc::spans::check_sequence(x, self.cfg.input_size(), "ltc input [B, L, I]")?;
        crate::nn::check_finite(x, "ltc input")?;
        let v0 = match state {
            Some(s) => {
                self.check_state(&s.v, b)?;
                s.v.clone()
            }
            None => Tensor::zeros((b, self.cfg.state_size()), x.dtype(), x.device())?,
        };
        let xm = self.map_inputs(x)?;
        if !crate::kernel::fused_available(x) {
            return reference::sequence(self, &xm, &v0);
        }
        let packed = self.packed()?;
        let c = &self.cfg;
        let layout = op::LtcLayout::new(
            b,
            l,
            c.input_size(),
            c.state_size(),
            c.ode_unfolds,
            c.epsilon,
            c.ts,
        );
        Ok(xm
            .contiguous()?
            .apply_op3(&v0.contiguous()?, &packed, op::LtcOp { layout })?)
    }

    /// The parameters in the op's packed order (design §2.14.2), differentiably: the positive
    /// ones through the constraint, the masks applied.
    fn packed(&self) -> Result<Tensor> {
        let p = &self.params;
        let e = reference::Effective::new(self)?;
        let parts = [
            e.gleak,
            e.vleak,
            e.cm,
            p.sigma.clone(),
            p.mu.clone(),
            (e.w * &p.mask)?,
            p.erev.clone(),
            p.sensory_sigma.clone(),
            p.sensory_mu.clone(),
            (e.sensory_w * &p.sensory_mask)?,
            p.sensory_erev.clone(),
        ];
        let flat: Vec<Tensor> = parts
            .iter()
            .map(|t| t.flatten_all())
            .collect::<candle_core::Result<_>>()?;
        Ok(Tensor::cat(&flat, 0)?)
    }

    /// The outputs [B, L, O] of x [B, L, I] and the final state.
    pub fn forward_state(
        &self,
        x: &Tensor,
        state: Option<&LtcState>,
    ) -> Result<(Tensor, LtcState)> {
        let vs = self.states(x, state)?;
        let l = vs.dim(1)?;
        let v = vs.narrow(1, l - 1, 1)?.squeeze(1)?;
        Ok((self.output_of(&vs)?, LtcState { v }))
    }

    /// One step exactly as ncps computes it: x [B, I], v [B, N] → (output [B, O], new v).
    pub fn step(&self, x: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        crate::nn::check_width(x, "ltc step input [B, I]", 2, self.cfg.input_size())?;
        crate::nn::check_finite(x, "ltc step input")?;
        self.check_state(v, x.dim(0)?)?;
        reference::step(self, x, v)
    }
}

impl Module for Ltc {
    /// The outputs [B, L, O] of a sequence x [B, L, I] from a zero state.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        Ok(self.forward_state(x, None)?.0)
    }
}

impl candle_nn::rnn::RNN for Ltc {
    type State = LtcState;

    fn zero_state(&self, batch_dim: usize) -> candle_core::Result<LtcState> {
        let w = &self.params.gleak;
        Ok(LtcState {
            v: Tensor::zeros((batch_dim, self.cfg.state_size()), w.dtype(), w.device())?,
        })
    }

    /// One step as ncps computes it: input [B, I] → the new state (the output is
    /// [`Ltc::output_of`] of it).
    fn step(&self, input: &Tensor, state: &LtcState) -> candle_core::Result<LtcState> {
        Ok(LtcState {
            v: Ltc::step(self, input, &state.v)?.1,
        })
    }

    /// The whole sequence through the fused op; each state is a view of its output.
    fn seq_init(&self, input: &Tensor, init: &LtcState) -> candle_core::Result<Vec<LtcState>> {
        let vs = self.states(input, Some(init))?;
        (0..vs.dim(1)?)
            .map(|t| {
                Ok(LtcState {
                    v: vs.narrow(1, t, 1)?.squeeze(1)?,
                })
            })
            .collect()
    }

    fn states_to_tensor(&self, states: &[LtcState]) -> candle_core::Result<Tensor> {
        let vs: Vec<&Tensor> = states.iter().map(|s| &s.v).collect();
        Tensor::stack(&vs, 1)
    }
}
