//! A real TLS server on 127.0.0.1 in front of the fake, with a certificate from a private CA
//! made for the test: refused at once (not retried as a connection error) with a message that
//! says how to trust the CA, then trusted through `ca_cert:`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::*;

/// Runs the system's `openssl` with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("this test needs the openssl binary on PATH");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private CA (`ca.pem`) and a server certificate for 127.0.0.1 it signed
/// (`server.pem`, `server.key`), in `dir`.
pub(crate) fn make_certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=relflow test CA"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(dir, &ca);
    let mut csr = vec!["req", "-subj", "/CN=127.0.0.1"];
    csr.extend(ec);
    csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write server.ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
}

/// A TLS-terminating proxy to `upstream`; counts the TLS handshakes clients started.
struct TlsProxy {
    address: SocketAddr,
    handshakes: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn tls_proxy(dir: &Path, upstream: String) -> TlsProxy {
    let certs = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .expect("read server.pem")
        .collect::<Result<Vec<_>, _>>()
        .expect("parse server.pem");
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).expect("read server.key");
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server TLS config");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let handshakes = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&handshakes);
    let upstream = upstream.trim_start_matches("http://").to_string();
    let task = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(client).await else {
                    return;
                };
                let Ok(mut server) = TcpStream::connect(upstream.as_str()).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
            });
        }
    });
    TlsProxy {
        address,
        handshakes,
        task,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_edges_a_certificate_from_an_unknown_ca_is_refused_at_once_then_trusted_with_ca_cert() {
    let fake = FakeXld::start().await;
    petportal(&fake);
    let certs = tempfile::tempdir().expect("temp dir");
    make_certificates(certs.path());
    let proxy = tls_proxy(certs.path(), fake.url()).await;
    let url = format!("https://{}", proxy.address);

    // Refused: not a transient `connection` failure, so the retry policy does not apply.
    let sb = sandbox(&pipeline(&url, "", "", RETRY_TRANSIENT));
    let (out, took) = relflow_within(&sb, &["run", "p.yaml"], Duration::from_secs(60)).await;
    out.expect_code(1);
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let doc = status_json(&sb).await;
    let task = deploy_task(&doc);
    assert_eq!(task["error_class"], "precondition", "{doc:#}");
    assert_eq!(task["attempts"], 1, "{doc:#}");
    let message = task["error"].as_str().unwrap_or_default();
    assert!(message.contains("certificate"), "{message}");
    assert!(message.contains("refused"), "{message}");
    assert!(message.contains("ca_cert:"), "{message}");
    assert_eq!(
        proxy.handshakes.load(Ordering::SeqCst),
        1,
        "a refused certificate is not retried in place"
    );
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());

    // Trusted through the private CA, given relative to the pipeline's folder.
    let sb = sandbox(&pipeline(
        &url,
        ", ca_cert: certs/ca.pem",
        "",
        RETRY_TRANSIENT,
    ));
    let ca = std::fs::read_to_string(certs.path().join("ca.pem")).expect("read ca.pem");
    sb.write("certs/ca.pem", &ca);
    relflow(&sb, &["run", "p.yaml"]).await.expect_code(0);
    assert_eq!(
        fake.deployed(PROD, "PetPortal").as_deref(),
        Some("Applications/PetPortal/2.2")
    );
    assert_eq!(fake.count("POST /deployit/deployment"), 1);
}
