//! TLS options of a plugin (the `TLSConfig` of a `.json` spec file) and the rustls client
//! configuration built from them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::{Deserialize, Serialize};

/// TLS client options, as Moby's `tlsconfig.Options` for a plugin.
///
/// Sockets and `.spec` files get [`TlsOptions::insecure`]; a `.json` spec file may carry its
/// own. They matter only for `https://` addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TlsOptions {
    /// A PEM file of CA certificates to trust, in addition to the system roots.
    #[serde(rename = "CAFile", default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// A PEM client certificate (with `key_file`).
    #[serde(rename = "CertFile", default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// The PEM private key of `cert_file`.
    #[serde(rename = "KeyFile", default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate.
    #[serde(rename = "InsecureSkipVerify", default)]
    pub insecure_skip_verify: bool,
    /// Trust only `ca_file`, not the system roots as well.
    #[serde(rename = "ExclusiveRootPools", default)]
    pub exclusive_root_pools: bool,
    /// The lowest TLS version to speak, as Go's `tls.VersionTLS1x` code: `0x0303` (771) for
    /// TLS 1.2, `0x0304` (772) for TLS 1.3; 0 means the default, TLS 1.2. Lower versions are
    /// refused, as `go-connections` `tlsconfig.Client` refuses them.
    #[serde(rename = "MinVersion", default, skip_serializing_if = "is_zero")]
    pub min_version: u16,
}

fn is_zero(v: &u16) -> bool {
    *v == 0
}

/// Go's `tls.VersionTLS12`.
pub const TLS12: u16 = 0x0303;
/// Go's `tls.VersionTLS13`.
pub const TLS13: u16 = 0x0304;

impl TlsOptions {
    /// Options that accept any server certificate: what Moby gives sockets and `.spec` files.
    pub fn insecure() -> Self {
        Self { insecure_skip_verify: true, ..Self::default() }
    }

    /// Options that verify the server against `ca_file` (and the system roots).
    pub fn with_ca(ca_file: impl Into<PathBuf>) -> Self {
        Self { ca_file: Some(ca_file.into()), ..Self::default() }
    }

    /// Speak TLS `version` or later ([`TLS12`], [`TLS13`]).
    pub fn min_version(mut self, version: u16) -> Self {
        self.min_version = version;
        self
    }

    /// Present a client certificate.
    pub fn client_cert(
        mut self,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Self {
        self.cert_file = Some(cert_file.into());
        self.key_file = Some(key_file.into());
        self
    }
}

/// Why a TLS client configuration cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate or key file cannot be read.
    #[error("could not read {what} {path:?}")]
    Read {
        /// Which file: "CA certificate", "certificate", "key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("no {what} in PEM file {path:?}")]
    Empty {
        /// What was expected.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// `MinVersion` is not a TLS version code.
    #[error("invalid minimum TLS version: {version:x}")]
    InvalidMinVersion {
        /// The code given.
        version: u16,
    },
    /// `MinVersion` is below TLS 1.2.
    #[error("requested minimum TLS version is too low; should be at least: {TLS12:x}")]
    MinVersionTooLow {
        /// The code given.
        version: u16,
    },
    /// Only one of `CertFile` and `KeyFile` is set.
    #[error("a client certificate needs both CertFile and KeyFile")]
    HalfKeyPair,
    /// rustls rejected the configuration (bad key, bad certificate).
    #[error("invalid TLS configuration")]
    Rustls(#[source] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's trusted roots, read once per process. Unreadable system certificates are not
/// fatal: a CA file may still be enough.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: std::sync::OnceLock<RootCertStore> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        roots
    })
}

fn read_pem(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { what, path: path.to_owned(), source })
}

/// Build the rustls client configuration for `opts` (`None`: system roots, no client
/// certificate, as Moby does for an `https` address without `TLSConfig`).
pub(crate) fn client_config(opts: Option<&TlsOptions>) -> Result<Arc<ClientConfig>, TlsError> {
    let default = TlsOptions::default();
    let opts = opts.unwrap_or(&default);
    let versions: &[&'static rustls::SupportedProtocolVersion] = match opts.min_version {
        0 | TLS12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TLS13 => &[&rustls::version::TLS13],
        // SSL 3.0, TLS 1.0 and 1.1: versions Go knows, below the floor.
        version @ 0x0300..=0x0302 => return Err(TlsError::MinVersionTooLow { version }),
        version => return Err(TlsError::InvalidMinVersion { version }),
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(TlsError::Rustls)?;
    let builder = if opts.insecure_skip_verify {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
    } else {
        let mut roots = if opts.exclusive_root_pools && opts.ca_file.is_some() {
            RootCertStore::empty()
        } else {
            system_roots().clone()
        };
        if let Some(ca) = &opts.ca_file {
            let pem = read_pem("CA certificate", ca)?;
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
                if roots.add(cert).is_ok() {
                    added += 1;
                }
            }
            if added == 0 {
                return Err(TlsError::Empty { what: "certificates", path: ca.clone() });
            }
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match (&opts.cert_file, &opts.key_file) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let pem = read_pem("certificate", cert)?;
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(&pem).flatten().collect();
            if chain.is_empty() {
                return Err(TlsError::Empty { what: "certificates", path: cert.clone() });
            }
            let pem = read_pem("key", key)?;
            let key_der = PrivateKeyDer::from_pem_slice(&pem)
                .ok()
                .ok_or_else(|| TlsError::Empty { what: "private key", path: key.clone() })?;
            builder.with_client_auth_cert(chain, key_der).map_err(TlsError::Rustls)?
        }
        _ => return Err(TlsError::HalfKeyPair),
    };
    config.enable_sni = true;
    Ok(Arc::new(config))
}

/// The verifier behind `InsecureSkipVerify`: any certificate is accepted, but handshake
/// signatures are still checked so the session keys are the server's.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
