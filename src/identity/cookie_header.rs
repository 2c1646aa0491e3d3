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
        visit: impl FnMut(&'h [u8]) -> bool,
    ) -> bool
    where
        I: IntoIterator<Item = &'h [u8]>,
    {
        self.visit_noting(headers, limits, None, visit).0
    }

    /// [`visit`](Self::visit), noting on the way where the first value of the cookie
    /// called `other` stands (see [`Noted`]): a service that needs that cookie too then
    /// finds it without reading the headers again. Only headers read pair by pair are
    /// noted; a long one, read by searching for this name, leaves `other` unknown.
    #[inline]
    pub(crate) fn visit_noting<'h, I>(
        &self,
        headers: I,
        limits: HeaderLimits,
        other: Option<&[u8]>,
        mut visit: impl FnMut(&'h [u8]) -> bool,
    ) -> (bool, Noted)
    where
        I: IntoIterator<Item = &'h [u8]>,
    {
        let mut budget = limits.max_bytes;
        let mut seen = 0;
        let mut found = None;
        // Whether every header so far was read in full, pair by pair.
        let mut whole = other.is_some();
        let complete = 'read: {
            for (index, header) in headers.into_iter().enumerate() {
                let before = limits.max_bytes - budget;
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
                    Some(finder) => {
                        whole = false;
                        search(read, finder, &mut on_value)
                    }
                    None => {
                        // A value in a header cut short may itself be cut: not noted.
                        whole &= !cut;
                        let mut on_other = |value: &'h [u8]| {
                            if whole && found.is_none() {
                                found = Spot::of(index, header, before, value);
                            }
                        };
                        split(read, &self.name, other, &mut on_value, &mut on_other)
                    }
                };
                match outcome {
                    Visit::Incomplete => break 'read false,
                    Visit::Stopped => break 'read true,
                    Visit::Next if cut => break 'read false,
                    Visit::Next => {}
                }
            }
            true
        };
        (complete, Noted(found))
    }
}

/// What a read for one cookie name ([`CookieName::visit_noting`]) noted of a second: where
/// its first value stands, if the read knows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Noted(Option<Spot>);

/// Where a noted value stands: which `Cookie` header, that header as it was read, and
/// the value's bytes within it. Its `Debug` leaves the address out (a context may be
/// logged; an address would tell where the process's heap lies).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Spot {
    header: u32,
    /// The header's address and length when it was read: a header replaced since (by a
    /// middleware that rewrites `Cookie`) is never misread.
    address: usize,
    len: u32,
    start: u32,
    end: u32,
    /// The bytes of all the headers up to the value's end: a reader with a lower byte
    /// bound would not see the whole value.
    read_to: u32,
}

impl std::fmt::Debug for Spot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spot")
            .field("header", &self.header)
            .field("bytes", &(self.start..self.end))
            .finish_non_exhaustive()
    }
}

impl Spot {
    /// `None` for offsets past `u32` (headers that long are never read in full).
    fn of(index: usize, header: &[u8], before: usize, value: &[u8]) -> Option<Self> {
        let start = value.as_ptr() as usize - header.as_ptr() as usize;
        let end = start + value.len();
        Some(Self {
            header: u32::try_from(index).ok()?,
            address: header.as_ptr() as usize,
            len: u32::try_from(header.len()).ok()?,
            start: u32::try_from(start).ok()?,
            end: u32::try_from(end).ok()?,
            read_to: u32::try_from(before + end).ok()?,
        })
    }
}

