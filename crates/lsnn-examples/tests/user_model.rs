//! A user's candle model built from lsnn-layers' pieces (`lsnn_examples::sequence`: the spiking
//! encoder, a `Leaky` layer and a CfC with a `candle_nn::linear` head in one `VarMap`, trained with
//! `candle_nn::AdamW` — no lsnn-train) learns a task that needs memory: its held-out MSE ends
//! below half the mean predictor's.

#[test]
fn a_users_candle_model_with_lsnn_layers_learns() {
    let o = lsnn_examples::sequence::train(300).unwrap();
    println!(
        "held-out MSE {:.4} vs mean predictor {:.4}",
        o.model_mse, o.baseline_mse
    );
    assert!(
        o.model_mse < 0.5 * o.baseline_mse,
        "the model's MSE {} is not below half the mean predictor's {}",
        o.model_mse,
        o.baseline_mse
    );
}
