//! Outbound HTTP shared by every upstream client: one way to build a
//! `reqwest::Client` (rustls on the `ring` provider, connect and request timeouts
//! always set) and one way to record upstream latency.

use std::time::{Duration, Instant};

use crate::telemetry::metrics::{UPSTREAM_DURATION, status_class};

/// Installs rustls' `ring` crypto provider once per process. reqwest is built with
/// `rustls-no-provider` (the default aws-lc backend dominates cold builds).
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider is already installed, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client with the given connect and total request timeouts, keep-alive pooling,
/// and no redirects (an upstream redirect is a misconfiguration we want to see).
pub fn http_client(
    connect_timeout: Duration,
    timeout: Duration,
) -> reqwest::Result<reqwest::Client> {
    install_crypto_provider();
    reqwest::Client::builder()
        // A proxy from HTTP(S)_PROXY would resolve names itself; the upstreams
        // are fixed by configuration, so none is wanted.
        .no_proxy()
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ivr-gateway/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// What happened to one upstream request, for the latency histogram's `status_class`.
#[derive(Debug, Clone, Copy)]
pub enum UpstreamResult {
    Status(u16),
    Timeout,
    Error,
}

impl UpstreamResult {
    pub fn of<T>(r: &reqwest::Result<T>) -> Self
    where
        T: HasStatus,
    {
        match r {
            Ok(resp) => UpstreamResult::Status(resp.status_code()),
            Err(e) if e.is_timeout() => UpstreamResult::Timeout,
            Err(e) => match e.status() {
                Some(s) => UpstreamResult::Status(s.as_u16()),
                None => UpstreamResult::Error,
            },
        }
    }

    fn label(self) -> &'static str {
        match self {
            UpstreamResult::Status(s) => status_class(s),
            UpstreamResult::Timeout => "timeout",
            UpstreamResult::Error => "error",
        }
    }
}

/// Anything with an HTTP status (a `reqwest::Response`).
pub trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for reqwest::Response {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// Records one upstream request in `ivr_upstream_request_duration_seconds`.
/// `upstream` and `operation` must be fixed strings (bounded labels).
pub fn record_upstream(
    upstream: &'static str,
    operation: &'static str,
    started: Instant,
    result: UpstreamResult,
) {
    metrics::histogram!(
        UPSTREAM_DURATION,
        "upstream" => upstream,
        "operation" => operation,
        "status_class" => result.label()
    )
    .record(started.elapsed().as_secs_f64());
}

/// True for addresses that are not on the public internet: loopback, private,
/// link-local, unique-local, CGNAT, unspecified, multicast, documentation ranges
/// and IPv4-mapped forms of those. Operator-supplied URLs (`notify_url`) may not
/// point there unless `ALLOW_PRIVATE_URLS` is set: that would let anyone with a
/// dispatcher key make the gateway call its own internal network (SSRF).
pub fn is_internal_ip(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])) // CGNAT 100.64/10
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19)) // benchmarking 198.18/15
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments 192.0.0/24
                || (o[0] == 192 && o[1] == 88 && o[2] == 99) // 6to4 relay anycast 192.88.99/24
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal_ip(IpAddr::V4(v4));
            }
            let s = v6.segments();
            // Addresses that carry an IPv4 address in their last 32 bits reach
            // it: NAT64's well-known prefix 64:ff9b::/96 (an IPv6-only cluster
            // behind NAT64 reaches 169.254.169.254 as 64:ff9b::a9fe:a9fe) and the
            // deprecated IPv4-compatible ::a.b.c.d. Judge them by that address.
            let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
            let compatible = s[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified();
            // 6to4 (2002::/16) carries the IPv4 address in bits 16..48.
            if s[0] == 0x2002 {
                let [a, b] = s[1].to_be_bytes();
                let [c, d] = s[2].to_be_bytes();
                return is_internal_ip(IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d)));
            }
            if nat64 || compatible {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return is_internal_ip(IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d)));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site local fec0::/10 (deprecated, still routed by some)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation 2001:db8::/32
                || s[0] == 0x3fff && s[1] < 0x1000 // documentation 3fff::/20
                || (s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64 64:ff9b:1::/48
                || (s[0] == 0x2001 && s[1] < 0x0200) // IETF protocol assignments 2001::/23 (Teredo, ORCHID, AMT...)
                || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only 100::/64
                || s[0] == 0x5f00 // SRv6 SIDs 5f00::/16
        }
    }
}

