//! A run's record beyond its checkpoints (design §10): what a run writes for people and tools to
//! look at while and after it trains: its own record in the run directory ([`run`]) and
//! TensorBoard event files ([`tensorboard`]).

pub mod run;
pub mod tensorboard;
