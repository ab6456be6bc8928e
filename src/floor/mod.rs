//! Floor rules beyond the emergency ladder: the written rules a duty
//! supervisor keeps (shifts and their handover).

pub mod handover;
pub mod shift;
