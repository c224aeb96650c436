//! What an odd or failed answer means: a `Retry-After` hint (seconds or an HTTP date, never
//! more than an hour), an HTML page where XML was expected, a TLS certificate that was refused.

use std::time::{Duration, SystemTime};

/// The longest server hint relflow honours. A longer `Retry-After` (or a number too large to
/// read) is cut to this, so a broken or hostile server cannot park a release for ever; the
/// failure policy's `max_delay` bounds it further.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A `Retry-After` header, read: how long to wait, in whole seconds, and whether the server
/// asked for more than [`MAX_RETRY_AFTER`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryAfter {
    pub wait: Duration,
    pub is_cut: bool,
}

/// Reads `Retry-After: 120` or `Retry-After: Wed, 21 Oct 2015 07:28:00 GMT` (RFC 9110: an
/// IMF-fixdate, or the obsolete RFC 850 and asctime forms) against `now`. A date in the past
/// means "now"; anything else unreadable is `None` (no hint).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<RetryAfter> {
    let value = value.trim();
    let asked = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than a u64 holds is still "very long", not "no hint".
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        let ahead = at.duration_since(now).unwrap_or(Duration::ZERO);
        // Whole seconds, rounded up: never retry before the date.
        Duration::from_secs(ahead.as_secs() + u64::from(ahead.subsec_nanos() > 0))
    };
    Some(RetryAfter {
        wait: asked.min(MAX_RETRY_AFTER),
        is_cut: asked > MAX_RETRY_AFTER,
    })
}

/// Whether an answer is an HTML page (a proxy's maintenance or error page) rather than the
/// XML or plain text XL Deploy sends. An empty body is not a page, whatever its type says.
pub(crate) fn is_html(content_type: Option<&str>, body: &str) -> bool {
    if body.trim().is_empty() {
        return false;
    }
    let declared =
        content_type.is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("text/html"));
    let start: String = body.trim_start().chars().take(14).collect();
    let start = start.to_ascii_lowercase();
    declared || start.starts_with("<!doctype html") || start.starts_with("<html")
}

/// The words of an HTML page without its tags, shortened: what a person recognises.
pub(crate) fn page_excerpt(body: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    words.join(" ").chars().take(120).collect()
}

/// Why the server's TLS certificate was refused, when that is what `error` is about.
pub(crate) fn refused_certificate(error: &reqwest::Error) -> Option<String> {
    find_certificate_reason(error, 0)
}

/// Walks the causes of `e`, including the errors an `io::Error` wraps (which `source()`
/// skips, and which tokio-rustls and hyper nest two deep).
fn find_certificate_reason(e: &(dyn std::error::Error + 'static), depth: u8) -> Option<String> {
    if depth > 16 {
        return None;
    }
    if let Some(reason) = certificate_reason(e) {
        return Some(reason);
    }
    let wrapped = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .map(|inner| inner as &(dyn std::error::Error + 'static));
    wrapped
        .and_then(|inner| find_certificate_reason(inner, depth + 1))
        .or_else(|| {
            e.source()
                .and_then(|s| find_certificate_reason(s, depth + 1))
        })
}

fn certificate_reason(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(reason) = e.downcast_ref::<rustls::Error>()? else {
        return None;
    };
    Some(match reason {
        C::UnknownIssuer => {
            "it is not signed by a CA this machine trusts (self-signed, or a private CA)".into()
        }
        C::Expired | C::ExpiredContext { .. } => "it has expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => "it is not valid yet".into(),
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "it is not valid for this host name".into()
        }
        C::Revoked => "it was revoked".into(),
        other => format!("{other:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn retry_after_seconds_are_read_and_cut_to_an_hour() {
        let now = at(1_445_412_480);
        let read = |v: &str| parse_retry_after(v, now);
        assert_eq!(
            read(" 120 "),
            Some(RetryAfter {
                wait: Duration::from_secs(120),
                is_cut: false
            })
        );
        let endless = RetryAfter {
            wait: MAX_RETRY_AFTER,
            is_cut: true,
        };
        assert_eq!(read("18446744073709551615"), Some(endless));
        assert_eq!(read("99999999999999999999999999"), Some(endless));
        assert_eq!(read("-5"), None);
        assert_eq!(read("soon"), None);
        assert_eq!(read(""), None);
    }

    #[test]
    fn retry_after_dates_are_read_in_all_three_forms() {
        // Wed, 21 Oct 2015 07:28:00 GMT = 1445412480.
        let now = at(1_445_412_480 - 90);
        let ninety = Some(RetryAfter {
            wait: Duration::from_secs(90),
            is_cut: false,
        });
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            ninety
        );
        assert_eq!(
            parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", now),
            ninety
        );
        assert_eq!(parse_retry_after("Wed Oct 21 07:28:00 2015", now), ninety);
        // In the past: retry now. Far ahead: an hour.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", at(1_445_412_480 + 5))
                .map(|r| r.wait),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Fri, 01 Jan 2100 00:00:00 GMT", now),
            Some(RetryAfter {
                wait: MAX_RETRY_AFTER,
                is_cut: true
            })
        );
        // A date that is almost right is refused rather than guessed.
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28", now), None);
    }

    #[test]
    fn html_pages_are_recognised_by_type_or_by_their_start() {
        assert!(is_html(Some("text/html; charset=utf-8"), "maintenance"));
        assert!(is_html(None, "  <!DOCTYPE html><html>..."));
        assert!(is_html(
            Some("application/xml"),
            "<HTML><body>x</body></HTML>"
        ));
        assert!(!is_html(Some("application/xml"), "<task id=\"1\"/>"));
        assert!(!is_html(Some("text/html"), " "));
        assert!(!is_html(
            Some("text/plain"),
            "95223aae-0e6c-45bf-9abe-fed0587a5892"
        ));
        assert_eq!(
            page_excerpt(
                "<html><head><title>Down</title></head><body><h1>Back soon</h1></body></html>"
            ),
            "Down Back soon"
        );
    }
}
