//! Server trust for Capstan clients. Agents and the CLI pin the server's certificate by the
//! SHA-256 fingerprint of its DER encoding (it travels in the install command and the
//! enrollment output), so a self-signed server certificate is safe to use and a different
//! certificate — even one signed by a public CA — is refused. Without a pin, the platform's
//! trust store is used.

use std::sync::Arc;
use std::time::Duration;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// A SHA-256 certificate fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    /// Parse `sha256:` + 64 hex digits, or 64 hex digits with optional `:` separators
    /// (the form `openssl x509 -fingerprint -sha256` prints).
    pub fn parse(s: &str) -> Result<Fingerprint> {
        let s = s.trim();
        let s = s
            .strip_prefix("sha256:")
            .or_else(|| s.strip_prefix("SHA256:"))
            .unwrap_or(s);
        let hexstr: String = s.chars().filter(|c| *c != ':').collect();
        let bytes = hex::decode(&hexstr)
            .map_err(|e| Error::Config(format!("invalid certificate fingerprint {s:?}: {e}")))?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| {
            Error::Config(format!(
                "invalid certificate fingerprint {s:?}: expected 32 bytes of SHA-256"
            ))
        })?;
        Ok(Fingerprint(arr))
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

/// The crypto provider used everywhere (aws-lc-rs), installed as the process default once.
pub fn provider() -> Arc<CryptoProvider> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

#[derive(Debug)]
struct PinnedVerifier {
    pin: Fingerprint,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        // The pin replaces name and chain validation: the operator gave us this exact
        // certificate's hash out of band, which is a stronger statement than any CA's.
        if Fingerprint::of_der(end_entity.as_ref()) == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "server certificate {} does not match the pinned fingerprint {}",
                Fingerprint::of_der(end_entity.as_ref()),
                self.pin
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Options shared by both clients.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Pin the server certificate to this fingerprint.
    pub pin: Option<Fingerprint>,
    /// Whole-request timeout; `None` = 30 s.
    pub timeout: Option<Duration>,
    /// User-Agent header.
    pub user_agent: Option<String>,
}

/// Build a reqwest client honouring the pin.
pub fn build_http_client(opts: &ClientOptions) -> Result<reqwest::Client> {
    let provider = provider();
    let mut builder = reqwest::Client::builder()
        .timeout(opts.timeout.unwrap_or(Duration::from_secs(30)))
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        .user_agent(
            opts.user_agent
                .clone()
                .unwrap_or_else(|| format!("capstan-client/{}", env!("CARGO_PKG_VERSION"))),
        );
    if let Some(pin) = opts.pin {
        let verifier = PinnedVerifier {
            pin,
            algorithms: provider.signature_verification_algorithms,
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS setup: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        builder = builder.tls_backend_preconfigured(config);
    }
    builder.build().map_err(|source| Error::Transport {
        url: String::new(),
        source,
    })
}

/// Normalise a server base URL: require http(s), strip the trailing slash.
pub fn normalize_base_url(url: &str) -> Result<String> {
    let trimmed = url.trim().trim_end_matches('/');
    if !(trimmed.starts_with("https://") || trimmed.starts_with("http://")) {
        return Err(Error::Config(format!(
            "server URL {url:?} must start with https:// or http://"
        )));
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_round_trips_in_all_accepted_forms() {
        let fp = Fingerprint::of_der(b"certificate");
        let shown = fp.to_string();
        assert!(shown.starts_with("sha256:"));
        assert_eq!(Fingerprint::parse(&shown).unwrap(), fp);
        let bare = hex::encode(fp.0);
        assert_eq!(Fingerprint::parse(&bare).unwrap(), fp);
        let openssl: Vec<String> = fp.0.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(Fingerprint::parse(&openssl.join(":")).unwrap(), fp);
    }

    #[test]
    fn bad_fingerprints_are_refused() {
        assert!(Fingerprint::parse("sha256:abcd").is_err());
        assert!(Fingerprint::parse("zz").is_err());
    }

    #[test]
    fn base_url_needs_a_scheme() {
        assert_eq!(
            normalize_base_url("https://x:8443/").unwrap(),
            "https://x:8443"
        );
        assert!(normalize_base_url("x:8443").is_err());
    }
}
