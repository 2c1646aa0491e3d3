//! A raw `Cookie` request-header reader that matches names byte for byte.
//!
//! actix-web's `HttpRequest::cookies()` percent-decodes names, so a cookie sent as
//! `%5F%5FHost-device_id` would be seen as `__Host-device_id` and defeat the guarantees
//! of the `__Host-` prefix (a sibling subdomain can set the encoded name, but never the
//! real one). This reader never decodes: the name on the wire is the name.

use std::borrow::Cow;
use std::sync::OnceLock;

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
    CookieName::borrowed(name).values(headers, limits)
}

/// [`values_named`] without collecting: hands each value to `visit` in order, stopping
/// when it returns `false`. Returns whether the whole header was read within `limits`
/// (`true` also when the visitor stopped first).
pub fn visit_values<'h, I>(
    headers: I,
    name: &[u8],
    limits: HeaderLimits,
    visit: impl FnMut(&'h [u8]) -> bool,
) -> bool
where
    I: IntoIterator<Item = &'h [u8]>,
{
    CookieName::borrowed(name).visit(headers, limits, visit)
}

/// Headers this long or longer are read by searching for the name; shorter ones pair by
/// pair. Measured (release build, one name of 9 bytes): splitting costs about 7 ns plus
/// 4–5 ns per pair, the search about 20 ns plus 2–3 ns per 100 bytes, so they cross at
/// four or five pairs, about 170 bytes; a browser with only our cookies stays below it.
const SEARCH_FROM: usize = 192;

/// A cookie name made ready for [`values_named`]'s reading: a middleware or service that
/// reads one name on every request makes it once, and its searcher is built once.
///
/// A long header is read by looking for the name itself (one SIMD substring search)
/// rather than by splitting every pair, so a header crowded with other cookies costs a
/// pass over its bytes, not work per pair: 51 ns instead of 231 ns for 40 analytics
/// cookies in front of ours, and a 16 KiB header of tiny pairs costs one pass rather than
/// thousands of splits. A name that holds a separator, a space, a tab or an `=` (or is
/// empty) cannot be found that way and is always read pair by pair.
#[derive(Clone)]
pub(crate) struct CookieName<'n> {
    name: Cow<'n, [u8]>,
    /// Whether the substring search can find the name (see above).
    searchable: bool,
    /// The searcher, built when the first long header comes.
    finder: OnceLock<memchr::memmem::Finder<'static>>,
    /// The header length from which the search reads (`SEARCH_FROM`; tests lower it).
    search_from: usize,
}

impl std::fmt::Debug for CookieName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CookieName")
            .field(&String::from_utf8_lossy(&self.name))
            .finish()
    }
}

impl CookieName<'static> {
    pub(crate) fn new(name: &[u8]) -> Self {
        Self::from_cow(Cow::Owned(name.to_vec()))
    }
}

impl<'n> CookieName<'n> {
    /// For one lookup: nothing is copied, and the searcher is built only if a header is
    /// long enough to need it.
    fn borrowed(name: &'n [u8]) -> Self {
        Self::from_cow(Cow::Borrowed(name))
    }

    fn from_cow(name: Cow<'n, [u8]>) -> Self {
        let searchable =
            !name.is_empty() && !name.iter().any(|b| matches!(b, b';' | b'=' | b' ' | b'\t'));
        Self {
            name,
            searchable,
            finder: OnceLock::new(),
            search_from: SEARCH_FROM,
        }
    }

    /// The searcher for a header of `len` bytes, if the search reads it.
    fn finder_for(&self, len: usize) -> Option<&memchr::memmem::Finder<'static>> {
        (self.searchable && len >= self.search_from).then(|| {
            self.finder
                .get_or_init(|| memchr::memmem::Finder::new(&*self.name).into_owned())
        })
    }

    /// [`values_named`] for this name.
    fn values<'h, I>(&self, headers: I, limits: HeaderLimits) -> CookieValues<'h>
    where
        I: IntoIterator<Item = &'h [u8]>,
    {
        let mut values = Vec::new();
        let complete = self.visit(headers, limits, |value| {
            values.push(value);
            true
        });
        CookieValues { values, complete }
    }

    /// [`visit_values`] for this name.
    pub(crate) fn visit<'h, I>(
        &self,
        headers: I,
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
            let read = &header[..header.len().min(budget)];
            budget -= read.len();
            let mut on_value = |value| {
                if seen == limits.max_values {
                    return Visit::Incomplete;
                }
                seen += 1;
                if visit(value) {
                    Visit::Next
                } else {
                    Visit::Stopped
                }
            };
            let outcome = match self.finder_for(read.len()) {
                Some(finder) => search(read, finder, &mut on_value),
                None => split(read, &self.name, &mut on_value),
            };
            match outcome {
                Visit::Incomplete => return false,
                Visit::Stopped => return true,
                Visit::Next if cut => return false,
                Visit::Next => {}
            }
        }
        true
    }
}

