//! Dataset construction: verified API-migration rows from real package versions (issue 30).
//!
//! - [`mine`]: both versions of a distribution in venvs on one interpreter ([`envs`]), an
//!   introspection [`snapshot`] of each, the [`diff`] into typed [`ApiChange`]s.
//! - [`verify`]: static checks, then four sandboxed runs per candidate pair (old code on both
//!   versions, new code on both), the verdict table, warning attribution, dedupe; writes rows in
//!   ReCode's six keys, a provenance sidecar, rejects with reasons and a report.
//! - [`synth`]: migration pairs written by any OpenAI-compatible endpoint, one per change.
//!
//! Models are reached over HTTP only; snippets run only through `recode-sandbox`.

pub mod candidate;
pub mod changelog;
pub mod diff;
pub mod envs;
mod error;
pub mod mine;
pub mod snapshot;
pub mod synth;
pub mod verify;

pub use diff::{ApiChange, ChangeKind, ChangeRef};
pub use error::{CurateError, Result};
pub use mine::{mine, MineOptions, MineReport};
pub use verify::{verify, write_outputs, VerifyOptions, VerifyOutput, VerifyReport};
