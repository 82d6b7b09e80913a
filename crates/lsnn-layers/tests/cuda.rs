//! Every layer's composed path on a CUDA device (design §3.1: the path on every device without
//! a fused kernel) against the CPU: forward outputs and gradients. Each needs a device, so each
//! is ignored with that reason in the CUDA build's CI step (a link stub, no GPU) and run by
//! `scripts/device-check.sh` on a GPU machine.
#![cfg(feature = "cuda")]

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use lsnn_layers::{
    LanguageModel, Mode, ModelConfig, SeededInit, SeededRng, SeqInput, SequenceModel, Targets,
};

fn cuda() -> Device {
    Device::new_cuda(0).expect("a CUDA device")
}

fn close(what: &str, a: &Tensor, b: &Tensor, tol: f32) {
    let a = a.to_device(&Device::Cpu).unwrap();
    let d = common::max_abs_diff(&a, b);
    assert!(d <= tol, "{what}: CUDA and CPU differ by {d}");
}

/// The LM of `cfg` with the same seeded weights on `dev`.
fn lm_on(cfg: &ModelConfig, dev: &Device) -> (LanguageModel, VarMap) {
    let vm = VarMap::new();
    let vb = SeededInit::var_builder(&vm, SeededRng::new(3), DType::F32, dev);
    (LanguageModel::new(cfg, vb).unwrap(), vm)
}

#[test]
#[ignore = "needs a CUDA device (run by scripts/device-check.sh)"]
fn the_language_model_on_cuda_equals_the_cpu() {
    let cfg = common::small_config(2, 1);
    let (cpu, cpu_vm) = lm_on(&cfg, &Device::Cpu);
    let (gpu, gpu_vm) = lm_on(&cfg, &cuda());
    let ids = Tensor::new(
        &[[1u32, 5, 7, 2, 9, 3, 4], [0, 8, 8, 1, 2, 3, 11]],
        &Device::Cpu,
    )
    .unwrap();
    let (lc, loss_c) = cpu.loss(&ids, 0.1, &mut Mode::Eval).unwrap();
    let (lg, loss_g) = gpu
        .loss(&ids.to_device(&cuda()).unwrap(), 0.1, &mut Mode::Eval)
        .unwrap();
    close("logits", &lg, &lc, 1e-3);
    let gc = loss_c.objective.backward().unwrap();
    let gg = loss_g.objective.backward().unwrap();
    let (dc, dg) = (cpu_vm.data().lock().unwrap(), gpu_vm.data().lock().unwrap());
    for (k, v) in dc.iter() {
        let a = gg.get(dg[k].as_tensor()).expect(k);
        let b = gc.get(v.as_tensor()).expect(k);
        close(&format!("grad {k}"), a, b, 1e-3);
    }
}

#[test]
#[ignore = "needs a CUDA device (run by scripts/device-check.sh)"]
fn the_sequence_models_on_cuda_equal_the_cpu() {
    for task in ["regression", "classification"] {
        let cfg = ModelConfig {
            task_type: task.into(),
            input_dim: 3,
            output_dim: 4,
            ..common::small_config(2, 1)
        };
        let build = |dev: &Device| {
            let vm = VarMap::new();
            let vb = SeededInit::var_builder(&vm, SeededRng::new(5), DType::F32, dev);
            SequenceModel::new(&cfg, vb).unwrap()
        };
        let (cpu, gpu) = (build(&Device::Cpu), build(&cuda()));
        let x = SeededRng::new(7)
            .normal_tensor((2, 6, 3), 0.0, 1.0, DType::F32, &Device::Cpu)
            .unwrap();
        let spans = Tensor::full(0.7f32, (2, 6), &Device::Cpu).unwrap();
        let input = |dev: &Device| {
            SeqInput::new(x.to_device(dev).unwrap())
                .with_spans(spans.to_device(dev).unwrap())
                .with_lengths(vec![6, 3])
        };
        let out_c = cpu.forward(&input(&Device::Cpu), &mut Mode::Eval).unwrap();
        let out_g = gpu.forward(&input(&cuda()), &mut Mode::Eval).unwrap();
        if task == "regression" {
            close(
                task,
                &out_g.narrow(1, 0, 3).unwrap(),
                &out_c.narrow(1, 0, 3).unwrap(),
                1e-3,
            );
            let y = Targets::Values(Tensor::zeros((2, 6, 4), DType::F32, &cuda()).unwrap());
            assert!(gpu
                .loss(&input(&cuda()), &y, &mut Mode::Eval)
                .unwrap()
                .1
                .loss
                .is_finite());
        } else {
            close(task, &out_g, &out_c, 1e-3);
        }
    }
}
