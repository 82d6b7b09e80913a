//! Bad input to the model and its layers (design §8.2): wrong shapes, ranks, ids and sequence
//! lengths are typed `Shape`/`Config` errors, and NaN or infinity is refused by every layer entry
//! point.

mod common;

use candle_core::{DType, Device, Tensor};
use lsnn_layers::block::BlockState;
use lsnn_layers::nn::check_finite;
use lsnn_layers::{init_model, LayerError, Mode, SeededRng};

use common::{block, small_config};

fn shape_error(r: lsnn_layers::Result<impl std::fmt::Debug>, what: &str) -> String {
    match r {
        Err(e @ LayerError::Shape { .. }) => e.to_string(),
        other => panic!("{what}: expected a Shape error, got {other:?}"),
    }
}

#[test]
fn bad_input_gives_typed_errors() {
    let cfg = small_config(2, 1);
    let dev = Device::Cpu;
    let (model, _vm) = init_model(&cfg, SeededRng::new(9), &dev).unwrap();
    let fwd = |ids: &Tensor| model.forward(ids, &mut Mode::Eval);

    // Rank 1, rank 3 and float ids.
    let msg = shape_error(fwd(&Tensor::new(&[1u32, 2, 3], &dev).unwrap()), "rank 1");
    assert!(msg.contains("[3]"), "{msg}");
    shape_error(
        fwd(&Tensor::zeros((1, 2, 2), DType::U32, &dev).unwrap()),
        "rank 3",
    );
    shape_error(
        fwd(&Tensor::zeros((1, 4), DType::F32, &dev).unwrap()),
        "f32 ids",
    );

    // An id ≥ vocab, and a negative id: the error names the id, row and position.
    let v = cfg.vocab_size as u32;
    let big = Tensor::new(&[[1u32, 2, 3], [4, v, 5]], &dev).unwrap();
    match fwd(&big) {
        Err(
            e @ LayerError::TokenOutOfRange {
                id,
                vocab,
                batch,
                position,
            },
        ) => {
            assert_eq!(
                (id, vocab, batch, position),
                (v as i64, cfg.vocab_size, 1, 1)
            );
            assert!(e.to_string().contains("position 1"), "{e}");
        }
        other => panic!("id = vocab accepted: {other:?}"),
    }
    let neg = Tensor::new(&[[0i64, 1, 2, -1]], &dev).unwrap();
    match fwd(&neg) {
        Err(LayerError::TokenOutOfRange {
            id,
            batch,
            position,
            ..
        }) => assert_eq!((id, batch, position), (-1, 0, 3)),
        other => panic!("negative id accepted: {other:?}"),
    }
    // The largest valid id is fine.
    assert!(fwd(&Tensor::new(&[[v - 1, 0]], &dev).unwrap()).is_ok());

    // A training window's last column is a target only: it is checked too, in i64, before a
    // cast to u32 could wrap 2^32 + 3 into the vocabulary — by both loss paths.
    for bad in [(1i64 << 32) + 3, -2] {
        let window = Tensor::new(&[[1i64, 2, 3], [4, 5, bad]], &dev).unwrap();
        let plain = model.loss(&window, 0.0, &mut Mode::Eval);
        let staged = model.loss_and_grads(&window, 0.0, &mut Mode::Eval, 1.0);
        for r in [plain.map(|_| ()), staged.map(|_| ())] {
            match r {
                Err(LayerError::TokenOutOfRange {
                    id,
                    batch,
                    position,
                    ..
                }) => assert_eq!((id, batch, position), (bad, 1, 2)),
                other => panic!("target {bad} accepted: {other:?}"),
            }
        }
    }

    // Longer than the position table.
    let max = cfg.max_position_embeddings;
    let long = Tensor::zeros((1, max + 1), DType::U32, &dev).unwrap();
    match fwd(&long) {
        Err(LayerError::SequenceTooLong { len, max: m, .. }) => {
            assert_eq!((len, m), (max + 1, max))
        }
        other => panic!("too long accepted: {other:?}"),
    }
    assert!(fwd(&Tensor::zeros((1, max), DType::U32, &dev).unwrap()).is_ok());
    // The loss refuses a sequence with no next token.
    assert!(matches!(
        model.loss(
            &Tensor::zeros((2, 1), DType::U32, &dev).unwrap(),
            0.0,
            &mut Mode::Eval
        ),
        Err(LayerError::Shape { .. })
    ));

    // Block inputs of the wrong width or rank, and a wrong initial state.
    let blk = block(40);
    let m = &mut Mode::Eval;
    let d = blk.config().d_model;
    let x = Tensor::zeros((2, 3, d), DType::F32, &dev).unwrap();
    assert!(blk.forward(&x, None, m).is_ok());
    shape_error(
        blk.forward(
            &Tensor::zeros((2, 3, d + 1), DType::F32, &dev).unwrap(),
            None,
            m,
        ),
        "block width",
    );
    shape_error(
        blk.forward(&Tensor::zeros((6, d), DType::F32, &dev).unwrap(), None, m),
        "block rank",
    );
    for bad_h in [(2usize, 5usize), (3, 6), (2, 7)] {
        let h = BlockState {
            h: Tensor::zeros(bad_h, DType::F32, &dev).unwrap(),
        };
        let msg = shape_error(blk.forward(&x, Some(&h), m), "initial h");
        assert!(msg.contains("[2, 6]"), "{msg}");
    }
    let mut state = BlockState {
        h: Tensor::zeros((3, 6), DType::F32, &dev).unwrap(),
    };
    shape_error(
        blk.step(
            &Tensor::zeros((2, d), DType::F32, &dev).unwrap(),
            &mut state,
            m,
        ),
        "step state",
    );
    shape_error(blk.step(&x, &mut state, m), "step rank");

    // NaN and infinity.
    let t = Tensor::new(&[1.0f32, f32::NAN, 2.0, f32::INFINITY], &dev).unwrap();
    match check_finite(&t, "test input") {
        Err(e @ LayerError::NonFinite { count, what }) => {
            assert_eq!((count, what), (2, "test input"));
            assert!(e.to_string().contains("test input"));
        }
        other => panic!("NaN accepted: {other:?}"),
    }
    assert!(check_finite(&Tensor::new(&[1.0f64, -3.0], &dev).unwrap(), "ok").is_ok());
}

#[test]
fn non_finite_float_inputs_are_refused_by_every_layer_entry_point() {
    let blk = block(3);
    let d = blk.config().d_model;
    let mut v = vec![0.5f32; 2 * 3 * d];
    v[7] = f32::NAN;
    v[11] = f32::INFINITY;
    let x = Tensor::from_vec(v, (2, 3, d), &Device::Cpu).unwrap();
    let err = blk.forward(&x, None, &mut Mode::Eval).unwrap_err();
    assert!(
        matches!(err, LayerError::NonFinite { count: 2, .. }),
        "{err}"
    );
    let mut state = blk.zero_state(2, DType::F32, &Device::Cpu).unwrap();
    let x0 = x.narrow(1, 0, 1).unwrap().squeeze(1).unwrap();
    assert!(matches!(
        blk.step(&x0, &mut state, &mut Mode::Eval),
        Err(LayerError::NonFinite { .. })
    ));
    let flat = x.reshape((6, d)).unwrap();
    assert!(matches!(
        blk.encoder().rate(&flat, &mut Mode::Eval),
        Err(LayerError::NonFinite { .. })
    ));
    // The same input without the bad values is accepted.
    let ok = Tensor::full(0.5f32, (2, 3, d), &Device::Cpu).unwrap();
    assert!(blk.forward(&ok, None, &mut Mode::Eval).is_ok());
}
