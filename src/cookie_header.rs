//! A raw `Cookie` request-header reader that matches names byte for byte.
//!
//! actix-web's `HttpRequest::cookies()` percent-decodes names, so a cookie sent as
//! `%5F%5FHost-device_id` would be seen as `__Host-device_id` and defeat the guarantees
//! of the `__Host-` prefix (a sibling subdomain can set the encoded name, but never the
//! real one). This reader never decodes: the name on the wire is the name.

/// Bounds on how much of the `Cookie` headers one lookup reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderLimits {
    /// Bytes read across all `Cookie` headers; the rest is ignored. Default 8 KiB.
    pub max_bytes: usize,
    /// `name=value` pairs looked at across all headers; the rest are ignored. Default 64.
    pub max_cookies: usize,
}

impl Default for HeaderLimits {
    fn default() -> Self {
        Self {
            max_bytes: 8 * 1024,
            max_cookies: 64,
        }
    }
}

/// Every value of the cookie called exactly `name`, in the order they appear, across the
/// given `Cookie` header values, within `limits`.
///
/// Pairs are split on `;`, surrounding spaces and tabs are trimmed, the name is what comes
/// before the first `=`. Pairs without `=` are skipped (and counted toward the limit).
/// Values are returned as sent: not unquoted, not decoded.
///
/// ```
/// use actix_device::cookie_header::{values_named, HeaderLimits};
/// let header = b"a=1; __Host-id=x; %5F%5FHost-id=evil; __Host-id=y";
/// let found: Vec<&[u8]> = values_named([&header[..]], b"__Host-id", HeaderLimits::default()).collect();
/// assert_eq!(found, vec![&b"x"[..], &b"y"[..]]);
/// ```
pub fn values_named<'h, 'n, I>(
    headers: I,
    name: &'n [u8],
    limits: HeaderLimits,
) -> impl Iterator<Item = &'h [u8]> + use<'h, 'n, I>
where
    I: IntoIterator<Item = &'h [u8]>,
{
    let mut budget = limits.max_bytes;
    headers
        .into_iter()
        .map_while(move |header| {
            if budget == 0 {
                return None;
            }
            let take = header.len().min(budget);
            budget -= take;
            Some(&header[..take])
        })
        .flat_map(|header| header.split(|&b| b == b';'))
        .take(limits.max_cookies)
        .filter_map(move |pair| {
            let pair = trim(pair);
            let eq = pair.iter().position(|&b| b == b'=')?;
            let (n, v) = (&pair[..eq], &pair[eq + 1..]);
            (trim(n) == name).then_some(trim(v))
        })
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(header: &'a str, name: &str) -> Vec<&'a str> {
        values_named(
            [header.as_bytes()],
            name.as_bytes(),
            HeaderLimits::default(),
        )
        .map(|v| std::str::from_utf8(v).unwrap())
        .collect()
    }

    #[test]
    fn names_match_byte_for_byte() {
        assert_eq!(find("device_id=a", "device_id"), ["a"]);
        assert!(find("Device_id=a", "device_id").is_empty());
        assert!(find("%5F%5FHost-device_id=a", "__Host-device_id").is_empty());
        assert!(find("__host-device_id=a", "__Host-device_id").is_empty());
        assert!(find("device_id2=a; xdevice_id=b", "device_id").is_empty());
    }

    #[test]
    fn whitespace_and_odd_pairs() {
        assert_eq!(find(" a = 1 ;\tb=2;;c;=3; d=", "a"), ["1"]);
        assert_eq!(find(" a = 1 ;\tb=2;;c;=3; d=", "d"), [""]);
        assert_eq!(find("a=b=c", "a"), ["b=c"]);
        assert!(find("", "a").is_empty());
        assert!(find(";;;;", "a").is_empty());
    }

    #[test]
    fn duplicates_come_back_in_order_across_headers() {
        let headers = [&b"id=1; x=0"[..], &b"id=2"[..], &b"id=3"[..]];
        let all: Vec<_> = values_named(headers, b"id", HeaderLimits::default()).collect();
        assert_eq!(all, [&b"1"[..], b"2", b"3"]);
    }

    #[test]
    fn limits_bound_the_work() {
        let many = "x=1;".repeat(10_000) + "id=late";
        assert!(find(&many, "id").is_empty());
        let limits = HeaderLimits {
            max_bytes: 10,
            max_cookies: 1000,
        };
        let header = b"aaaaaa=1; id=2";
        assert_eq!(values_named([&header[..]], b"id", limits).count(), 0);
        let header = b"id=2; aaaaaaaaaaaaaaaaaaa";
        assert_eq!(values_named([&header[..]], b"id", limits).count(), 1);
    }
}
