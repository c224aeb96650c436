//! The HTTP side: one blocking reqwest client per backend (basic auth, verified TLS unless
//! `insecure`, extra trusted CAs from `ca_cert`, a timeout per request), every status checked
//! and classed, and in-place retries of calls that are safe to repeat. Every request and every
//! wait between retries honours the attempt's [`Interrupt`].

use std::cell::Cell;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use backon::{BlockingRetryable, ExponentialBuilder};
use reqwest::StatusCode;
use reqwest::blocking::Response;
use reqwest::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER};

use super::faults::{self, RetryAfter};
use super::poll::pause;
use crate::backend::{BackendError, LogSink};
use crate::{ErrorClass, Interrupt};

/// How calls that are safe to repeat are retried before the attempt fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpRetry {
    /// Extra tries after the first; 0 turns in-place retries off.
    pub times: usize,
    /// The first delay; it doubles (with jitter) up to 30 s.
    pub first_delay: Duration,
    /// A `Retry-After` longer than this is not waited for here: the attempt fails with
    /// `rate_limited` and the failure policy decides (honouring the hint up to its
    /// `max_delay`; hints are cut to one hour before that).
    pub max_retry_after: Duration,
}

impl Default for HttpRetry {
    fn default() -> Self {
        HttpRetry {
            times: 3,
            first_delay: Duration::from_millis(500),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Post,
    Delete,
}

/// One request: method, path under the server URL (starting with `/deployit/`), query, body.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub method: Method,
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<String>,
}

impl Call {
    pub fn get(path: impl Into<String>) -> Call {
        Call {
            method: Method::Get,
            path: path.into(),
            query: Vec::new(),
            body: None,
        }
    }

    pub fn post(path: impl Into<String>, body: Option<String>) -> Call {
        Call {
            method: Method::Post,
            path: path.into(),
            query: Vec::new(),
            body,
        }
    }

    pub fn delete(path: impl Into<String>) -> Call {
        Call {
            method: Method::Delete,
            path: path.into(),
            query: Vec::new(),
            body: None,
        }
    }

    pub fn query(mut self, key: &'static str, value: impl Into<String>) -> Call {
        self.query.push((key, value.into()));
        self
    }

    /// `GET /deployit/task/abc`, as messages show it.
    pub fn describe(&self) -> String {
        let method = match self.method {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        };
        format!("{method} {}", self.path)
    }
}

/// A failed request before it is turned into a [`BackendError`].
#[derive(Debug, Clone)]
pub(crate) struct HttpError {
    pub class: ErrorClass,
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl HttpError {
    /// The error that ends a call because the attempt must stop (`timeout` or
    /// `interrupted`), worded without the call it interrupted.
    fn stopped(interrupt: &Interrupt, cause: crate::StopCause) -> HttpError {
        let e = interrupt.error(cause, "-");
        HttpError {
            class: e.class,
            message: e.message.trim_start_matches("-: ").to_string(),
            retry_after: None,
        }
    }

    fn is_transient(&self, retry: &HttpRetry) -> bool {
        match self.class {
            ErrorClass::RateLimited => self
                .retry_after
                .is_none_or(|hint| hint <= retry.max_retry_after),
            class => class.is_transient(),
        }
    }
}

/// The XL Deploy server: base URL, credentials and the lazily built HTTP client (built on
/// first use, on the blocking thread the runner calls the backend from).
pub(crate) struct Client {
    base: String,
    username: String,
    password: String,
    timeout: Duration,
    insecure: bool,
    /// CAs trusted besides the system's (`ca_cert`).
    extra_roots: Vec<reqwest::Certificate>,
    pub retry: HttpRetry,
    http: OnceLock<Result<reqwest::blocking::Client, String>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.redact(&self.base))
            .field("username", &self.username)
            .field("password", &"***")
            .field("insecure", &self.insecure)
            .finish()
    }
}

