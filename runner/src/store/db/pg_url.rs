//! A PostgreSQL URL: kept whole to connect, shown without its password; and how to connect
//! with it — TLS through rustls with the system's CA roots (plus `sslrootcert=FILE`), the
//! server's certificate always verified (host name included). `sslmode` as libpq reads it:
//! `disable` (no TLS), `prefer` (the default: TLS when the server offers it, verified),
//! `require`, `verify-ca`, `verify-full` (TLS or no connection, verified).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use postgres::Config;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::DbError;

/// How to connect to one database.
#[derive(Clone)]
pub(super) struct Settings {
    pub config: Config,
    pub tls: MakeRustlsConnect,
}

/// A `postgres://` URL: kept whole to connect, shown without its password.
#[derive(Clone)]
pub struct PgUrl {
    url: String,
}

impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

impl std::fmt::Display for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

impl PgUrl {
    /// `url` when it names a PostgreSQL database (`postgres://` or `postgresql://`).
    pub fn parse(url: &str) -> Option<PgUrl> {
        (url.starts_with("postgres://") || url.starts_with("postgresql://")).then(|| PgUrl {
            url: url.to_string(),
        })
    }

    /// The whole URL, to tell stores apart (never shown).
    pub fn key(&self) -> &str {
        &self.url
    }

    /// The URL with any password replaced by `***` (in the user part and in `password=`).
    pub fn shown(&self) -> String {
        let (scheme, rest) = self
            .url
            .split_once("://")
            .unwrap_or(("postgres", &self.url));
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        let authority = match authority.rsplit_once('@') {
            Some((user, host)) => match user.split_once(':') {
                Some((name, _)) => format!("{name}:***@{host}"),
                None => format!("{user}@{host}"),
            },
            None => authority.to_string(),
        };
        let tail = match tail.split_once('?') {
            Some((path, query)) => {
                let query: Vec<String> = query
                    .split('&')
                    .map(|pair| match pair.split_once('=') {
                        Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                            format!("{key}=***")
                        }
                        _ => pair.to_string(),
                    })
                    .collect();
                format!("{path}?{}", query.join("&"))
            }
            None => tail.to_string(),
        };
        format!("{scheme}://{authority}{tail}")
    }

    /// How to connect: the client's settings and the TLS connector.
    pub(super) fn settings(&self) -> Result<Settings, DbError> {
        let bad = |e: String| DbError::Postgres {
            message: format!("{}: {e}", self.shown()),
            conflict: false,
        };
        let (url, roots) = take_tls_options(&self.url);
        let mut config: Config = url
            .parse()
            .map_err(|e| bad(format!("not a PostgreSQL URL: {e}")))?;
        // Notice a dead peer in seconds, not in the kernel's two hours.
        config
            .application_name("relflow")
            .connect_timeout(Duration::from_secs(5))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(2))
            .keepalives_retries(3)
            .tcp_user_timeout(Duration::from_secs(15));
        Ok(Settings {
            config,
            tls: tls_connector(&roots).map_err(bad)?,
        })
    }
}

/// The URL without the TLS options tokio-postgres does not read (`sslrootcert`; the
/// `verify-*` modes become `require`, since every certificate is verified anyway), and the
/// CA files named.
fn take_tls_options(url: &str) -> (String, Vec<PathBuf>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), Vec::new());
    };
    let mut roots = Vec::new();
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("sslrootcert", file)) => roots.push(PathBuf::from(file)),
            Some(("sslmode", "verify-ca" | "verify-full")) => {
                kept.push("sslmode=require".to_string())
            }
            _ => kept.push(pair.to_string()),
        }
    }
    if kept.is_empty() {
        (base.to_string(), roots)
    } else {
        (format!("{base}?{}", kept.join("&")), roots)
    }
}

/// A verifying TLS connector trusting the system's roots and the PEM certificates in `roots`.
fn tls_connector(roots: &[PathBuf]) -> Result<MakeRustlsConnect, String> {
    let mut store = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = store.add(cert);
    }
    for file in roots {
        let certs = CertificateDer::pem_file_iter(file)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("sslrootcert {}: {e}", file.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "sslrootcert {}: no certificate in it",
                file.display()
            ));
        }
        for cert in certs {
            store
                .add(cert)
                .map_err(|e| format!("sslrootcert {}: {e}", file.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_shown_without_its_password() {
        let url = PgUrl::parse(
            "postgres://relflow:s3cret@db.example:5432/rel?sslmode=require&password=x",
        )
        .unwrap();
        assert_eq!(
            url.shown(),
            "postgres://relflow:***@db.example:5432/rel?sslmode=require&password=***"
        );
        assert!(!format!("{url} {url:?}").contains("s3cret"));
        let plain = PgUrl::parse("postgresql://db/rel").unwrap();
        assert_eq!(plain.shown(), "postgresql://db/rel");
        assert!(PgUrl::parse("sqlite:x").is_none());
    }

    #[test]
    fn tls_options_tokio_postgres_does_not_read_are_taken_out() {
        let (url, roots) = take_tls_options(
            "postgres://u@db/rel?sslmode=verify-full&sslrootcert=/etc/ca.pem&application_name=x",
        );
        assert_eq!(
            url,
            "postgres://u@db/rel?sslmode=require&application_name=x"
        );
        assert_eq!(roots, [PathBuf::from("/etc/ca.pem")]);
        assert!(tls_connector(&[PathBuf::from("/nonexistent/ca.pem")]).is_err());
    }
}
