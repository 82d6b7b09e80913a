//! [`LstmCell`]: ncps' `LSTMCell`, the memory cell of a `mixed_memory` CfC (Lechner and Hasani
//! 2020): z = W_in·x + b + W_rec·h, split [i, ig, fg, og];
//! c' = c·σ(fg + 1) + tanh(i)·σ(ig), h' = tanh(c')·σ(og).
//!
//! Keys (ncps names): `input_map.weight` [4H, in], `input_map.bias` [4H], `recurrent_map.weight`
//! [4H, H] (no bias). Initialisation: Xavier-uniform input weight and U(−0.1, 0.1) bias as ncps;
//! the recurrent weight Xavier-uniform where ncps draws an orthogonal matrix (a `VarBuilder`
//! has no orthogonal initialiser; loaded weights are unaffected).

use crate::error::Result;
use crate::nn::check_width;
use candle_core::{Tensor, D};
use candle_nn::{Init, VarBuilder};

/// The LSTM memory cell.
#[derive(Debug, Clone)]
pub struct LstmCell {
    w_in: Tensor,
    b_in: Tensor,
    w_rec: Tensor,
    input_size: usize,
    hidden_size: usize,
}

/// The memory cell's state: output h and cell c, both [B, H].
#[derive(Debug, Clone)]
pub struct LstmState {
    /// h [B, H].
    pub h: Tensor,
    /// c [B, H].
    pub c: Tensor,
}

impl LstmCell {
    /// Creates the weights through `vb`.
    pub fn new(input_size: usize, hidden_size: usize, vb: VarBuilder) -> Result<Self> {
        let g = 4 * hidden_size;
        let xavier = |rows: usize, cols: usize| {
            let a = (6.0 / (rows + cols) as f64).sqrt();
            Init::Uniform { lo: -a, up: a }
        };
        let w_in = vb.get_with_hints((g, input_size), "input_map.weight", xavier(g, input_size))?;
        let b_in = vb.get_with_hints(g, "input_map.bias", Init::Uniform { lo: -0.1, up: 0.1 })?;
        let w_rec = vb.get_with_hints(
            (g, hidden_size),
            "recurrent_map.weight",
            xavier(g, hidden_size),
        )?;
        Ok(LstmCell {
            w_in,
            b_in,
            w_rec,
            input_size,
            hidden_size,
        })
    }

    /// The same cell with detached parameters.
    pub fn detached(&self) -> Self {
        LstmCell {
            w_in: self.w_in.detach(),
            b_in: self.b_in.detach(),
            w_rec: self.w_rec.detach(),
            ..*self
        }
    }

    /// One step: x [B, in] and the state → the new state.
    pub fn step(&self, x: &Tensor, state: &LstmState) -> Result<LstmState> {
        check_width(x, "lstm input [B, in]", 2, self.input_size)?;
        check_width(&state.h, "lstm state h [B, H]", 2, self.hidden_size)?;
        check_width(&state.c, "lstm state c [B, H]", 2, self.hidden_size)?;
        let z = (x.matmul(&self.w_in.t()?)?.broadcast_add(&self.b_in)?
            + state.h.matmul(&self.w_rec.t()?)?)?;
        let h = self.hidden_size;
        let part = |k: usize| z.narrow(D::Minus1, k * h, h);
        let input = part(0)?.tanh()?;
        let input_gate = candle_nn::ops::sigmoid(&part(1)?)?;
        let forget_gate = candle_nn::ops::sigmoid(&part(2)?.affine(1.0, 1.0)?)?;
        let output_gate = candle_nn::ops::sigmoid(&part(3)?)?;
        let c = ((&state.c * forget_gate)? + (input * input_gate)?)?;
        Ok(LstmState {
            h: (c.tanh()? * output_gate)?,
            c,
        })
    }
}
