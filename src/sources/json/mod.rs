//! The native JSON-lines feed (contract section 3).

pub mod decode;
pub mod replay;
pub mod task;

pub use decode::{Decoded, LineDecoder, decode_line, encode};
pub use replay::{JsonReplay, replay_decoder};
pub use task::spawn;