/// What a visitor said of a value (or of a header, once read).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Visit {
    Next,
    Stopped,
    Incomplete,
}

/// Every value of the name `finder` finds in `header`, in order: an occurrence counts
/// where only spaces or tabs stand between it and the pair's start (the header's start
/// or a `;`), and spaces, tabs and an `=` follow it. The name holds no `;`, `=`, space
/// or tab, so no occurrence spans a pair boundary and the pairs match those `split`
/// sees.
fn search<'h>(
    header: &'h [u8],
    finder: &memchr::memmem::Finder<'_>,
    on_value: &mut impl FnMut(&'h [u8]) -> Visit,
) -> Visit {
    let mut from = 0;
    while let Some(found) = finder.find(&header[from..]) {
        let at = from + found;
        let before = trim_end(&header[..at]);
        let after = trim_start(&header[at + finder.needle().len()..]);
        match (before.last(), after.split_first()) {
            (None | Some(b';'), Some((b'=', rest))) => {
                let (value, next) = match memchr::memchr(b';', rest) {
                    Some(end) => (&rest[..end], Some(header.len() - rest.len() + end + 1)),
                    None => (rest, None),
                };
                match on_value(trim(value)) {
                    Visit::Next => {}
                    other => return other,
                }
                match next {
                    Some(next) => from = next,
                    None => return Visit::Next,
                }
            }
            _ => from = at + 1,
        }
    }
    Visit::Next
}

/// Every value of `name` in `header`, pair by pair.
#[inline(always)]
fn split<'h>(
    mut rest: &'h [u8],
    name: &[u8],
    on_value: &mut impl FnMut(&'h [u8]) -> Visit,
) -> Visit {
    loop {
        let (pair, next) = match memchr::memchr(b';', rest) {
            Some(at) => (&rest[..at], Some(&rest[at + 1..])),
            None => (rest, None),
        };
        if let Some(value) = value_of(pair, name) {
            match on_value(value) {
                Visit::Next => {}
                other => return other,
            }
        }
        match next {
            Some(next) => rest = next,
            None => return Visit::Next,
        }
    }
}

/// The value of `pair` if its name is exactly `name`: spaces and tabs around the name and
/// the value are skipped, the name ends at the first `=`.
#[inline(always)]
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

fn trim_end(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn trim(s: &[u8]) -> &[u8] {
    trim_end(trim_start(s))
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

    #[test]
    fn a_long_header_is_searched_with_the_same_answers() {
        let name = CookieName::new(b"device_id");
        let crowded = "_ga=GA1.2.3; xdevice_id=no; a=device_id=no; ".repeat(8)
            + " device_id \t= yes ;device_id=again";
        assert!(crowded.len() >= SEARCH_FROM);
        let found = name.values([crowded.as_bytes()], HeaderLimits::default());
        assert_eq!(found.values, [&b"yes"[..], b"again"]);
        assert!(found.complete);
        let limits = HeaderLimits {
            max_bytes: 16 * 1024,
            max_values: 1,
        };
        let capped = name.values([crowded.as_bytes()], limits);
        assert_eq!((capped.values.len(), capped.complete), (1, false));
    }

    /// The reader as first written (split on `;`, trim, name before the first `=`): the
    /// substring search and the pair-by-pair reader must agree with it on every input.
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
            // Names the substring search reads, and names it leaves to the pair-by-pair
            // reader (empty, or holding a space or a tab).
            for name in [&b"id"[..], b"i", b"x", b"xi", b"", b"i d", b"d\tx"] {
                let expected = reference(&headers, name, limits);
                let ours = values_named(headers.iter().copied(), name, limits);
                proptest::prop_assert_eq!(&ours, &expected);
                let searching = CookieName { search_from: 0, ..CookieName::new(name) };
                proptest::prop_assert_eq!(&searching.values(headers.iter().copied(), limits), &expected);
            }
        }
    }
}
