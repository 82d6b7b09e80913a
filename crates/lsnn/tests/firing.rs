//! Spike diagnostics from the command line (design §10.3): `lsnn train` prints each epoch's
//! firing rates, and a warning naming each layer of a model built to be silent, with the
//! fixes; a model that fires gets no warning.

mod support;

use support::{scratch, setup, train_tiny, LAYERS};

#[test]
fn each_epoch_prints_the_rates_and_a_silent_model_is_warned_about() {
    let d = scratch("firing");
    setup(&d);
    let healthy = train_tiny(&d, "healthy", &["--set", "num_epochs=1"]);
    let line = healthy
        .lines()
        .find(|l| l.starts_with("firing rate: "))
        .unwrap_or_else(|| panic!("no firing line in:\n{healthy}"));
    for name in LAYERS {
        assert!(line.contains(&format!("{name} ")), "{name} in {line}");
    }
    assert!(!healthy.contains("warning:"), "{healthy}");

    let silent = train_tiny(
        &d,
        "silent",
        &["--set", "num_epochs=1", "--set", "spike_threshold=1000000"],
    );
    let warned: Vec<&str> = silent
        .lines()
        .filter(|l| l.starts_with("warning: spiking layer "))
        .collect();
    assert_eq!(warned.len(), LAYERS.len(), "{silent}");
    for (w, name) in warned.iter().zip(LAYERS) {
        assert!(
            w.starts_with(&format!("warning: spiking layer {name} is silent")),
            "{w}"
        );
        assert!(w.contains("mean rate 0.0000, 100.0% of its"), "{w}");
        assert!(w.contains("lower spike_threshold"), "{w}");
    }
}
