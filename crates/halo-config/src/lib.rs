//! halo's configuration: the TOML contract of DESIGN.md §2, loaded in stages.
//!
//! ```text
//!   text ──parse──▶ RawConfig ──validate──▶ Config ──(the binary binds sockets)
//!         serde,        spans kept,          typed, defaults filled,
//!         unknown keys  nothing trusted      cross-references checked
//!         rejected
//! ```
//!
//! Both stages collect every problem they can find; the caller gets them all at
//! once as [`Diagnostic`]s that name `file:line:col` and say what to write.
//! Loading does no I/O but reading the one file.

#![forbid(unsafe_code)]

mod error;
mod load;
mod raw;
mod types;
mod validate;

use std::path::Path;

pub use error::{ConfigError, Diagnostic, Origin};
pub use types::*;

/// Reads and validates the config file at `path`.
///
/// # Errors
/// [`ConfigError::Read`] if the file cannot be read, [`ConfigError::Invalid`]
/// with every problem found otherwise.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Validates `text` as if read from `path` (used in messages and to resolve
/// relative paths such as `admin.token_file`).
///
/// # Errors
/// [`ConfigError::Invalid`] with every problem found.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let mut report = error::Report::new(path, text);
    let raw = load::deserialize(&mut report, text);
    let base_dir = path.parent().unwrap_or_else(|| Path::new("."));
    // Stage 2 runs only on a complete stage-1 result, but the problems stage 1
    // recovered from (unknown keys, bad values) are reported together with it.
    let config = raw.and_then(|raw| validate::validate(&mut report, &raw, base_dir));
    match config {
        Some(c) if report.diags.is_empty() => Ok(c),
        _ => {
            let mut diags = report.diags;
            diags.sort_by_key(|d| (d.line, d.col));
            diags.dedup();
            Err(ConfigError::Invalid(diags))
        }
    }
}
