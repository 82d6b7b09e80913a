//! The config target: bytes as a config file, read the way `lsnn train --config` reads it (lsnn's
//! own file or the Python original's, told apart by their fields) and the way a checkpoint's
//! flat `config.json` is read back, then validated and sized as training would size it.

use super::Outcome;
use lsnn_train::config::read_run_config;
use lsnn_train::lsnn_layers::ModelConfig;
use lsnn_train::RunConfig;

/// Reads `bytes` as a config of both kinds; accepted when either reader accepts it and the
/// result passes validation and the size estimates.
pub fn config(bytes: &[u8]) -> Outcome {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Outcome::Refused("not UTF-8".into());
    };
    let user = Outcome::of(read_run_config(text).and_then(|c| check(&c)));
    let saved = Outcome::of(RunConfig::<ModelConfig>::from_json(text).and_then(|c| check(&c)));
    match (user, saved) {
        (Outcome::Accepted, _) | (_, Outcome::Accepted) => Outcome::Accepted,
        (Outcome::Refused(a), Outcome::Refused(b)) => {
            // The longer of the two: both must stay short.
            Outcome::Refused(if a.len() >= b.len() { a } else { b })
        }
    }
}

/// What `lsnn train` checks of a config before it builds anything.
fn check(c: &RunConfig<ModelConfig>) -> lsnn_train::Result<()> {
    c.model.validate()?;
    c.train.validate()?;
    c.model.parameter_count()?;
    c.model.training_step_bytes(c.train.batch_size)?;
    Ok(())
}