/// Checks a URL an operator gave us for callbacks: http(s), a host, and (unless
/// allowed) no internal IP literal and no obviously internal host name. Names are
/// checked again at connection time by [`GuardedResolver`] (DNS can change).
pub fn check_outbound_url(raw: &str, allow_internal: bool) -> Result<url::Url, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials".into());
    }
    let host = url.host().ok_or("must have a host")?;
    if allow_internal {
        return Ok(url);
    }
    let internal = match host {
        url::Host::Ipv4(ip) => is_internal_ip(ip.into()),
        url::Host::Ipv6(ip) => is_internal_ip(ip.into()),
        url::Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost"
                || d.ends_with(".localhost")
                || d.ends_with(".internal")
                || d.ends_with(".local")
        }
    };
    if internal {
        return Err("points at an internal address (set ALLOW_PRIVATE_URLS=true to allow)".into());
    }
    Ok(url)
}

/// Whether the host name of `url` resolves to an internal address right now. IP
/// literals and obviously internal names are [`check_outbound_url`]'s job; this
/// catches a name that points inward (`/etc/hosts` entries, split-horizon DNS) so
/// the dispatcher hears about it when creating the callout, not never. A name
/// that does not resolve (yet), or not within `timeout`, is not judged here:
/// DNS changes, and [`GuardedResolver`] judges every connection anyway.
pub async fn resolves_internal(url: &url::Url, timeout: Duration) -> bool {
    let Some(url::Host::Domain(host)) = url.host() else {
        return false;
    };
    let port = url.port_or_known_default().unwrap_or(80);
    match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(mut addrs)) => addrs.any(|a| is_internal_ip(a.ip())),
        _ => false,
    }
}

/// A DNS resolver that drops internal addresses, so a public-looking name that
/// resolves to 127.0.0.1 or 10.x cannot be used to reach the internal network.
#[derive(Debug, Clone, Default)]
pub struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !is_internal_ip(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves only to internal addresses").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The client for operator-supplied URLs: short timeouts, no redirects, and (unless
/// `allow_internal`) the [`GuardedResolver`].
pub fn outbound_client(
    allow_internal: bool,
    timeout: Duration,
) -> reqwest::Result<reqwest::Client> {
    install_crypto_provider();
    // `.no_proxy()`: reqwest would otherwise take HTTP(S)_PROXY from the
    // environment, and a proxy resolves the name itself, past the guard.
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(3))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ivr-gateway/", env!("CARGO_PKG_VERSION")));
    if !allow_internal {
        b = b.dns_resolver(std::sync::Arc::new(GuardedResolver));
    }
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::10.0.0.1",
            "64:ff9b:1::808:808",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
            "192.0.0.8",
            "192.0.0.170",
            "192.88.99.1",
            "2001::1",
            "2001:0:4136:e378::1",
            "2001:20::1",
            "100::1",
            "3fff::1",
            "5f00::1",
            "::127.0.0.1",
            "::10.0.0.1",
            "fec0::1",
        ] {
            assert!(is_internal_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "64:ff9b::8.8.8.8",
            "2002:808:808::1",
            "2001:4860:4860::8888",
            "192.1.0.1",
        ] {
            assert!(!is_internal_ip(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn outbound_urls_are_checked() {
        assert!(check_outbound_url("https://dispatch.example.com/hook", false).is_ok());
        for bad in [
            "ftp://x.example.com",
            "https://user:pw@x.example.com",
            "http://127.0.0.1:8080/x",
            "http://[::1]/",
            "http://localhost/",
            "http://metadata.internal/",
            "http://169.254.169.254/latest",
        ] {
            assert!(check_outbound_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_outbound_url("http://127.0.0.1:8080/x", true).is_ok());
    }
}

// ----- primitives shared by the upstream clients ---------------------------------

/// How a request failed before an HTTP status was known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendFailure {
    /// The connection was never made: the request did not reach the upstream.
    Connect,
    /// No complete answer in time: the request may have been acted on.
    Timeout,
    /// The connection broke after it was made: the request may have been acted on.
    Transport,
}

/// Classifies a reqwest error. A connect timeout is a connect error (the request
/// never left), so `is_connect` is checked before `is_timeout`.
pub fn send_failure(e: &reqwest::Error) -> SendFailure {
    if e.is_connect() {
        SendFailure::Connect
    } else if e.is_timeout() {
        SendFailure::Timeout
    } else {
        SendFailure::Transport
    }
}

/// Reads at most `limit` bytes of a body; the flag says whether more was cut off.
pub async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> reqwest::Result<(Vec<u8>, bool)> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// `Retry-After` as a delay: whole seconds, or an HTTP-date (a past date is 0).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let raw = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at =
        time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc2822).ok()?;
    Some(Duration::try_from(at - time::OffsetDateTime::now_utc()).unwrap_or(Duration::ZERO))
}

/// Collapses whitespace and bounds the length of a message from an upstream.
/// Upstream text (an error message, a debug trace) made safe to log: phone
/// numbers masked as the gateway's own logs mask them (`+3069****0001`), the
/// value of any `sig=` parameter (a signed webhook URL echoed back) cut out,
/// then [`one_line`]. Routee's `developerMessage` and `properties` quote the
/// numbers and URLs they refuse.
pub fn log_safe(raw: &str, max_chars: usize) -> String {
    one_line(&mask_phones_and_signatures(raw), max_chars)
}

/// See [`log_safe`]. A number is a run of digits (single spaces, dashes or
/// dots between them allowed) with a `+` and 7 digits or more, or without one
/// and 10 or more: a 9-digit Routee error code stays readable, a bare E.164
/// number without its `+` does not.
pub fn mask_phones_and_signatures(raw: &str) -> String {
    use std::sync::LazyLock;
    static SIG: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r#"(?i)\bsig=[^&\s"'<>]+"#)
            .unwrap_or_else(|_| unreachable!("a valid pattern, checked by the unit test"))
    });
    static PHONE: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"\+?\d(?:[ .-]?\d){6,}")
            .unwrap_or_else(|_| unreachable!("a valid pattern, checked by the unit test"))
    });
    let unsigned = SIG.replace_all(raw, "sig=[redacted]");
    PHONE
        .replace_all(&unsigned, |c: &regex::Captures<'_>| {
            let found = &c[0];
            let digits: String = found.chars().filter(char::is_ascii_digit).collect();
            let plus = found.starts_with('+');
            if (plus && digits.len() >= 7) || digits.len() >= 10 {
                let number = if plus { format!("+{digits}") } else { digits };
                crate::domain::phone::mask(&number)
            } else {
                found.to_owned()
            }
        })
        .into_owned()
}

