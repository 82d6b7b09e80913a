//! TensorBoard event files, written without TensorFlow or a protobuf compiler (design §10.1):
//! the TFRecord framing with masked CRC-32C ([`crc32c`]), the few `Event` messages lsnn needs
//! ([`proto`]), a file writer ([`EventFileWriter`]), a reader that checks every CRC
//! ([`read_event_file`]) and the trainer's events as scalars ([`TensorBoardRecorder`]).
//!
//! The records are byte for byte those of TensorBoard's own writer for the same scalars (the
//! fixture in `tests/fixtures/tensorboard/`, written by `scripts/fixtures/gen_tensorboard.py`).

pub mod crc32c;
pub mod proto;
mod reader;
mod recorder;
mod writer;

pub use proto::{EventPayload, SessionStatus, TbEvent};
pub use reader::{read_event_file, scalars_as_shown, split_records, Records, ShownScalar};
pub use recorder::{TensorBoardRecorder, FLUSH_INTERVAL};
pub use writer::{
    frame, prepare_dir, wall_time_now, EventFileWriter, FILE_PREFIX, FILE_VERSION, WRITER_NAME,
};