impl Client {
    pub fn new(
        base: &str,
        username: &str,
        password: &str,
        timeout: Duration,
        insecure: bool,
        extra_roots: Vec<reqwest::Certificate>,
        retry: HttpRetry,
    ) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            username: username.to_string(),
            password: password.to_string(),
            timeout,
            insecure,
            extra_roots,
            retry,
            http: OnceLock::new(),
        }
    }

    /// The server URL, safe to show.
    pub fn base(&self) -> String {
        self.redact(&self.base)
    }

    /// Removes the password from anything headed for a log or an error, and the base64 of
    /// `user:password` that a proxy's error page may echo from the `Authorization` header.
    pub fn redact(&self, text: &str) -> String {
        use base64::Engine as _;
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
        if self.password.is_empty() {
            return text.to_string();
        }
        let credentials = format!("{}:{}", self.username, self.password);
        let mut out = text.to_string();
        for secret in [
            STANDARD.encode(&credentials),
            STANDARD_NO_PAD.encode(&credentials),
            self.password.clone(),
        ] {
            if out.contains(&secret) {
                out = out.replace(&secret, "***");
            }
        }
        out
    }

    fn http(&self) -> Result<&reqwest::blocking::Client, HttpError> {
        let built = self.http.get_or_init(|| {
            let mut builder = reqwest::blocking::Client::builder()
                .timeout(self.timeout)
                .connect_timeout(self.timeout.min(Duration::from_secs(10)))
                .danger_accept_invalid_certs(self.insecure)
                .user_agent(concat!("relflow/", env!("CARGO_PKG_VERSION")));
            for root in &self.extra_roots {
                builder = builder.add_root_certificate(root.clone());
            }
            builder
                .build()
                .map_err(|e| format!("set up the HTTP client: {e}"))
        });
        // Retrying cannot repair a client that cannot be built (bad TLS setup).
        built.as_ref().map_err(|message| HttpError {
            class: ErrorClass::Precondition,
            message: message.clone(),
            retry_after: None,
        })
    }

    /// One request, its status checked: the body of a 2xx answer, else a classed error. Not
    /// sent when the attempt must stop; never outlives the attempt's deadline.
    pub fn send(&self, call: &Call, interrupt: &Interrupt) -> Result<String, HttpError> {
        if let Some(cause) = interrupt.cause() {
            return Err(HttpError::stopped(interrupt, cause));
        }
        let http = self.http()?;
        let url = format!("{}{}", self.base, call.path);
        let mut request = match call.method {
            Method::Get => http.get(&url),
            Method::Post => http.post(&url),
            Method::Delete => http.delete(&url),
        };
        request = request
            .basic_auth(&self.username, Some(&self.password))
            .header(ACCEPT, "application/xml");
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, "application/xml")
                .body(body.clone());
        }
        if let Some(left) = interrupt.remaining() {
            request = request.timeout(self.timeout.min(left.max(Duration::from_millis(1))));
        }
        let started = std::time::Instant::now();
        let answered = request.send().map_err(|e| match interrupt.cause() {
            Some(cause) => HttpError::stopped(interrupt, cause),
            None => self.transport_error(&e),
        });
        let status = answered.as_ref().ok().map(|r| r.status().as_u16());
        let result = answered.and_then(|response| self.read(response));
        self.trace(call, status, started.elapsed(), result.as_ref().err());
        result
    }

    /// One debug line per request: method, path, status (or the error's class) and duration.
    /// Never a body, a header or a query value: they may carry what a person must not see.
    fn trace(&self, call: &Call, status: Option<u16>, took: Duration, error: Option<&HttpError>) {
        let request = self.redact(&call.describe());
        let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        match (status, error) {
            (Some(status), None) => {
                tracing::debug!(target: "relflow::xld", %request, status, ms, "XL Deploy call")
            }
            (status, Some(e)) => tracing::debug!(
                target: "relflow::xld",
                %request,
                status,
                class = %e.class,
                ms,
                "XL Deploy call failed"
            ),
            (None, None) => {}
        }
    }

    fn transport_error(&self, e: &reqwest::Error) -> HttpError {
        if let Some(reason) = faults::refused_certificate(e) {
            return self.refused_certificate(&reason);
        }
        let class = if e.is_timeout() {
            ErrorClass::Timeout
        } else {
            ErrorClass::Connection
        };
        // reqwest's message names the URL, which never holds the password (basic auth goes in
        // a header), but a password pasted into the URL would: redact anyway.
        let mut message = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        HttpError {
            class,
            message: self.redact(&message),
            retry_after: None,
        }
    }

    /// Not transient: retrying cannot make an untrusted certificate trusted; a person must
    /// trust the CA (`ca_cert`) or fix the server's certificate.
    fn refused_certificate(&self, reason: &str) -> HttpError {
        HttpError {
            class: ErrorClass::Precondition,
            message: self.redact(&format!(
                "the TLS certificate of {} was refused: {reason}. If XL Deploy uses a private CA, \
                 trust it with `ca_cert: path/to/ca.pem` on the xl-deploy backend (PEM, relative \
                 to the pipeline's folder)",
                self.base
            )),
            retry_after: None,
        }
    }

    fn read(&self, response: Response) -> Result<String, HttpError> {
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                (
                    v.to_string(),
                    faults::parse_retry_after(v, SystemTime::now()),
                )
            });
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response.text().map_err(|e| self.transport_error(&e))?;
        if status.is_success() && faults::is_html(content_type.as_deref(), &body) {
            // Redacted before the excerpt is cut: a cut could split a secret past the mask.
            let body = self.redact(&body);
            return Err(HttpError {
                class: ErrorClass::Protocol,
                message: self.redact(&format!(
                    "HTTP {status} with an HTML page instead of XL Deploy's answer: `{}`",
                    faults::page_excerpt(&body)
                )),
                retry_after: None,
            });
        }
        if status.is_success() {
            return Ok(body);
        }
        let hint = retry_after.as_ref().and_then(|(_, hint)| *hint);
        let class = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ErrorClass::Auth,
            StatusCode::NOT_FOUND => ErrorClass::NotFound,
            StatusCode::TOO_MANY_REQUESTS => ErrorClass::RateLimited,
            StatusCode::REQUEST_TIMEOUT => ErrorClass::Timeout,
            s if s.is_server_error() => ErrorClass::Http5xx,
            _ => ErrorClass::BadRequest,
        };
        let body = self.redact(&body);
        let excerpt: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
        let excerpt: String = excerpt.chars().take(200).collect();
        let mut message = format!("HTTP {status}");
        if !excerpt.is_empty() {
            message.push_str(&format!(": {excerpt}"));
        }
        if let Some((raw, Some(hint))) = &retry_after {
            message.push_str(&hint_note(raw, hint));
        }
        Err(HttpError {
            class,
            message: self.redact(&message),
            retry_after: hint.map(|h| h.wait),
        })
    }

    /// A call that must not be repeated blindly (it creates something): exactly one request.
    pub fn once(&self, call: &Call, interrupt: &Interrupt) -> Result<String, BackendError> {
        self.send(call, interrupt).map_err(|e| self.failed(call, e))
    }

    /// A call that is safe to repeat: retried in place on connection errors, timeouts, 5xx and
    /// 429 (after its `Retry-After`), each retry announced in the log.
    pub fn idempotent(
        &self,
        call: &Call,
        interrupt: &Interrupt,
        log: LogSink<'_>,
    ) -> Result<String, BackendError> {
        self.with_retries(call, interrupt, log, || self.send(call, interrupt))
            .map_err(|e| self.failed(call, e))
    }

    /// Runs `op` with the in-place retry schedule for `call`; `op` may do more than one request
    /// (a conditional `start` checks the task state before trying again). No retry once the
    /// attempt must stop; the waits between tries end early when it must.
    pub fn with_retries<T>(
        &self,
        call: &Call,
        interrupt: &Interrupt,
        log: LogSink<'_>,
        mut op: impl FnMut() -> Result<T, HttpError>,
    ) -> Result<T, HttpError> {
        let retry = self.retry;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(retry.first_delay)
            .with_max_delay(Duration::from_secs(30).max(retry.first_delay))
            .with_max_times(retry.times)
            .with_jitter();
        // backon's blocking retry has no hook to change a delay from the error, so the
        // server's Retry-After travels from `notify` to the ('static) sleeper through this cell.
        let hint: Rc<Cell<Option<Duration>>> = Rc::default();
        let sleeper_hint = Rc::clone(&hint);
        let sleeper_interrupt = interrupt.clone();
        let mut tries = 0;
        let op = move || match interrupt.cause() {
            Some(cause) => Err(HttpError::stopped(interrupt, cause)),
            None => op(),
        };
        op.retry(backoff)
            .when(|e: &HttpError| e.is_transient(&retry) && interrupt.cause().is_none())
            .notify(|e: &HttpError, delay| {
                tries += 1;
                hint.set(e.retry_after);
                let wait = e.retry_after.unwrap_or(delay);
                tracing::debug!(
                    target: "relflow::xld",
                    request = %self.redact(&call.describe()),
                    class = %e.class,
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    try_no = tries,
                    of = retry.times,
                    "XL Deploy call retried in place"
                );
                log(&format!(
                    "{}: {}; retrying in {:.1}s ({tries} of {})",
                    call.describe(),
                    e.message,
                    wait.as_secs_f64(),
                    retry.times
                ));
            })
            .sleep(move |delay| {
                // A stop ends the wait; the next try then returns the stop's error.
                let _ = pause(&sleeper_interrupt, sleeper_hint.take().unwrap_or(delay));
            })
            .call()
            // A stop raised while the last answer was on its way wins over that answer's
            // error: the attempt ended because it was told to, not because of the server.
            .map_err(|e| match interrupt.cause() {
                Some(cause) => HttpError::stopped(interrupt, cause),
                None => e,
            })
    }

    pub fn failed(&self, call: &Call, e: HttpError) -> BackendError {
        BackendError::new(
            e.class,
            self.redact(&format!("{}: {}", call.describe(), e.message)),
        )
    }
}

