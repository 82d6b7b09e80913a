//! Matrix products with bf16 operands and f32 accumulation (design §9.5): the operands are
//! rounded to bf16 while they are packed, and every product is summed into f32.
//!
//! On CPUs with AVX-512 BF16 (`vdpbf16ps`: sixteen lanes, each adding two bf16 products per
//! instruction) the tiles run on those instructions; elsewhere a portable kernel does the same
//! arithmetic in the same order and gives the same bits (design §9.5 says why and on which
//! inputs). Which one runs is [`Bf16Kernel::active`]; [`matmul_bf16_on`] takes either
//! explicitly, for tests and benchmarks.
//!
//! Each element of C is one tile's accumulator over the whole of k, in a fixed order, so the
//! result does not depend on the thread count or on how the work is split.

mod convert;
mod micro;
mod pack;

pub use convert::{bf16_bits, bf16_to_f32};

use crate::LayerError;
use pack::{block, pack_lhs, pack_rhs, MR, NR};

/// One operand of a product: its elements and the strides between rows and between columns,
/// so a transposed operand is the same slice with its strides swapped.
#[derive(Debug, Clone, Copy)]
pub struct Operand<'a> {
    /// The elements; (row r, column c) is `data[r · row_stride + c · col_stride]`.
    pub data: &'a [f32],
    /// Elements between consecutive rows.
    pub row_stride: usize,
    /// Elements between consecutive columns.
    pub col_stride: usize,
}

impl<'a> Operand<'a> {
    /// A row-major `rows × cols` matrix.
    pub fn row_major(data: &'a [f32], cols: usize) -> Self {
        Operand {
            data,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major `rows × cols` matrix (a `cols × rows` operand).
    pub fn transposed(data: &'a [f32], cols: usize) -> Self {
        Operand {
            data,
            row_stride: 1,
            col_stride: cols,
        }
    }

    /// Checks that a `rows × cols` matrix under these strides lies inside `data`.
    fn check(&self, rows: usize, cols: usize, what: &'static str) -> Result<(), LayerError> {
        if rows == 0 || cols == 0 {
            return Ok(());
        }
        let reach = (rows - 1)
            .checked_mul(self.row_stride)
            .zip((cols - 1).checked_mul(self.col_stride))
            .and_then(|(r, c)| r.checked_add(c)?.checked_add(1));
        match reach {
            Some(need) if need <= self.data.len() => Ok(()),
            _ => Err(LayerError::Input {
                what,
                message: format!(
                    "a {rows} x {cols} matrix with strides (row {}, column {}) reaches past \
                     the {} elements given",
                    self.row_stride,
                    self.col_stride,
                    self.data.len()
                ),
            }),
        }
    }
}

/// The bf16 kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bf16Kernel {
    /// AVX-512 BF16 dot products (x86-64 CPUs that have them).
    Avx512Bf16,
    /// Portable code with the same arithmetic, on any CPU.
    Portable,
}

impl Bf16Kernel {
    /// The kernel [`matmul_bf16`] uses: AVX-512 BF16 where the CPU has it and
    /// `LSNN_BASELINE_ISA=1` is not set (valgrind hides it: the portable one runs there).
    pub fn active() -> Self {
        // Decided once per process: the environment and the CPU do not change under it.
        static ACTIVE: std::sync::OnceLock<Bf16Kernel> = std::sync::OnceLock::new();
        *ACTIVE.get_or_init(|| {
            if Bf16Kernel::Avx512Bf16.available() && !super::path::env_flag("LSNN_BASELINE_ISA") {
                Bf16Kernel::Avx512Bf16
            } else {
                Bf16Kernel::Portable
            }
        })
    }

    /// Whether this CPU can run the kernel.
    pub fn available(self) -> bool {
        match self {
            Bf16Kernel::Avx512Bf16 => micro::cpu_has_avx512_bf16(),
            Bf16Kernel::Portable => true,
        }
    }

    /// The name a checkpoint or a benchmark records: `"avx512_bf16"` or `"portable"`.
    pub fn name(self) -> &'static str {
        match self {
            Bf16Kernel::Avx512Bf16 => "avx512_bf16",
            Bf16Kernel::Portable => "portable",
        }
    }

    fn run(self, pairs: usize, a: &[u32], b: &[u32], tile: &mut micro::Tile) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Bf16Kernel::Avx512Bf16 => micro::avx512_bf16(pairs, a, b, tile),
            _ => micro::portable(pairs, a, b, tile),
        }
    }
}

