//! RFC 3161 parsing and verification over arbitrary bytes, as a token, as a
//! reply, as a request and as trust anchors: never panics.
#![no_main]
use accord_tsp::archive;
use accord_tsp::{self as tsp, Imprint, Nonce, Trust};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let imprint = Imprint::sha256([0; 32]);
    let nonce = Nonce::from_hex("0102030405060708").ok();
    let _ = tsp::verify_token(data, &imprint, nonce.as_ref(), None);
    let _ = tsp::parse_response(data);
    let _ = tsp::token_from_token_or_reply(data);
    let _ = tsp::parse_request(data);
    let _ = archive::timestamp_imprint(data);
    // First two bytes: length of a trust anchor that follows; the rest is
    // the token, so chain building sees hostile certificates too.
    if let [a, b, rest @ ..] = data {
        let n = usize::from(u16::from_be_bytes([*a, *b])).min(rest.len());
        let (anchor, token) = rest.split_at(n);
        if let Ok(trust) = Trust::from_pem_or_der(anchor) {
            let _ = tsp::verify_token(token, &imprint, None, Some(&trust));
        }
        if let Some(n) = &nonce {
            let _ = tsp::verify_response(token, &imprint, n, None);
        }
    }
});
