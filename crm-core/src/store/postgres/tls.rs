//! TLS for the PostgreSQL store, as libpq's `sslmode` and `sslrootcert` ask.
//!
//! Why here: hosts copy libpq connection strings from their managed
//! database's console (`…?sslmode=verify-full&sslrootcert=/etc/…/ca.pem`),
//! while rust-postgres parses `sslmode` only up to `require` and leaves every
//! certificate check to the connector it is given. So both settings are taken
//! out of the connection string here and the connector (rustls, with *ring*)
//! does what libpq does:
//!
//! | `sslmode`          | TLS                              | certificate checked                          |
//! |--------------------|----------------------------------|----------------------------------------------|
//! | `disable`          | never                            | —                                            |
//! | `prefer` (default) | when the server offers it        | no (as libpq), unless `sslrootcert` is given |
//! | `require`          | always                           | no (as libpq), unless `sslrootcert` is given |
//! | `verify-ca`        | always                           | chains to `sslrootcert`                      |
//! | `verify-full`      | always                           | chains to `sslrootcert` and names the host   |
//!
//! `sslrootcert` is a PEM file of trusted certificates, or `system` for the
//! operating system's (as libpq 16). Given with `prefer` or `require`, it
//! turns on the `verify-ca` check, as libpq does when it finds a root file.
//! `sslcert` and `sslkey` (PEM files, given together) are the client
//! certificate and its key, presented when the server asks for one
//! (`cert` authentication in `pg_hba.conf`).

use std::sync::Arc;

use postgres::config::SslMode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::CrmError;

/// How a connection is protected (libpq's `sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Mode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Mode {
    fn parse(v: &str) -> Result<Mode, CrmError> {
        Ok(match v {
            "disable" => Mode::Disable,
            "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            _ => {
                return Err(CrmError::invalid(
                    "sslmode",
                    format!("{v:?} is not one of disable, prefer, require, verify-ca, verify-full"),
                ))
            }
        })
    }
}

/// The TLS settings of a connection string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Settings {
    pub(super) mode: Mode,
    /// `sslrootcert`: a PEM file, or `system`.
    pub(super) root: Option<String>,
    /// `sslcert` and `sslkey`: the client certificate (PEM, with its chain)
    /// and its private key (PEM), presented when the server asks for one.
    pub(super) client: Option<(String, String)>,
}

/// `url` without `sslmode` and `sslrootcert`, and what they said. Both
/// forms libpq reads are understood: a URL (`postgresql://…?sslmode=…`,
/// values percent-encoded) and `key=value` pairs (values optionally in
/// single quotes, with `\'` and `\\`).
pub(super) fn split(url: &str) -> Result<(String, Settings), CrmError> {
    const TAKEN: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];
    let mut values: [Option<String>; 4] = Default::default();
    // Whether `key` is one of ours (then its value is kept, the last one winning).
    let mut take = |key: &str, value: String| match TAKEN.iter().position(|k| *k == key) {
        Some(i) => {
            values[i] = Some(value);
            true
        }
        None => false,
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_string(),
            Some((base, query)) => {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        !take(&percent_decode(k), percent_decode(v))
                    })
                    .collect();
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept: Vec<&str> = Vec::new();
        for (pair, key, value) in key_values(url)? {
            if !take(&key, value) {
                kept.push(pair);
            }
        }
        kept.join(" ")
    };
    let [mode, root, cert, key_file] = values;
    let client = match (cert, key_file) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some((cert, key)),
        (Some(_), None) => return Err(CrmError::invalid("sslkey", "sslcert needs the private key of its certificate")),
        (None, Some(_)) => return Err(CrmError::invalid("sslcert", "sslkey needs the certificate it is the key of")),
    };
    let mode = mode.as_deref().map(Mode::parse).transpose()?.unwrap_or_default();
    if matches!(mode, Mode::VerifyCa | Mode::VerifyFull) && root.is_none() {
        return Err(CrmError::invalid(
            "sslrootcert",
            "sslmode=verify-ca and verify-full need the certificates to trust: a PEM file, or `system` for the operating system's",
        ));
    }
    Ok((rest, Settings { mode, root, client }))
}

/// The `key=value` pairs of a libpq key/value string: each pair's text as
/// written, its key, and its value unquoted.
fn key_values(s: &str) -> Result<Vec<(&str, String, String)>, CrmError> {
    let bad = || CrmError::Store("postgres: invalid connection string: expected key=value pairs".into());
    let mut out = Vec::new();
    let mut i = 0;
    let bytes = s.as_bytes();
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = s[start..i].to_string();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if key.is_empty() || i >= bytes.len() || bytes[i] != b'=' {
            return Err(bad());
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = Vec::new();
        if i < bytes.len() && bytes[i] == b'\'' {
            i += 1;
            loop {
                match bytes.get(i) {
                    None => return Err(bad()),
                    Some(b'\'') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < bytes.len() => {
                        value.push(bytes[i + 1]);
                        i += 2;
                    }
                    Some(&b) => {
                        value.push(b);
                        i += 1;
                    }
                }
            }
        } else {
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                if bytes[i] == b'\\' && i + 1 < bytes.len() {
                    i += 1;
                }
                value.push(bytes[i]);
                i += 1;
            }
        }
        out.push((&s[start..i], key, String::from_utf8_lossy(&value).into_owned()));
    }
    Ok(out)
}

