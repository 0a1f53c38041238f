//! Where the Redis store is: `REDIS_URL`, read into one [`Target`].
//!
//! The `redis` crate reads an ordinary URL for one server and takes a cluster or a
//! Sentinel deployment as a *list* of ordinary URLs (the seed nodes, the
//! sentinels). One environment variable has to carry that list, so the gateway
//! reads a `+cluster` or `+sentinel` scheme with comma-separated hosts and hands
//! the crate one ordinary URL per host:
//!
//! | `REDIS_URL` | deployment | handed to the crate |
//! |---|---|---|
//! | `redis://[user:pass@]host:port[/db]`, `rediss://…`, `unix:///path`, `redis+unix:///path` | one server | the URL as it is |
//! | `redis+cluster://[user:pass@]h1:p1,h2:p2,…` (`rediss+cluster://` for TLS) | Redis Cluster | `redis[s]://[user:pass@]h:p` per seed node; the rest are discovered |
//! | `redis+sentinel://[user:pass@]s1:p1,s2:p2,…/<master>[/<db>][?sentinel_username=…&sentinel_password=…]` (`rediss+sentinel://` for TLS) | Sentinel | `redis[s]://[sentinel credentials@]s:p` per sentinel; `user:pass` and `db` are for the primary |
//!
//! A URL fragment (`#insecure`: TLS without certificate checks, the crate's own
//! convention) is kept on every URL handed on. Ports default to 6379 (servers,
//! cluster nodes) and 26379 (sentinels). `user:pass` is Redis ACL (`AUTH user pass`);
//! a password alone is `:pass@`.

use std::fmt;

use redis::IntoConnectionInfo;

/// A parsed `REDIS_URL`. `Debug` never shows credentials.
#[derive(Clone, PartialEq, Eq)]
pub enum Target {
    /// One server: the URL as the crate reads it.
    Single(String),
    /// Redis Cluster: one ordinary URL per seed node.
    Cluster { nodes: Vec<String> },
    /// Sentinel: one ordinary URL per sentinel, the master's name, and an ordinary
    /// URL (host unused) carrying the primary's credentials, database and TLS.
    Sentinel {
        sentinels: Vec<String>,
        master: String,
        node: String,
    },
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Single(_) => f.write_str("Single([redacted])"),
            Target::Cluster { nodes } => write!(f, "Cluster({} seed nodes)", nodes.len()),
            Target::Sentinel {
                sentinels, master, ..
            } => write!(f, "Sentinel({master:?}, {} sentinels)", sentinels.len()),
        }
    }
}

impl Target {
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Single(_) => "single",
            Target::Cluster { .. } => "cluster",
            Target::Sentinel { .. } => "sentinel",
        }
    }

    /// Reads `REDIS_URL`. The error names what is wrong, never the password.
    pub fn parse(raw: &str) -> Result<Target, String> {
        let raw = raw.trim();
        let Some((scheme, rest)) = raw.split_once("://") else {
            return Err("not a URL (expected redis://, rediss://, unix://, \
                        redis+cluster:// or redis+sentinel://)"
                .into());
        };
        match scheme {
            "redis+cluster" | "rediss+cluster" => cluster(base(scheme), rest),
            "redis+sentinel" | "rediss+sentinel" => sentinel(base(scheme), rest),
            _ => {
                checked(raw)?;
                Ok(Target::Single(raw.to_owned()))
            }
        }
    }
}

/// `redis` or `rediss`, from `redis+cluster` and the like.
fn base(scheme: &str) -> &str {
    scheme.split_once('+').map_or(scheme, |(b, _)| b)
}

/// The parts of `[userinfo@]hosts[/path][?query][#fragment]`.
struct Parts<'a> {
    userinfo: Option<&'a str>,
    hosts: Vec<&'a str>,
    path: &'a str,
    query: &'a str,
    fragment: &'a str,
}

fn split(rest: &str) -> Result<Parts<'_>, String> {
    let (rest, fragment) = rest.split_once('#').map_or((rest, ""), |(r, f)| (r, f));
    let (rest, query) = rest.split_once('?').map_or((rest, ""), |(r, q)| (r, q));
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let hosts: Vec<&str> = hosts.split(',').map(str::trim).collect();
    if hosts.iter().any(|h| h.is_empty()) {
        return Err("a host is missing (hosts are comma-separated host:port)".into());
    }
    Ok(Parts {
        userinfo,
        hosts,
        path,
        query,
        fragment,
    })
}

fn with_port(host: &str, default: u16) -> String {
    // `[v6]` or `[v6]:port`, `name` or `name:port`.
    let has_port = match host.rfind(']') {
        Some(i) => host[i..].contains(':'),
        None => host.contains(':'),
    };
    if has_port {
        host.to_owned()
    } else {
        format!("{host}:{default}")
    }
}

fn url(base: &str, userinfo: Option<&str>, host: &str, path: &str, fragment: &str) -> String {
    let mut u = format!("{base}://");
    if let Some(ui) = userinfo {
        u.push_str(ui);
        u.push('@');
    }
    u.push_str(host);
    u.push_str(path);
    if !fragment.is_empty() {
        u.push('#');
        u.push_str(fragment);
    }
    u
}

/// The crate must read every URL handed to it; its error never carries the password.
fn checked(u: &str) -> Result<(), String> {
    u.into_connection_info()
        .map(|_| ())
        .map_err(|e| format!("not a Redis URL the client accepts ({e})"))
}

