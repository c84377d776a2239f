//! The server's certificate: a self-signed one made on first start, and
//! the SHA-256 fingerprint clients pin.

use std::path::{Path, PathBuf};

use crate::{Result, ServerError};

fn io<'a>(op: &'static str, p: &'a Path) -> impl FnOnce(std::io::Error) -> ServerError + 'a {
    move |source| ServerError::Io {
        op,
        path: p.display().to_string(),
        source,
    }
}

/// `dir/cert.pem` and `dir/key.pem`, made once (key mode 0600).
pub fn ensure_self_signed(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        names.push(h.trim().to_string());
    }
    let ck = rcgen::generate_simple_self_signed(names)
        .map_err(|e| ServerError::Tls(format!("making a self-signed certificate: {e}")))?;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = dir.join("key.pem.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io("create", &tmp))?;
    f.write_all(ck.signing_key.serialize_pem().as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, &key).map_err(io("rename", &key))?;
    std::fs::write(&cert, ck.cert.pem()).map_err(io("write", &cert))?;
    Ok((cert, key))
}

/// Lowercase hex SHA-256 of the first certificate in a PEM file (its DER).
pub fn fingerprint_of_pem(path: &Path) -> Result<String> {
    let pem = std::fs::read_to_string(path).map_err(io("read", path))?;
    let b64: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = base64_decode(&b64)
        .ok_or_else(|| ServerError::Tls(format!("{}: no PEM certificate", path.display())))?;
    let d = ring::digest::digest(&ring::digest::SHA256, &der);
    Ok(d.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_round() {
        assert_eq!(super::base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert!(super::base64_decode("***").is_none());
    }
}
