//! A candle model built from lsnn's layers, trained with candle-nn alone.
//!
//! `cargo run -p lsnn-examples --example own_model [-- STEPS]`
//!
//! The model (`lsnn_examples::sequence`): lsnn's spiking encoder (a candle `ModuleT`, dropout
//! from its own seeded generator), a `Leaky` layer (`Module`) over the positions and a CfC
//! (`Module`, also candle's `RNN`), with a `candle_nn::linear` head — one `VarMap`, built through
//! lsnn's seeded builder, trained with `candle_nn::AdamW`. The target at each position is a
//! decaying sum of the inputs so far. Prints the held-out MSE against the mean predictor's and
//! exits non-zero unless it is below half of it.

fn main() -> std::process::ExitCode {
    let steps = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("STEPS is a number"))
        .unwrap_or(300);
    let o = match lsnn_examples::sequence::train(steps) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!(
        "after {steps} steps: held-out MSE {:.4}, mean predictor {:.4} ({:.1}% of it)",
        o.model_mse,
        o.baseline_mse,
        100.0 * o.model_mse / o.baseline_mse
    );
    if o.model_mse < 0.5 * o.baseline_mse {
        println!("ok: below half the mean predictor's MSE");
        std::process::ExitCode::SUCCESS
    } else {
        eprintln!("FAILED: not below half the mean predictor's MSE");
        std::process::ExitCode::FAILURE
    }
}