/// `%XX` escapes decoded (a malformed one is kept as written).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (c, ..) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The rust-postgres mode and the connector for `settings`.
pub(super) fn connector(settings: &Settings) -> Result<(SslMode, MakeRustlsConnect), CrmError> {
    // *ring*: it builds with a C compiler alone, where aws-lc-rs (rustls's
    // default, deprecating *ring*'s provider for lacking post-quantum key
    // exchange) needs CMake on some hosts and a minute more in every
    // binding's build. Classical ECDHE is what PostgreSQL servers offer.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| CrmError::Store(format!("postgres: TLS: {e}")))?;
    let ssl_mode = match settings.mode {
        Mode::Disable => SslMode::Disable,
        Mode::Prefer => SslMode::Prefer,
        Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
    };
    let roots = settings.root.as_deref().map(roots).transpose()?;
    let checked = match (settings.mode, roots) {
        (Mode::VerifyFull, Some(roots)) => builder.with_root_certificates(roots),
        (_, roots) => {
            let chain = roots
                .map(|r| WebPkiServerVerifier::builder_with_provider(Arc::new(r), provider.clone()).build())
                .transpose()
                .map_err(|e| CrmError::invalid("sslrootcert", e.to_string()))?;
            let verifier = Verifier { chain, provider };
            builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier))
        }
    };
    let config = match &settings.client {
        None => checked.with_no_client_auth(),
        Some((cert, key)) => {
            let (chain, key) = client_identity(cert, key)?;
            checked.with_client_auth_cert(chain, key).map_err(|e| CrmError::invalid("sslkey", e.to_string()))?
        }
    };
    Ok((ssl_mode, MakeRustlsConnect::new(config)))
}

