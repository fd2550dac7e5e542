//! TLS for registries: system roots plus the CAs and client certificates of a certs.d
//! directory (Moby's `registry.ReadCertsDirectory`), or no verification at all for an
//! insecure registry (Moby sets `InsecureSkipVerify` for those). rustls on ring, always.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::DistributionError;

fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())).clone()
}

fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        roots
    })
}

fn certs_err(path: &Path, reason: impl Into<String>) -> DistributionError {
    DistributionError::Certs { path: path.to_path_buf(), reason: reason.into() }
}

/// What a `<certs_dir>/<host:port>/` directory holds.
#[derive(Default)]
struct CertsDir {
    cas: Vec<CertificateDer<'static>>,
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

/// Reads `dir` as Moby does: every `*.crt` is a CA; every `*.cert` needs the `*.key` of the
/// same stem (and the other way round). A missing directory is no certificates.
fn read_certs_dir(dir: &Path) -> Result<CertsDir, DistributionError> {
    let mut out = CertsDir::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(certs_err(dir, e.to_string())),
    };
    let mut names: Vec<String> =
        entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    for name in &names {
        let path = dir.join(name);
        if let Some(stem) = name.strip_suffix(".crt") {
            let _ = stem;
            let certs: Vec<_> = CertificateDer::pem_file_iter(&path)
                .map_err(|e| certs_err(&path, e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| certs_err(&path, e.to_string()))?;
            if certs.is_empty() {
                return Err(certs_err(&path, "no certificate in file"));
            }
            out.cas.extend(certs);
        } else if let Some(stem) = name.strip_suffix(".cert") {
            let key = format!("{stem}.key");
            if !names.contains(&key) {
                return Err(certs_err(
                    dir,
                    format!(
                        "missing key {key} for client certificate {name}. Note that CA certificates should use the extension .crt"
                    ),
                ));
            }
            let chain: Vec<_> = CertificateDer::pem_file_iter(&path)
                .map_err(|e| certs_err(&path, e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| certs_err(&path, e.to_string()))?;
            let key_path = dir.join(&key);
            let key = PrivateKeyDer::from_pem_file(&key_path)
                .map_err(|e| certs_err(&key_path, e.to_string()))?;
            if out.client.is_none() && !chain.is_empty() {
                out.client = Some((chain, key));
            }
        } else if let Some(stem) = name.strip_suffix(".key") {
            if !names.contains(&format!("{stem}.cert")) {
                return Err(certs_err(
                    dir,
                    format!("missing client certificate {stem}.cert for key {name}"),
                ));
            }
        }
    }
    Ok(out)
}

/// The rustls configuration for `hostport`: verified against the system roots and the
/// certs.d CAs, or not verified at all when `insecure`; with the certs.d client certificate.
pub(crate) fn client_config(
    hostport: &str,
    certs_dir: Option<&Path>,
    insecure: bool,
) -> Result<Arc<ClientConfig>, DistributionError> {
    let tls = |source| DistributionError::Tls { host: hostport.to_owned(), source };
    let dir = match certs_dir {
        Some(d) => read_certs_dir(&d.join(hostport))?,
        None => CertsDir::default(),
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(tls)?;
    let builder = if insecure {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
    } else {
        let mut roots = system_roots().clone();
        for ca in dir.cas {
            roots.add(ca).map_err(tls)?;
        }
        builder.with_root_certificates(roots)
    };
    let config = match dir.client {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(tls)?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Accepts any certificate (insecure registries), still checking handshake signatures.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certs_dir_rules() {
        let tmp = tempfile::tempdir().unwrap();
        let host = tmp.path().join("reg.example:5000");
        std::fs::create_dir(&host).unwrap();
        // Missing directory: no certificates, fine.
        assert!(client_config("other:1", Some(tmp.path()), false).is_ok());
        let ca = rcgen::generate_simple_self_signed(vec!["reg.example".into()]).unwrap();
        std::fs::write(host.join("ca.crt"), ca.cert.pem()).unwrap();
        assert!(client_config("reg.example:5000", Some(tmp.path()), false).is_ok());
        // A client certificate without its key is refused with Moby's text.
        std::fs::write(host.join("client.cert"), ca.cert.pem()).unwrap();
        let err = client_config("reg.example:5000", Some(tmp.path()), false).unwrap_err();
        assert!(
            err.to_string().contains("missing key client.key for client certificate client.cert"),
            "{err}"
        );
        std::fs::write(host.join("client.key"), ca.key_pair.serialize_pem()).unwrap();
        assert!(client_config("reg.example:5000", Some(tmp.path()), false).is_ok());
        // A CA file that holds no certificate is refused.
        std::fs::write(host.join("bad.crt"), "nothing").unwrap();
        assert!(matches!(
            client_config("reg.example:5000", Some(tmp.path()), false),
            Err(DistributionError::Certs { .. })
        ));
    }
}
