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
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_file(path)
        .map_err(|e| ServerError::Tls(format!("{}: no PEM certificate ({e})", path.display())))?;
    let d = ring::digest::digest(&ring::digest::SHA256, der.as_ref());
    Ok(strata_store::server::hex(d.as_ref()))
}
