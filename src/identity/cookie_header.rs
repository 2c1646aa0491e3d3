//! A raw `Cookie` request-header reader that matches names byte for byte.
//!
//! actix-web's `HttpRequest::cookies()` percent-decodes names, so a cookie sent as
//! `%5F%5FHost-device_id` would be seen as `__Host-device_id` and defeat the guarantees
//! of the `__Host-` prefix (a sibling subdomain can set the encoded name, but never the
//! real one). This reader never decodes: the name on the wire is the name.

/// Bounds on how much of the `Cookie` headers one lookup reads.
///
/// Only bytes count: a browser carrying dozens of unrelated cookies (analytics, consent,
/// A/B tools) in front of ours must not lose its identity, so pairs of other names are
/// free. A lookup that stops at the bound says so ([`CookieValues::complete`]) and the
/// middleware then neither mints an id nor overwrites the cookie it could not see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderLimits {
    /// Bytes read across all `Cookie` headers. Default 16 KiB (browsers send at most
    /// about 8 KiB per header; servers usually refuse more than 16 KiB of headers).
    pub max_bytes: usize,
    /// Values of *our* cookie name looked at; more than this and the lookup is
    /// incomplete. Default 16.
    pub max_values: usize,
}

impl Default for HeaderLimits {
    fn default() -> Self {
        Self {
            max_bytes: 16 * 1024,
            max_values: 16,
        }
    }
}

/// The values of one cookie name found in a request, and whether the whole header was
/// read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CookieValues<'h> {
    /// The values, in the order they appear.
    pub values: Vec<&'h [u8]>,
    /// `false` when a limit stopped the reader: a value of the name may have been missed.
    pub complete: bool,
}

/// Every value of the cookie called exactly `name`, in the order they appear, across the
/// given `Cookie` header values, within `limits`.
///
/// Pairs are split on `;`, surrounding spaces and tabs are trimmed, the name is what comes
/// before the first `=`. Pairs without `=` are skipped. Values are returned as sent: not
/// unquoted, not decoded.
///
/// ```
/// use actix_device::cookie_header::{values_named, HeaderLimits};
/// let header = b"a=1; __Host-id=x; %5F%5FHost-id=evil; __Host-id=y";
/// let found = values_named([&header[..]], b"__Host-id", HeaderLimits::default());
/// assert_eq!(found.values, vec![&b"x"[..], &b"y"[..]]);
/// assert!(found.complete);
/// ```
pub fn values_named<'h, I>(headers: I, name: &[u8], limits: HeaderLimits) -> CookieValues<'h>
where
    I: IntoIterator<Item = &'h [u8]>,
{
    let mut values = Vec::new();
    let complete = visit_values(headers, name, limits, |value| {
        values.push(value);
        true
    });
    CookieValues { values, complete }
}

/// [`values_named`] without collecting: hands each value to `visit` in order, stopping
/// when it returns `false`. Returns whether the whole header was read within `limits`
/// (`true` also when the visitor stopped first).
pub fn visit_values<'h, I>(
    headers: I,
    name: &[u8],
    limits: HeaderLimits,
    mut visit: impl FnMut(&'h [u8]) -> bool,
) -> bool
where
    I: IntoIterator<Item = &'h [u8]>,
{
    let mut budget = limits.max_bytes;
    let mut seen = 0;
    for header in headers {
        let cut = header.len() > budget;
        let mut rest = &header[..header.len().min(budget)];
        budget -= rest.len();
        loop {
            let (pair, next) = match memchr::memchr(b';', rest) {
                Some(at) => (&rest[..at], Some(&rest[at + 1..])),
                None => (rest, None),
            };
            if let Some(value) = value_of(pair, name) {
                if seen == limits.max_values {
                    return false;
                }
                seen += 1;
                if !visit(value) {
                    return true;
                }
            }
            match next {
                Some(next) => rest = next,
                None => break,
            }
        }
        if cut {
            return false;
        }
    }
    true
}

/// The value of `pair` if its name is exactly `name`: spaces and tabs around the name and
/// the value are skipped, the name ends at the first `=`.
fn value_of<'h>(pair: &'h [u8], name: &[u8]) -> Option<&'h [u8]> {
    let after_name = trim_start(pair).strip_prefix(name)?;
    let value = trim_start(after_name).strip_prefix(b"=")?;
    Some(trim(value))
}

fn trim_start(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    s
}

fn trim(s: &[u8]) -> &[u8] {
    let mut s = trim_start(s);
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
        .values
        .into_iter()
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
        let all = values_named(headers, b"id", HeaderLimits::default()).values;
        assert_eq!(all, [&b"1"[..], b"2", b"3"]);
    }

    #[test]
    fn other_names_are_free_and_only_bytes_bound_the_read() {
        let crowded = "x=1;".repeat(500) + "id=late";
        assert_eq!(find(&crowded, "id"), ["late"]);
        let limits = HeaderLimits {
            max_bytes: 10,
            max_values: 16,
        };
        let cut = values_named([&b"aaaaaa=1; id=2"[..]], b"id", limits);
        assert!(cut.values.is_empty() && !cut.complete);
        let early = values_named([&b"id=2; aaaaaaaaaaaaaaaaaaa"[..]], b"id", limits);
        assert_eq!((early.values.len(), early.complete), (1, false));
        let many = "id=1;".repeat(17);
        let capped = values_named([many.as_bytes()], b"id", HeaderLimits::default());
        assert_eq!((capped.values.len(), capped.complete), (16, false));
    }

    /// The reader as first written (split on `;`, trim, name before the first `=`): the
    /// memchr reader must agree with it on every input.
    fn reference<'h>(headers: &[&'h [u8]], name: &[u8], limits: HeaderLimits) -> CookieValues<'h> {
        let mut found = CookieValues {
            values: Vec::new(),
            complete: true,
        };
        let mut budget = limits.max_bytes;
        for header in headers {
            if header.len() > budget {
                found.complete = false;
            }
            let header = &header[..header.len().min(budget)];
            budget -= header.len();
            for pair in header.split(|&b| b == b';') {
                let pair = trim(pair);
                let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                    continue;
                };
                if trim(&pair[..eq]) != name {
                    continue;
                }
                if found.values.len() == limits.max_values {
                    found.complete = false;
                    return found;
                }
                found.values.push(trim(&pair[eq + 1..]));
            }
            if !found.complete {
                break;
            }
        }
        found
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_the_split_reader(
            headers in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(&b"id=; \tx"[..]), 0..40),
                0..4,
            ),
            max_bytes in 0usize..80,
            max_values in 0usize..4,
        ) {
            let limits = HeaderLimits { max_bytes, max_values };
            let headers: Vec<&[u8]> = headers.iter().map(Vec::as_slice).collect();
            for name in [&b"id"[..], b"i", b"x"] {
                let ours = values_named(headers.iter().copied(), name, limits);
                proptest::prop_assert_eq!(ours, reference(&headers, name, limits));
            }
        }
    }
}
