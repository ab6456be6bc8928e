//! What this binary is: version, commit and build date, stamped by
//! `build.rs`. One place, so `--version`, `/api/v1/info` and
//! `acd_build_info` can never disagree.

use serde::Serialize;

/// The crate version (`Cargo.toml`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Short git commit, `-dirty` with uncommitted changes, or `unknown`.
pub const COMMIT: &str = env!("ACDMON_GIT_COMMIT");
/// Build date (UTC), `SOURCE_DATE_EPOCH` when set.
pub const BUILD_DATE: &str = env!("ACDMON_BUILD_DATE");

/// The `--version` line: `0.1.0 (commit 1a2b3c4d5e6f, built 2026-12-06)`.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("ACDMON_GIT_COMMIT"),
    ", built ",
    env!("ACDMON_BUILD_DATE"),
    ")"
);

#[derive(Debug, Clone, Serialize)]
pub struct BuildInfo {
    pub version: &'static str,
    pub commit: &'static str,
    pub build_date: &'static str,
}

pub fn get() -> BuildInfo {
    BuildInfo {
        version: VERSION,
        commit: COMMIT,
        build_date: BUILD_DATE,
    }
}
