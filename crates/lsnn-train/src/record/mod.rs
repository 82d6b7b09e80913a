//! A run's record beyond its checkpoints (design §10): what a run writes for people and tools to
//! look at while and after it trains: its own record in the run directory ([`run`]),
//! TensorBoard event files ([`tensorboard`]) and a live page served while it trains
//! ([`dashboard`]).

pub mod dashboard;
pub mod run;
pub mod tensorboard;
