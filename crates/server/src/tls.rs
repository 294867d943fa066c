//! TLS for the server: load a configured certificate and key, or generate a self-signed one in
//! the data dir on first start (reused afterwards, so the fingerprint agents pinned stays
//! valid). [`TlsListener`] performs handshakes off the accept loop, so one slow or hostile
//! client cannot stall new connections.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Certificate chain, key and the leaf's fingerprints.
pub struct TlsMaterial {
    pub config: Arc<rustls::ServerConfig>,
    /// `sha256:<hex>` of the leaf certificate (what agents and the CLI pin).
    pub fingerprint: String,
    /// Base64 SHA-256 of the leaf's public key (SPKI), the form `curl --pinnedpubkey sha256//…`
    /// takes, so the install command itself can pin the server.
    pub spki_pin: String,
}

pub fn fingerprint_of(der: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(der)))
}

/// The curl public-key pin of a certificate.
pub fn spki_pin_of(der: &CertificateDer<'_>) -> anyhow::Result<String> {
    use base64::Engine as _;
    let anchor = webpki::anchor_from_trusted_cert(der).context("parsing the server certificate")?;
    let spki = webpki::spki_for_anchor(&anchor);
    Ok(base64::engine::general_purpose::STANDARD.encode(Sha256::digest(spki.as_ref())))
}

fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Generate `tls/cert.pem` and `tls/key.pem` in the data dir unless they exist.
pub fn ensure_self_signed(
    data_dir: &Path,
    extra_names: &[String],
) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let dir = data_dir.join("tls");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Ok(h) = nix::unistd::gethostname()
        && let Some(h) = h.to_str()
    {
        names.push(h.to_string());
    }
    names.extend(extra_names.iter().cloned());
    names.sort();
    names.dedup();
    let key_pair = rcgen::KeyPair::generate().context("generating TLS key")?;
    let mut params = rcgen::CertificateParams::new(names).context("certificate names")?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "capstan-server (self-signed)");
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2045, 1, 1);
    let certificate = params
        .self_signed(&key_pair)
        .context("self-signing certificate")?;
    write_private(&key, key_pair.serialize_pem().as_bytes())?;
    std::fs::write(&cert, certificate.pem())
        .with_context(|| format!("writing {}", cert.display()))?;
    Ok((cert, key))
}

/// Load PEM files into a rustls server config.
pub fn load(cert_path: &Path, key_path: &Path) -> anyhow::Result<TlsMaterial> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .with_context(|| format!("reading certificate {}", cert_path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing certificate {}", cert_path.display()))?;
    let leaf = certs
        .first()
        .with_context(|| format!("{} contains no certificate", cert_path.display()))?;
    let fingerprint = fingerprint_of(leaf.as_ref());
    let spki_pin = spki_pin_of(leaf)?;
    let key = PrivateKeyDer::from_pem_file(key_path)
        .with_context(|| format!("reading private key {}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("certificate and key do not match")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsMaterial {
        config: Arc::new(config),
        fingerprint,
        spki_pin,
    })
}

/// A listener yielding established TLS streams.
pub struct TlsListener {
    local: SocketAddr,
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let acceptor = acceptor.clone();
                let conn_tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls)) => {
                            let _ = conn_tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
                if tx.is_closed() {
                    break;
                }
            }
        });
        Ok(TlsListener { local, rx })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept task only ends when this receiver is dropped, so this is unreachable
            // while we are polled; park forever rather than panic.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_material_is_generated_once_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = ensure_self_signed(dir.path(), &[]).unwrap();
        let first = load(&c, &k).unwrap().fingerprint;
        let (c2, k2) = ensure_self_signed(dir.path(), &[]).unwrap();
        assert_eq!(
            first,
            load(&c2, &k2).unwrap().fingerprint,
            "restart must keep the pinned certificate"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&k).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(first.starts_with("sha256:") && first.len() == 7 + 64);
        // The SPKI pin is what `openssl x509 -pubkey | openssl pkey -pubin -outform der |
        // openssl dgst -sha256 -binary | base64` prints: 32 bytes in base64.
        let pin = load(&c, &k).unwrap().spki_pin;
        assert_eq!(pin.len(), 44, "{pin}");
        if std::process::Command::new("openssl")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "openssl x509 -in {} -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64",
                    c.display()
                ))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), pin);
        }
    }

    #[test]
    fn mismatched_or_missing_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(&dir.path().join("nope.pem"), &dir.path().join("nope.key"))
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("nope.pem"));
    }
}