/// The client certificate chain in `cert` and its private key in `key` (PEM files).
fn client_identity(cert: &str, key: &str) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), CrmError> {
    let unreadable = |field: &str, path: &str, e: &dyn std::fmt::Display| {
        CrmError::invalid(field, format!("cannot read {path}: {e}"))
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| unreadable("sslcert", cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable("sslcert", cert, &e))?;
    if chain.is_empty() {
        return Err(CrmError::invalid("sslcert", format!("{cert} holds no PEM certificate")));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| unreadable("sslkey", key, &e))?;
    Ok((chain, key))
}

/// The certificates `sslrootcert` names.
fn roots(root: &str) -> Result<RootCertStore, CrmError> {
    let mut store = RootCertStore::empty();
    if root == "system" {
        let found = rustls_native_certs::load_native_certs();
        store.add_parsable_certificates(found.certs);
        if store.is_empty() {
            return Err(CrmError::invalid("sslrootcert", "the operating system has no trusted certificates"));
        }
        return Ok(store);
    }
    let unreadable = |e: &dyn std::fmt::Display| CrmError::invalid("sslrootcert", format!("cannot read {root}: {e}"));
    for cert in CertificateDer::pem_file_iter(root).map_err(|e| unreadable(&e))? {
        let cert = cert.map_err(|e| unreadable(&e))?;
        store.add(cert).map_err(|e| unreadable(&e))?;
    }
    if store.is_empty() {
        return Err(CrmError::invalid("sslrootcert", format!("{root} holds no PEM certificate")));
    }
    Ok(store)
}

/// Below `verify-full`: the chain is checked against the roots when there
/// are any (`verify-ca`, and `prefer`/`require` given `sslrootcert`), the
/// host name never; without roots the certificate is not checked (libpq's
/// `prefer` and `require`: the connection is encrypted, its peer not
/// authenticated). The handshake's signatures are always checked.
#[derive(Debug)]
struct Verifier {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else { return Ok(ServerCertVerified::assertion()) };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(e: CrmError) -> String {
        match e {
            CrmError::Validation { field, .. } => field,
            other => panic!("expected an invalid-input error, got {other:?}"),
        }
    }

    #[test]
    fn url_settings_are_taken_out_and_the_rest_kept() {
        let (rest, s) =
            split("postgresql://u@db:5432/shop?application_name=a&sslmode=verify-full&sslrootcert=%2Fetc%2Fca%20x.pem")
                .unwrap();
        assert_eq!(rest, "postgresql://u@db:5432/shop?application_name=a");
        assert_eq!(s, Settings { mode: Mode::VerifyFull, root: Some("/etc/ca x.pem".into()), client: None });
        let (rest, s) = split("postgres://u@db/shop?sslmode=disable").unwrap();
        assert_eq!((rest.as_str(), s.mode, s.root), ("postgres://u@db/shop", Mode::Disable, None));
        let (rest, s) = split("postgresql://u@db/shop").unwrap();
        assert_eq!((rest.as_str(), s), ("postgresql://u@db/shop", Settings::default()));
    }

    #[test]
    fn key_value_settings_are_taken_out_and_the_rest_kept() {
        let (rest, s) =
            split("host=db  sslmode = require user=u sslrootcert='/etc/it\\'s ca.pem' password='a b'").unwrap();
        assert_eq!(rest, "host=db user=u password='a b'");
        assert_eq!(s, Settings { mode: Mode::Require, root: Some("/etc/it's ca.pem".into()), client: None });
        assert!(matches!(split("host=db sslmode"), Err(CrmError::Store(_))));
        assert!(matches!(split("host='db"), Err(CrmError::Store(_))));
    }

    #[test]
    fn bad_settings_name_their_field() {
        assert_eq!(field(split("postgresql://db/x?sslmode=allow").unwrap_err()), "sslmode");
        assert_eq!(field(split("postgresql://db/x?sslcert=%2Fc.pem").unwrap_err()), "sslkey");
        assert_eq!(field(split("host=db sslkey=/c.key").unwrap_err()), "sslcert");
        let (_, s) = split("host=db sslcert=/c.pem sslkey='/c key'").unwrap();
        assert_eq!(s.client, Some(("/c.pem".into(), "/c key".into())));
        let no_cert = Settings {
            client: Some(("/nonexistent/c.pem".into(), "/nonexistent/c.key".into())),
            ..Settings::default()
        };
        assert_eq!(field(connector(&no_cert).err().unwrap()), "sslcert");
        assert_eq!(field(split("postgresql://db/x?sslmode=verify-full").unwrap_err()), "sslrootcert");
        let missing = Settings { mode: Mode::VerifyCa, root: Some("/nonexistent/ca.pem".into()), client: None };
        assert_eq!(field(connector(&missing).err().unwrap()), "sslrootcert");
        let dir = std::env::temp_dir().join(format!("crm-tls-empty-{}.pem", std::process::id()));
        std::fs::write(&dir, "not a certificate\n").unwrap();
        let empty = Settings { mode: Mode::VerifyFull, root: Some(dir.to_string_lossy().into_owned()), client: None };
        assert_eq!(field(connector(&empty).err().unwrap()), "sslrootcert");
        let _ = std::fs::remove_file(dir);
    }

    proptest::proptest! {
        /// Whatever else a URL's query holds, in any order and encoding, the
        /// other parameters come back as written and in order, and the last
        /// `sslmode` and `sslrootcert` given are the ones taken (as libpq).
        #[test]
        fn the_rest_of_a_url_is_kept_as_written(
            others in proptest::collection::vec(("[a-z_]{1,12}", "[A-Za-z0-9%._~/-]{0,12}"), 0..5),
            ssl in proptest::collection::vec((0usize..2, 0usize..5, "[a-z0-9/._-]{1,16}"), 0..4),
            cut in 0usize..6,
        ) {
            let modes = ["disable", "prefer", "require", "verify-ca", "verify-full"];
            let kept: Vec<String> = others
                .iter()
                .filter(|(k, _)| !["sslmode", "sslrootcert", "sslcert", "sslkey"].contains(&k.as_str()))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let taken: Vec<String> = ssl
                .iter()
                .map(|(which, mode, path)| match which {
                    0 => format!("sslmode={}", modes[*mode]),
                    _ => format!("sslrootcert={}", path.replace('/', "%2F")),
                })
                .collect();
            let mut pairs = kept.clone();
            for (i, t) in taken.iter().enumerate() {
                pairs.insert((cut + i).min(pairs.len()), t.clone());
            }
            let base = "postgresql://u@db:5432/shop";
            let url = if pairs.is_empty() { base.to_string() } else { format!("{base}?{}", pairs.join("&")) };
            let mode = ssl.iter().rev().find(|s| s.0 == 0).map(|s| modes[s.1]);
            let root = ssl.iter().rev().find(|s| s.0 == 1).map(|s| s.2.clone());
            let verifying = matches!(mode, Some("verify-ca" | "verify-full"));
            match split(&url) {
                Ok((rest, settings)) => {
                    proptest::prop_assert!(!verifying || root.is_some());
                    let expected = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
                    proptest::prop_assert_eq!(rest, expected);
                    proptest::prop_assert_eq!(settings.mode, mode.map_or(Mode::Prefer, |m| Mode::parse(m).unwrap()));
                    proptest::prop_assert_eq!(settings.root, root);
                }
                Err(e) => {
                    proptest::prop_assert!(verifying && root.is_none(), "{e}");
                    proptest::prop_assert_eq!(field(e), "sslrootcert");
                }
            }
        }
    }

    #[test]
    fn every_mode_builds_a_connector() {
        for mode in [Mode::Disable, Mode::Prefer, Mode::Require] {
            let (ssl, _) = connector(&Settings { mode, ..Settings::default() }).unwrap();
            let expected = match mode {
                Mode::Disable => SslMode::Disable,
                Mode::Prefer => SslMode::Prefer,
                _ => SslMode::Require,
            };
            assert_eq!(format!("{ssl:?}"), format!("{expected:?}"));
        }
    }
}
