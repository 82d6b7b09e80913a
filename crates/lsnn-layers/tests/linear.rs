//! The fused linear custom op against the composed matmul + bias, forward and backward.

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::VarMap;
use lsnn_layers::nn::Linear;
use lsnn_layers::{SeededInit, SeededRng};

fn check(dtype: DType, lead: &[usize], k: usize, n: usize, tol: f64) {
    let vm = VarMap::new();
    let lin = Linear::new(
        k,
        n,
        SeededInit::var_builder(&vm, SeededRng::new(3), dtype, &Device::Cpu),
    )
    .unwrap();
    let mut shape = lead.to_vec();
    shape.push(k);
    let x = Var::from_tensor(
        &SeededRng::new(4)
            .normal_tensor(shape, 0.0, 1.0, dtype, &Device::Cpu)
            .unwrap(),
    )
    .unwrap();
    let wts = SeededRng::new(5)
        .normal_tensor([lead, &[n]].concat(), 0.0, 1.0, dtype, &Device::Cpu)
        .unwrap();
    let fused = lin.forward(x.as_tensor()).unwrap();
    let composed =
        lsnn_layers::fused::reference::linear(x.as_tensor(), lin.weight(), lin.bias()).unwrap();
    assert_eq!(fused.dims(), composed.dims());
    let d = (&fused - &composed)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(d <= tol, "forward differs by {d}");
    let gf = (fused * &wts)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let gc = (composed * &wts)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let vars = vm.all_vars();
    assert_eq!(vars.len(), 2);
    for v in vars.iter().chain(std::iter::once(&x)) {
        let a = gf.get(v.as_tensor()).unwrap();
        let b = gc.get(v.as_tensor()).unwrap();
        let scale = b
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
            .max(1.0);
        let d = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(d <= tol * scale, "gradient differs by {d} (scale {scale})");
    }
}

#[test]
fn fused_linear_equals_the_composed_one() {
    check(DType::F32, &[7], 5, 3, 1e-5);
    check(DType::F32, &[4, 64], 128, 64, 1e-4);
    check(DType::F32, &[3, 2, 5], 33, 17, 1e-5);
    check(DType::F64, &[9], 12, 10, 1e-12);
    // Large enough to take the parallel gemm path.
    check(DType::F32, &[512], 128, 256, 1e-4);
    let _ = Tensor::zeros(1, DType::F32, &Device::Cpu);
}

#[test]
fn scalars_and_wrong_widths_are_errors_not_panics() {
    let vm = VarMap::new();
    let lin = Linear::new(
        4,
        3,
        SeededInit::var_builder(&vm, SeededRng::new(1), DType::F32, &Device::Cpu),
    )
    .unwrap();
    let scalar = Tensor::new(1f32, &Device::Cpu).unwrap();
    let wide = Tensor::zeros((2, 5), DType::F32, &Device::Cpu).unwrap();
    for x in [&scalar, &wide] {
        let e = lin.forward(x).unwrap_err().to_string();
        assert!(e.contains("expected shape [.., 4]"), "{e}");
        assert!(lsnn_layers::fused::reference::linear(x, lin.weight(), lin.bias()).is_err());
    }
    assert_eq!(
        lin.forward(&Tensor::zeros((2, 3, 4), DType::F32, &Device::Cpu).unwrap())
            .unwrap()
            .dims(),
        &[2, 3, 3]
    );
}
