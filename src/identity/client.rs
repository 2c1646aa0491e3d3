//! Who the client is: its address (trusting forwarding headers only from configured
//! proxies) and its User-Agent, as the services see them.

use std::net::IpAddr;

use actix_web::http::header::{HeaderMap, USER_AGENT};

/// The header a trusted proxy writes the client chain into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (the default: what most load balancers
    /// write).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
enum Trust {
    #[default]
    Nobody,
    Hops(usize),
    Addresses(Vec<IpAddr>),
}

/// Which proxies in front of the app may say who the client is, and in which header.
///
/// Without trusted proxies the peer address is the client: forwarding headers are
/// ignored, since any client can send them. With proxies, only the header named here is
/// read (a client-sent `Forwarded` cannot override the proxy's `X-Forwarded-For`), from
/// the right: the entries our own proxies appended are at the right end, and anything to
/// their left was written by the client.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrustedProxies {
    trust: Trust,
    header: ForwardedHeader,
}

/// Entries read from the right end of the forwarded chain, at most.
const MAX_CHAIN: usize = 64;

impl TrustedProxies {
    /// Trust no forwarding header (the default).
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// Exactly `n` proxies stand in front of the app (a load balancer is 1): the client is
    /// the address `n` entries from the right of the chain.
    #[must_use]
    pub fn hops(n: usize) -> Self {
        Self {
            trust: if n == 0 {
                Trust::Nobody
            } else {
                Trust::Hops(n)
            },
            header: ForwardedHeader::default(),
        }
    }

    /// These proxy addresses are trusted: the chain is walked from the peer leftwards
    /// while the address is trusted; the first untrusted address is the client.
    #[must_use]
    pub fn addresses(list: Vec<IpAddr>) -> Self {
        Self {
            trust: Trust::Addresses(list),
            header: ForwardedHeader::default(),
        }
    }

    /// The header the proxies write (default `X-Forwarded-For`).
    #[must_use]
    pub fn header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// The client address for a request from `peer` with `headers`.
    #[must_use]
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        match &self.trust {
            Trust::Nobody => peer,
            Trust::Hops(n) => {
                // The last `n - 1` entries were added by our own proxies; the one before
                // is what the outermost proxy saw.
                forwarded_from_right(headers, self.header)
                    .nth(n - 1)
                    .flatten()
                    .or(peer)
            }
            Trust::Addresses(list) => {
                let mut current = peer?;
                if !list.contains(&current) {
                    return Some(current);
                }
                for hop in forwarded_from_right(headers, self.header) {
                    let Some(hop) = hop else { break };
                    current = hop;
                    if !list.contains(&current) {
                        break;
                    }
                }
                Some(current)
            }
        }
    }
}

/// What the services know about a request's client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// The client address (see [`TrustedProxies`]).
    pub ip: Option<IpAddr>,
    /// The User-Agent header.
    pub user_agent: Option<String>,
}

impl RequestInfo {
    /// The info of a request whose client address is `ip`.
    #[must_use]
    pub fn new(ip: Option<IpAddr>, headers: &HeaderMap) -> Self {
        Self {
            ip,
            user_agent: headers
                .get(USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }
    }
}

/// The chain's entries from the right (nearest proxy) leftwards, at most [`MAX_CHAIN`]:
/// `Some(ip)` per entry, `None` for an entry that is not an address (the walk stops there).
fn forwarded_from_right(
    headers: &HeaderMap,
    header: ForwardedHeader,
) -> impl Iterator<Item = Option<IpAddr>> + '_ {
    let name = match header {
        ForwardedHeader::XForwardedFor => "x-forwarded-for",
        ForwardedHeader::Forwarded => "forwarded",
    };
    let values: Vec<&str> = headers
        .get_all(name)
        .map(|v| v.to_str().unwrap_or(","))
        .collect();
    values
        .into_iter()
        .rev()
        .flat_map(|v| v.rsplit(','))
        .take(MAX_CHAIN)
        .map(move |element| match header {
            ForwardedHeader::XForwardedFor => parse_node(element.trim()),
            ForwardedHeader::Forwarded => element
                .split(';')
                .find_map(|pair| {
                    let (k, v) = pair.trim().split_once('=')?;
                    k.trim().eq_ignore_ascii_case("for").then_some(v.trim())
                })
                .and_then(parse_node),
        })
}

/// `1.2.3.4`, `1.2.3.4:80`, `"[::1]:80"`, `[::1]`, `::1`.
fn parse_node(raw: &str) -> Option<IpAddr> {
    let s = raw.trim_matches('"');
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    let (host, _port) = s.rsplit_once(':')?;
    host.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarding_headers_are_ignored_without_trusted_proxies() {
        let h = headers(&[("x-forwarded-for", "6.6.6.6")]);
        assert_eq!(
            TrustedProxies::none().client_ip(Some(ip("10.0.0.1")), &h),
            Some(ip("10.0.0.1"))
        );
    }

    #[test]
    fn hops_pick_the_address_the_outermost_proxy_saw() {
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.2")]);
        let peer = Some(ip("10.0.0.1"));
        assert_eq!(
            TrustedProxies::hops(1).client_ip(peer, &h),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(
            TrustedProxies::hops(2).client_ip(peer, &h),
            Some(ip("1.2.3.4"))
        );
        assert_eq!(TrustedProxies::hops(9).client_ip(peer, &h), peer);
    }

    #[test]
    fn address_list_walks_past_trusted_proxies_only() {
        let trusted = TrustedProxies::addresses(vec![ip("10.0.0.1"), ip("10.0.0.2")]);
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.2")]);
        assert_eq!(
            trusted.client_ip(Some(ip("10.0.0.1")), &h),
            Some(ip("1.2.3.4"))
        );
        // A peer that is not a trusted proxy is the client, whatever it claims.
        assert_eq!(
            trusted.client_ip(Some(ip("5.5.5.5")), &h),
            Some(ip("5.5.5.5"))
        );
    }

    #[test]
    fn only_the_configured_header_is_read() {
        let h = headers(&[
            (
                "forwarded",
                "for=\"[2001:db8::1]:4711\";proto=https, for=192.0.2.60:80",
            ),
            ("x-forwarded-for", "6.6.6.6"),
        ]);
        let peer = Some(ip("10.0.0.1"));
        // The default header is X-Forwarded-For: a client-sent Forwarded changes nothing.
        assert_eq!(
            TrustedProxies::hops(1).client_ip(peer, &h),
            Some(ip("6.6.6.6"))
        );
        let rfc = |n| TrustedProxies::hops(n).header(ForwardedHeader::Forwarded);
        assert_eq!(rfc(1).client_ip(peer, &h), Some(ip("192.0.2.60")));
        assert_eq!(rfc(2).client_ip(peer, &h), Some(ip("2001:db8::1")));
    }

    #[test]
    fn the_chain_is_read_from_the_right_however_long_the_client_makes_it() {
        let forged = vec!["9.9.9.9"; 100].join(", ") + ", 1.2.3.4";
        let h = headers(&[("x-forwarded-for", &forged)]);
        assert_eq!(
            TrustedProxies::hops(1).client_ip(Some(ip("10.0.0.1")), &h),
            Some(ip("1.2.3.4"))
        );
    }

    #[test]
    fn garbage_entries_cut_the_chain() {
        let h = headers(&[("x-forwarded-for", "1.1.1.1, unknown, 2.2.2.2")]);
        assert_eq!(TrustedProxies::hops(2).client_ip(None, &h), None);
        assert_eq!(
            TrustedProxies::hops(1).client_ip(None, &h),
            Some(ip("2.2.2.2"))
        );
    }
}
