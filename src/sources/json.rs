//! The native JSON-lines feed (contract section 3).
