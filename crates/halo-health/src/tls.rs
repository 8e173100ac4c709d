//! TLS towards servers (`[pool.tls]`): the rustls client side shared by the
//! proxy's connections and the health checks (HAProxy's `ssl` implies
//! `check-ssl`). Verification is on unless `verify = false`: against
//! `ca_file`, else the system's roots; the name checked (and sent as SNI)
//! is `sni`, else the server's host name, else its IP address.

use std::sync::Arc;

use halo_config::{Diagnostic, PoolTls};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;

/// A pool's TLS client as the registry shares it (one per pool and config
/// load: reading the CA file or the system's roots is not done per server),
/// or why it could not be built (every use then fails, saying so).
pub type PoolTlsClient = Arc<Result<ServerTls, String>>;

/// A pool's TLS client: config built once, used for every connection.
#[derive(Clone)]
pub struct ServerTls {
    connector: tokio_rustls::TlsConnector,
    sni: Option<ServerName<'static>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("sni", &self.sni)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads the CA file (or the system's roots) and the client certificate.
    ///
    /// # Errors
    /// A diagnostic at `[pool.tls]` naming the file that does not serve.
    pub fn new(tls: &PoolTls) -> Result<Self, Diagnostic> {
        let fail = |message: String, hint: Option<&str>| {
            tls.origin.diagnostic(message, hint.map(str::to_owned))
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| fail(format!("TLS: {e}"), None))?;
        let builder = if tls.verify {
            let mut roots = rustls::RootCertStore::empty();
            match &tls.ca_file {
                Some(path) => {
                    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                        .map_err(|e| {
                            fail(
                                format!("cannot read ca_file {}: {e}", path.display()),
                                Some("name a PEM file of CA certificates"),
                            )
                        })?
                        .collect::<Result<_, _>>()
                        .map_err(|e| fail(format!("ca_file {}: {e}", path.display()), None))?;
                    let (added, _) = roots.add_parsable_certificates(certs);
                    if added == 0 {
                        return Err(fail(
                            format!("ca_file {} holds no usable CA certificate", path.display()),
                            Some("the file should hold -----BEGIN CERTIFICATE----- blocks"),
                        ));
                    }
                }
                None => {
                    let found = rustls_native_certs::load_native_certs();
                    roots.add_parsable_certificates(found.certs);
                    if roots.is_empty() {
                        return Err(fail(
                            "no system CA certificates found to verify servers with".to_owned(),
                            Some("install ca-certificates, or set ca_file, or verify = false"),
                        ));
                    }
                }
            }
            builder.with_root_certificates(roots)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
        };
        let config = match &tls.client_cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                    .and_then(Iterator::collect)
                    .map_err(|e| {
                        fail(
                            format!("client cert {}: {e}", cert.display()),
                            Some("name a PEM certificate chain"),
                        )
                    })?;
                let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    fail(
                        format!("client key {}: {e}", key.display()),
                        Some("name a PEM private key"),
                    )
                })?;
                builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                    fail(
                        format!(
                            "client cert {} and key {} do not make a pair: {e}",
                            cert.display(),
                            key.display()
                        ),
                        None,
                    )
                })?
            }
        };
        let mut config = config;
        // Servers are spoken to in HTTP/1.1 (or raw bytes): no ALPN.
        config.alpn_protocols.clear();
        let sni = match &tls.sni {
            Some(name) => Some(
                ServerName::try_from(name.clone())
                    .map_err(|e| fail(format!("sni \"{name}\": {e}"), None))?,
            ),
            None => None,
        };
        Ok(Self {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            sni,
        })
    }

    /// The TLS handshake on `tcp` with the server at `host` (a host name
    /// or an IP address as text).
    ///
    /// # Errors
    /// The handshake failed (certificate not trusted, wrong name, ...).
    pub async fn connect(
        &self,
        tcp: TcpStream,
        host: &str,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let name = match &self.sni {
            Some(n) => n.clone(),
            None => ServerName::try_from(host.to_owned()).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{host}: {e}"))
            })?,
        };
        self.connector.connect(name, tcp).await
    }
}

/// `verify = false`: any certificate is accepted (the handshake's own
/// signatures are still checked, so the peer holds the key it shows).
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
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