impl Noted {
    /// The first value of the cookie `name` in the `headers` (the request's `Cookie`
    /// headers, which the note was taken from; looked up only if something was noted),
    /// as a read of `name` within `limits` would find it; `None` when the note cannot
    /// say, and the headers must be read.
    ///
    /// The value stands in a pair named exactly `name` or it is not taken: a note taken
    /// for another name (cookie names hold no `=`, `;`, space or tab) answers `None`.
    #[inline]
    pub(crate) fn first<'h, I>(
        &self,
        headers: impl FnOnce() -> I,
        name: &[u8],
        limits: HeaderLimits,
    ) -> Option<&'h [u8]>
    where
        I: IntoIterator<Item = &'h [u8]>,
    {
        let spot = self.0?;
        if limits.max_values == 0 || spot.read_to as usize > limits.max_bytes {
            return None;
        }
        let header = headers().into_iter().nth(spot.header as usize)?;
        if header.as_ptr() as usize != spot.address || header.len() != spot.len as usize {
            return None;
        }
        let value = header.get(spot.start as usize..spot.end as usize)?;
        let pair = trim_end(header.get(..spot.start as usize)?).strip_suffix(b"=")?;
        let before = trim_end(trim_end(pair).strip_suffix(name)?);
        matches!(before.last(), None | Some(b';')).then_some(value)
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

/// Every value of `name` in `header`, pair by pair; values of `other` go to `on_other`.
#[inline(always)]
fn split<'h>(
    mut rest: &'h [u8],
    name: &[u8],
    other: Option<&[u8]>,
    on_value: &mut impl FnMut(&'h [u8]) -> Visit,
    on_other: &mut impl FnMut(&'h [u8]),
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
        } else if let Some(value) = other.and_then(|other| value_of(pair, other)) {
            on_other(value);
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

    #[test]
    fn a_short_read_notes_the_first_value_of_another_name() {
        let name = CookieName::new(b"id");
        let note = |headers: &[&'static [u8]]| {
            let (complete, noted) = name.visit_noting(
                headers.iter().copied(),
                HeaderLimits::default(),
                Some(b"sid"),
                |_| true,
            );
            assert!(complete);
            noted
        };
        let first = |headers: &[&'static [u8]]| {
            note(headers).first(|| headers.iter().copied(), b"sid", HeaderLimits::default())
        };
        assert_eq!(first(&[b"id=1; sid = s1 ; sid=s2"]), Some(&b"s1"[..]));
        assert_eq!(first(&[b"id=1", b"x=2;sid=s1"]), Some(&b"s1"[..]));
        assert_eq!(first(&[b"id=1; sidx=1; xsid=2", b"%73id=3"]), None);
        // A long header is searched for `id`: nothing is known of what follows it.
        let long: &'static [u8] = "x=1;".repeat(60).leak().as_bytes();
        assert_eq!(first(&[long, b"sid=s1"]), None);

        let header: &'static [u8] = b"id=1; sid=s1";
        let noted = note(&[header]);
        // A reader that reads less than the noted value's end, or no value at all.
        let short = HeaderLimits {
            max_bytes: 11,
            max_values: 16,
        };
        assert_eq!(noted.first(|| [header], b"sid", short), None);
        let none = HeaderLimits {
            max_bytes: 64,
            max_values: 0,
        };
        assert_eq!(noted.first(|| [header], b"sid", none), None);
        // A note is for its own name only, and for the header it was taken from.
        for other in [&b"id"[..], b"d", b"xsid", b"s"] {
            assert_eq!(
                noted.first(|| [header], other, HeaderLimits::default()),
                None
            );
        }
        // Its `Debug` shows where the value stands, not where the header lies in memory.
        let shown = format!("{noted:?}");
        let address = header.as_ptr() as usize;
        assert!(shown.contains("bytes: 10..12"), "{shown}");
        assert!(
            !shown.contains(&address.to_string()) && !shown.contains(&format!("{address:x}")),
            "{shown}"
        );
        let elsewhere = header.to_vec();
        assert_eq!(
            noted.first(|| [&elsewhere[..]], b"sid", HeaderLimits::default()),
            None
        );
    }

    /// Pairs, odd ones among them, for headers where the names looked for often stand.
    const PAIRS: [&str; 12] = [
        "id=1", " x = 2", "x=3", "\tx=", "i d=4", "xi=5", "", "id", "=x", " \t", "d=6", "i=d=7",
    ];

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

        /// What a read notes of a second name is what a read of that name, within its own
        /// limits, finds first: or it says it does not know.
        #[test]
        fn a_note_agrees_with_reading_the_other_name(
            headers in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(&PAIRS[..]), 0..8),
                0..4,
            ),
            max_bytes in 0usize..80,
            max_values in 0usize..4,
            other_bytes in 0usize..80,
            other_values in 0usize..4,
            search_from in proptest::sample::select(vec![0usize, 12, SEARCH_FROM]),
        ) {
            let limits = HeaderLimits { max_bytes, max_values };
            let theirs = HeaderLimits { max_bytes: other_bytes, max_values: other_values };
            let headers: Vec<Vec<u8>> = headers.iter().map(|pairs| pairs.join(";").into_bytes()).collect();
            let headers: Vec<&[u8]> = headers.iter().map(Vec::as_slice).collect();
            for (name, other) in [(&b"id"[..], &b"x"[..]), (b"x", b"id"), (b"i", b"d"), (b"xi", b"x")] {
                let reader = CookieName { search_from, ..CookieName::new(name) };
                let (complete, noted) =
                    reader.visit_noting(headers.iter().copied(), limits, Some(other), |_| true);
                proptest::prop_assert_eq!(complete, reference(&headers, name, limits).complete);
                for asked in [other, name, b"i", b"d"] {
                    let expected = reference(&headers, asked, theirs);
                    if let Some(v) = noted.first(|| headers.iter().copied(), asked, theirs) {
                        proptest::prop_assert_eq!(expected.values.first(), Some(&v));
                    }
                }
            }
        }
    }
}