fn cluster(base: &str, rest: &str) -> Result<Target, String> {
    let p = split(rest)?;
    if !(p.path.is_empty() || p.path == "/") {
        return Err("a cluster has no database number (remove the path)".into());
    }
    if !p.query.is_empty() {
        return Err("a cluster URL takes no query parameters".into());
    }
    let nodes: Vec<String> = p
        .hosts
        .iter()
        .map(|h| url(base, p.userinfo, &with_port(h, 6379), "", p.fragment))
        .collect();
    for n in &nodes {
        checked(n)?;
    }
    Ok(Target::Cluster { nodes })
}

fn sentinel(base: &str, rest: &str) -> Result<Target, String> {
    let p = split(rest)?;
    let mut path = p.path.trim_matches('/').split('/');
    let master = path.next().unwrap_or_default().to_owned();
    if master.is_empty() {
        return Err("the master name is missing (redis+sentinel://hosts/<master>)".into());
    }
    let db = path.next().unwrap_or("0");
    if db.parse::<u32>().is_err() || path.next().is_some() {
        return Err("after the master name only a database number may follow".into());
    }
    let mut sentinel_user = String::new();
    let mut sentinel_pass = None;
    for (k, v) in url::form_urlencoded::parse(p.query.as_bytes()) {
        match k.as_ref() {
            "sentinel_username" => sentinel_user = v.into_owned(),
            "sentinel_password" => sentinel_pass = Some(v.into_owned()),
            other => return Err(format!("unknown query parameter {other:?}")),
        }
    }
    let sentinel_userinfo = match (&sentinel_user, &sentinel_pass) {
        (u, None) if u.is_empty() => None,
        (u, pass) => {
            let mut tmp = url::Url::parse("redis://localhost").map_err(|e| e.to_string())?;
            tmp.set_username(u).map_err(|()| "bad sentinel_username")?;
            tmp.set_password(pass.as_deref())
                .map_err(|()| "bad sentinel_password")?;
            Some(match tmp.password() {
                Some(pw) => format!("{}:{pw}", tmp.username()),
                None => tmp.username().to_owned(),
            })
        }
    };
    let sentinels: Vec<String> = p
        .hosts
        .iter()
        .map(|h| {
            url(
                base,
                sentinel_userinfo.as_deref(),
                &with_port(h, 26379),
                "",
                p.fragment,
            )
        })
        .collect();
    let node = url(base, p.userinfo, "localhost", &format!("/{db}"), p.fragment);
    for u in sentinels.iter().chain([&node]) {
        checked(u)?;
    }
    Ok(Target::Sentinel {
        sentinels,
        master,
        node,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ordinary_url_is_one_server_and_is_kept_as_it_is() {
        for u in [
            "redis://localhost:6379",
            "rediss://user:pw@redis.example.com:6380/2",
            "unix:///run/redis.sock",
            "redis+unix:///run/redis.sock?db=1",
        ] {
            assert_eq!(Target::parse(u), Ok(Target::Single(u.to_owned())), "{u}");
        }
    }

    #[test]
    fn a_cluster_url_becomes_one_ordinary_url_per_seed_node() {
        let t =
            Target::parse("rediss+cluster://gw:s%40cret@n1:7000,n2,[::1]:7002#insecure").unwrap();
        assert_eq!(
            t,
            Target::Cluster {
                nodes: vec![
                    "rediss://gw:s%40cret@n1:7000#insecure".into(),
                    "rediss://gw:s%40cret@n2:6379#insecure".into(),
                    "rediss://gw:s%40cret@[::1]:7002#insecure".into(),
                ]
            }
        );
        assert!(Target::parse("redis+cluster://n1:7000/3").is_err(), "db");
        assert!(
            Target::parse("redis+cluster://n1:7000,,n2").is_err(),
            "empty host"
        );
    }

    #[test]
    fn a_sentinel_url_names_the_master_and_keeps_sentinel_credentials_apart() {
        let t = Target::parse(
            "redis+sentinel://app:pw@s1,s2:5000/mymaster/2?sentinel_password=se%26cret",
        )
        .unwrap();
        let Target::Sentinel {
            sentinels,
            master,
            node,
        } = t
        else {
            panic!("not sentinel")
        };
        assert_eq!(
            sentinels,
            ["redis://:se&cret@s1:26379", "redis://:se&cret@s2:5000"]
        );
        assert_eq!(master, "mymaster");
        assert_eq!(node, "redis://app:pw@localhost/2");
        assert!(Target::parse("redis+sentinel://s1").is_err(), "no master");
        assert!(Target::parse("redis+sentinel://s1/m/x").is_err(), "bad db");
        assert!(
            Target::parse("redis+sentinel://s1/m?tls=1").is_err(),
            "unknown param"
        );
    }

    #[test]
    fn errors_and_debug_output_never_show_the_password() {
        let t = Target::parse("redis+cluster://u:hunter2hunter2@n1:7000").unwrap();
        assert!(!format!("{t:?}").contains("hunter2"));
        let t = Target::parse("redis://:hunter2hunter2@n1:7000").unwrap();
        assert!(!format!("{t:?}").contains("hunter2"));
        let e = Target::parse("http://:hunter2hunter2@n1").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(Target::parse("localhost:6379").is_err());
    }
}