pub fn one_line(raw: &str, max_chars: usize) -> String {
    let text = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() > max_chars {
        text.chars().take(max_chars).collect::<String>() + "…"
    } else {
        text
    }
}

/// Why a base URL cannot be used, if it cannot.
pub fn base_url_problem(url: &url::Url) -> Option<String> {
    (!matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base())
        .then(|| format!("{url} is not an http(s) base URL"))
}

/// Ids come from webhooks and users: refuse those that would change a path's
/// meaning even percent-encoded (`.`/`..` are dropped by URL normalisation; empty
/// addresses the parent).
pub fn segment_problem(id: &str) -> Option<&'static str> {
    (id.is_empty() || id == "." || id == ".." || id.len() > 256)
        .then_some("it is empty, a dot segment, or too long")
}

/// `base` with `segments` appended, each percent-encoded. `None` when `base`
/// cannot take a path.
pub fn endpoint(base: &url::Url, segments: &[&str]) -> Option<url::Url> {
    let mut url = base.clone();
    url.path_segments_mut()
        .ok()?
        .pop_if_empty()
        .extend(segments);
    Some(url)
}

#[cfg(test)]
mod primitive_tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            reqwest::header::RETRY_AFTER,
            reqwest::header::HeaderValue::from_static("7"),
        );
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));

        let later = time::OffsetDateTime::now_utc() + time::Duration::seconds(120);
        let date = later
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap();
        h.insert(
            reqwest::header::RETRY_AFTER,
            reqwest::header::HeaderValue::from_str(&date).unwrap(),
        );
        let wait = retry_after(&h).unwrap();
        assert!(
            wait > Duration::from_secs(110) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );

        h.insert(
            reqwest::header::RETRY_AFTER,
            reqwest::header::HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));

        h.insert(
            reqwest::header::RETRY_AFTER,
            reqwest::header::HeaderValue::from_static("soon"),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn path_segments_are_checked_and_encoded() {
        for bad in ["", ".", "..", &"a".repeat(300)] {
            assert!(segment_problem(bad).is_some(), "{bad:?}");
        }
        let base = url::Url::parse("http://x/api/").unwrap();
        assert_eq!(
            endpoint(&base, &["a", "b/c?d"]).unwrap().as_str(),
            "http://x/api/a/b%2Fc%3Fd"
        );
        assert!(base_url_problem(&url::Url::parse("ftp://x").unwrap()).is_some());
        assert_eq!(one_line("a\n  b", 10), "a b");
        assert_eq!(
            log_safe(
                "to +306912345678 via ?sig=1.abc&x=1 code 400013000 at 2026-01-01",
                200
            ),
            "to +3069****5678 via ?sig=[redacted]&x=1 code 400013000 at 2026-01-01"
        );
        assert_eq!(one_line("abcdef", 3), "abc…");
    }
}
