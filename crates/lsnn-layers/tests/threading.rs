//! `lsnn_layers::init()`: the threading policy a library user gets (candle's elementwise pool
//! with no spinning workers), idempotent, and a warning with `too_late` when candle's pool was
//! already running. The pool is process-wide, so the late case runs in a child process.

use candle_core::{DType, Device, Tensor};

const LATE: &str = "LSNN_THREADING_TEST_LATE";

#[test]
fn init_sets_the_policy_once_and_says_when_it_came_too_late() {
    if std::env::var_os(LATE).is_some() {
        // The child: candle's pool starts (an elementwise op of 64 Ki elements) before init.
        let a = Tensor::ones(1 << 17, DType::F32, &Device::Cpu).unwrap();
        let _ = (&a + &a).unwrap();
        let t = lsnn_layers::init();
        println!("late: workers {} too_late {}", t.candle_workers, t.too_late);
        assert_eq!(t.too_late, t.candle_workers > 0);
        return;
    }
    let user = std::env::var_os("CANDLE_NUM_THREADS").is_some();
    let t = lsnn_layers::init();
    assert!(!t.too_late);
    assert_eq!(t.user_setting, user);
    if !user {
        assert_eq!(t.candle_workers, 0, "the policy: no spinning workers");
        assert_eq!(std::env::var("CANDLE_NUM_THREADS").unwrap(), "1");
    }
    assert_eq!(lsnn_layers::init(), t, "idempotent");

    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "init_sets_the_policy_once_and_says_when_it_came_too_late",
            "--nocapture",
        ])
        .env(LATE, "1")
        .env_remove("CANDLE_NUM_THREADS")
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // With two threads asked for, candle's pool has one worker: init came too late.
    assert!(text.contains("late: workers 1 too_late true"), "{text}");
}