/// Products below this many multiply-adds stay on one thread even when splitting is allowed.
const PAR_MIN: usize = 1 << 18;

/// dst (row-major `m × n`) = (`accumulate` ? dst : 0) + bf16(lhs) · bf16(rhs), with lhs
/// `m × k`, rhs `k × n`, each element of both rounded to the nearest bf16 and every product
/// summed in f32, on [`Bf16Kernel::active`]. `parallel` lets large products split their columns
/// over rayon (never inside [`super::sequential`]); the bits are the same either way.
///
/// # Errors
/// [`LayerError::Input`] when `dst` holds fewer than `m · n` elements or an operand's strides
/// reach past its slice.
pub fn matmul_bf16(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    accumulate: bool,
    lhs: Operand<'_>,
    rhs: Operand<'_>,
    parallel: bool,
) -> Result<(), LayerError> {
    matmul_bf16_on(
        Bf16Kernel::active(),
        (m, n, k),
        dst,
        accumulate,
        lhs,
        rhs,
        parallel,
    )
}

/// [`matmul_bf16`] on the given kernel.
///
/// # Errors
/// As [`matmul_bf16`], and [`LayerError::Input`] when the CPU cannot run `kernel`.
pub fn matmul_bf16_on(
    kernel: Bf16Kernel,
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    accumulate: bool,
    lhs: Operand<'_>,
    rhs: Operand<'_>,
    parallel: bool,
) -> Result<(), LayerError> {
    if !kernel.available() {
        return Err(LayerError::Input {
            what: "bf16 matmul kernel",
            message: format!(
                "{} needs AVX-512 BF16, which this CPU lacks; expected Bf16Kernel::Portable \
                 or Bf16Kernel::active()",
                kernel.name()
            ),
        });
    }
    let cells = m.checked_mul(n).ok_or_else(|| LayerError::Input {
        what: "bf16 matmul",
        message: format!("{m} x {n} elements overflow"),
    })?;
    if dst.len() < cells {
        return Err(LayerError::Input {
            what: "bf16 matmul destination",
            message: format!(
                "expected at least {m} x {n} = {cells} elements, got {}",
                dst.len()
            ),
        });
    }
    lhs.check(m, k, "bf16 matmul left operand")?;
    rhs.check(k, n, "bf16 matmul right operand")?;
    let dst = &mut dst[..cells];
    if !accumulate {
        dst.fill(0.0);
    }
    if cells == 0 || k == 0 {
        return Ok(());
    }
    let pairs = k.div_ceil(2);
    let wide = kernel == Bf16Kernel::Avx512Bf16;
    let a = pack_lhs(lhs, m, k, wide);
    let b = pack_rhs(rhs, k, n, wide);
    let panels = n.div_ceil(NR);
    let out = crate::kernel::SyncPtr(dst.as_mut_ptr());
    let panel = |j: usize| {
        let cols = (j * NR)..((j + 1) * NR).min(n);
        let mut tile: micro::Tile = [0.0; MR * NR];
        for i in 0..m.div_ceil(MR) {
            let rows = (i * MR)..((i + 1) * MR).min(m);
            for (r, t) in rows.clone().zip(tile.chunks_exact_mut(NR)) {
                // SAFETY: row r's columns `cols` lie in dst (r < m, cols ⊂ 0..n); each panel's
                // columns belong to one task only.
                let src = unsafe { out.slice(r * n + cols.start, cols.len()) };
                t[..cols.len()].copy_from_slice(src);
                t[cols.len()..].fill(0.0);
            }
            for t in tile[rows.len() * NR..].iter_mut() {
                *t = 0.0;
            }
            kernel.run(
                pairs,
                block(&a, i, pairs, MR),
                block(&b, j, pairs, NR),
                &mut tile,
            );
            for (r, t) in rows.zip(tile.chunks_exact(NR)) {
                // SAFETY: as above.
                let dst_row = unsafe { out.slice(r * n + cols.start, cols.len()) };
                dst_row.copy_from_slice(&t[..cols.len()]);
            }
        }
    };
    let work = cells.saturating_mul(k);
    if parallel
        && panels > 1
        && work >= PAR_MIN
        && rayon::current_num_threads() > 1
        && super::parallel_allowed()
    {
        use rayon::prelude::*;
        (0..panels).into_par_iter().for_each(panel);
    } else {
        (0..panels).for_each(panel);
    }
    Ok(())
}
