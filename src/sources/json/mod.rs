//! The native JSON-lines feed (contract section 3).

pub mod decode;
pub mod task;

pub use decode::{Decoded, LineDecoder, decode_line, encode};
