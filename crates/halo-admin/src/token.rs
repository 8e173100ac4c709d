//! The bearer token of `[admin] token_file`: read, and refused when it could
//! be guessed or read by anyone on the host.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// Tokens shorter than this many bytes are refused.
pub const MIN_TOKEN_LEN: usize = 16;

/// Why a token file is refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file cannot be read.
    #[error("[admin] token_file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Any user of the host may read or write it.
    #[error(
        "[admin] token_file {path} can be read or written by any user (mode {mode:04o}): \
         run `chmod o-rwx {path}` (0600, or 0640 for a group halo runs in; on Kubernetes, \
         defaultMode: 0400 on the secret's volume)"
    )]
    OpenToAll {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Fewer than [`MIN_TOKEN_LEN`] bytes (after trimming whitespace).
    #[error(
        "[admin] token_file {path}: the token is {len} bytes long; write at least \
         {MIN_TOKEN_LEN} random ones, e.g. `openssl rand -hex 32 > {path}`"
    )]
    TooShort {
        /// The file.
        path: PathBuf,
        /// The token's length.
        len: usize,
    },
}

/// Reads the token in `path` (trimmed). A file any user can read or write,
/// or a token under [`MIN_TOKEN_LEN`] bytes, is refused; a group-writable
/// file is logged as a warning.
///
/// # Errors
/// [`TokenError`].
pub fn read_token_file(path: &Path) -> Result<String, TokenError> {
    let read = |source| TokenError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o007 != 0 {
        return Err(TokenError::OpenToAll {
            path: path.to_path_buf(),
            mode,
        });
    }
    if mode & 0o020 != 0 {
        tracing::warn!(
            path = %path.display(), mode = format!("{mode:04o}"),
            "the admin token file is writable by its group: its members can change the token"
        );
    }
    let text = std::fs::read_to_string(path).map_err(read)?;
    let token = text.trim();
    if token.len() < MIN_TOKEN_LEN {
        return Err(TokenError::TooShort {
            path: path.to_path_buf(),
            len: token.len(),
        });
    }
    Ok(token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str, mode: u32) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("halo-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn tokens_that_anyone_could_read_or_guess_are_refused() {
        let good = "0123456789abcdef0123";
        assert_eq!(
            read_token_file(&file("ok", &format!("{good}\n"), 0o600)).unwrap(),
            good
        );
        assert_eq!(read_token_file(&file("group", good, 0o640)).unwrap(), good);
        for mode in [0o644, 0o604, 0o602, 0o666] {
            let e = read_token_file(&file(&format!("m{mode:o}"), good, mode)).unwrap_err();
            assert!(matches!(e, TokenError::OpenToAll { .. }), "{mode:o}: {e}");
            assert!(e.to_string().contains("chmod o-rwx"), "{e}");
        }
        for short in ["x", "", "  fifteen-bytes! \n"] {
            let e = read_token_file(&file("short", short, 0o600)).unwrap_err();
            assert!(matches!(e, TokenError::TooShort { .. }), "{short:?}: {e}");
        }
        assert!(matches!(
            read_token_file(Path::new("/nonexistent/halo.token")),
            Err(TokenError::Read { .. })
        ));
    }
}
