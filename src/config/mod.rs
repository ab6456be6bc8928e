//! Configuration (contract section 2): TOML, validated with positions.

mod values;

pub use values::{HumanDuration, Secret};