/// ` (Retry-After: 30s)`, noting when the server asked for more than relflow honours.
fn hint_note(raw: &str, hint: &RetryAfter) -> String {
    let secs = hint.wait.as_secs();
    if hint.is_cut {
        let raw: String = raw.trim().chars().take(40).collect();
        format!(
            " (Retry-After: {secs}s; the server asked for `{raw}`, relflow waits at most an hour)"
        )
    } else {
        format!(" (Retry-After: {secs}s)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_retry_after_is_left_to_the_policy() {
        let retry = HttpRetry::default();
        let error = |secs: Option<u64>| HttpError {
            class: ErrorClass::RateLimited,
            message: String::new(),
            retry_after: secs.map(Duration::from_secs),
        };
        assert!(error(Some(5)).is_transient(&retry));
        assert!(error(None).is_transient(&retry));
        assert!(!error(Some(600)).is_transient(&retry));
    }

    #[test]
    fn the_password_never_leaves_in_a_message() {
        let client = Client::new(
            "http://admin:s3cret@xld:4516/",
            "admin",
            "s3cret",
            Duration::from_secs(1),
            false,
            Vec::new(),
            HttpRetry::default(),
        );
        assert_eq!(client.base(), "http://admin:***@xld:4516");
        assert_eq!(
            client.redact("GET http://admin:s3cret@xld:4516/x"),
            "GET http://admin:***@xld:4516/x"
        );
        assert!(!format!("{client:?}").contains("s3cret"));
    }
}
