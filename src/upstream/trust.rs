//! TLS trust for upstreams: the system roots, plus the CAs in `tls_trusted_ca`.
//!
//! Pingora's rustls connector takes either the platform roots or one CA file. To have both, the
//! gateway writes the system roots and the operator's CAs into one bundle, which the connector
//! reads once when it is built; the bundle file is removed right after.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use pingora_core::tls::{load_ca_file_into_store, load_native_certs, RootCertStore};

/// A CA bundle on disk for the lifetime of this value.
pub struct CaBundle {
    path: PathBuf,
}

impl CaBundle {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for CaBundle {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Check that a PEM file holds only certificates rustls accepts as trust anchors.
pub fn check_ca_file(path: &Path) -> Result<usize, String> {
    let mut store = RootCertStore::empty();
    load_ca_file_into_store(path, &mut store).map_err(|e| format!("{}: {}", path.display(), e))?;
    if store.is_empty() {
        return Err(format!("{}: no certificate found", path.display()));
    }
    Ok(store.len())
}

/// Write the system roots and the CAs of `extra` into one PEM bundle.
pub fn bundle_with_system_roots(extra: &Path) -> Result<CaBundle, String> {
    check_ca_file(extra)?;
    let extra_pem = std::fs::read(extra).map_err(|e| format!("{}: {e}", extra.display()))?;
    let mut pem = Vec::with_capacity(256 * 1024);
    match load_native_certs() {
        Ok(certs) => {
            for cert in certs {
                pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
                let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
                for line in b64.as_bytes().chunks(64) {
                    pem.extend_from_slice(line);
                    pem.push(b'\n');
                }
                pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
            }
        }
        Err(e) => log::warn!("system CA certificates could not be loaded ({e}); trusting only {}", extra.display()),
    }
    pem.extend_from_slice(&extra_pem);
    if !pem.ends_with(b"\n") {
        pem.push(b'\n');
    }
    let path = std::env::temp_dir().join(format!("aigate-ca-{}-{}.pem", std::process::id(), nanos()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| format!("writing the CA bundle {}: {e}", path.display()))?;
    f.write_all(&pem).map_err(|e| format!("writing the CA bundle {}: {e}", path.display()))?;
    let bundle = CaBundle { path };
    check_ca_file(bundle.path())?;
    Ok(bundle)
}

fn nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pem");
        std::fs::write(&p, "not a pem").unwrap();
        assert!(check_ca_file(&p).is_err());
        assert!(check_ca_file(&dir.path().join("missing.pem")).is_err());
    }

    #[test]
    fn bundles_system_roots_and_the_extra_ca() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["test-ca".into()]).unwrap();
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, ca.cert.pem()).unwrap();
        assert_eq!(check_ca_file(&p).unwrap(), 1);
        let bundle = bundle_with_system_roots(&p).unwrap();
        let n = check_ca_file(bundle.path()).unwrap();
        assert!(n >= 1);
        let path = bundle.path().to_path_buf();
        drop(bundle);
        assert!(!path.exists());
    }
}
