use thiserror::Error;

/// A decoding or cryptographic failure on bytes read from storage.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The input ended before the structure was complete.
    #[error("{what}: truncated (needed {needed} more bytes)")]
    Truncated { what: &'static str, needed: usize },
    /// The magic bytes or the version did not match.
    #[error("{what}: not a strata {what} (bad magic or unsupported version)")]
    BadMagic { what: &'static str },
    /// A MAC or AEAD tag did not verify: the bytes were changed or the key is wrong.
    #[error("{what}: authentication failed (the data was modified, or it belongs to another repository)")]
    BadMac { what: &'static str },
    /// A field holds a value that cannot be valid.
    #[error("{what}: invalid {field}: {detail}")]
    Invalid {
        what: &'static str,
        field: &'static str,
        detail: String,
    },
    /// The password does not open this key file.
    #[error("wrong password (no key file of this repository opens with it)")]
    WrongPassword,
}
