//! `serve --tls-cert/--tls-key`: HTTPS on any address, cookies marked `Secure`.

use reqwest::blocking::Client;

use super::Server;
use crate::harness::Sandbox;
use crate::xld_edges::tls::make_certificates;

#[test]
fn with_a_certificate_the_server_speaks_https_on_any_address_and_its_cookie_is_secure() {
    let sb = Sandbox::new();
    make_certificates(sb.path());
    let ca = std::fs::read(sb.path().join("ca.pem")).expect("ca");
    let client = Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("pem"))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let extra = ["--tls-cert", "server.pem", "--tls-key", "server.key"];
    let server = Server::start_with(&sb, "0.0.0.0", &extra, "https", client);
    let list = server.get("/releases", Some(&server.token));
    assert_eq!(list.status().as_u16(), 200);
    let root = server.base.trim_end_matches("/api/v1");
    let login = server
        .client
        .post(format!("{root}/login"))
        .form(&[("token", server.token.as_str())])
        .send()
        .expect("login");
    assert_eq!(login.status().as_u16(), 303);
    let cookie = login.headers()["set-cookie"].to_str().expect("cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
    // Plain HTTP gets no answer from the TLS port.
    let plain = root.replacen("https://", "http://", 1);
    let refused = Client::new().get(format!("{plain}/api/v1/releases")).send();
    assert!(refused.is_err() || !refused.is_ok_and(|r| r.status().is_success()));
}
