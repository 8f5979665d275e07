//! The RFC 3161, RFC 2634 and RFC 5035 structures (declared with `der`'s
//! derive), and the raw DER reads `der` cannot do for them: elements as
//! received, OIDs beyond `const-oid`, GeneralizedTime with a fraction.

use std::time::Duration;

use const_oid::ObjectIdentifier;
use der::asn1::{BitString, OctetString, Uint, Utf8StringRef};
use der::{Any, Sequence, Tag, Tagged};
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::pkix::name::{GeneralName, GeneralNames};
use x509_cert::serial_number::SerialNumber;

use crate::TspError;
use crate::token::GenTime;

/// RFC 3161 MessageImprint.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct MessageImprint {
    pub(crate) hash_algorithm: AlgorithmIdentifierOwned,
    pub(crate) hashed_message: OctetString,
}

/// RFC 3161 TimeStampReq.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct TimeStampReq {
    pub(crate) version: u8,
    pub(crate) message_imprint: MessageImprint,
    #[asn1(optional = "true")]
    pub(crate) req_policy: Option<ObjectIdentifier>,
    #[asn1(optional = "true")]
    pub(crate) nonce: Option<Uint>,
    #[asn1(default = "Default::default")]
    pub(crate) cert_req: bool,
}

/// RFC 4210 PKIStatusInfo.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct PkiStatusInfo<'a> {
    pub(crate) status: Uint,
    #[asn1(optional = "true")]
    pub(crate) status_string: Option<Vec<Utf8StringRef<'a>>>,
    #[asn1(optional = "true")]
    pub(crate) fail_info: Option<BitString>,
}

/// RFC 3161 TimeStampResp; the token is kept as its exact DER.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct TimeStampResp<'a> {
    pub(crate) status: PkiStatusInfo<'a>,
    #[asn1(optional = "true")]
    pub(crate) time_stamp_token: Option<Any>,
}

/// RFC 3161 Accuracy.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct Accuracy {
    #[asn1(optional = "true")]
    pub(crate) seconds: Option<u64>,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub(crate) millis: Option<u16>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub(crate) micros: Option<u16>,
}

/// RFC 3161 TSTInfo. `gen_time` is read raw: RFC 3161 allows fractional
/// seconds, which the DER GeneralizedTime type of `der` refuses. `policy`
/// too: `const-oid` refuses OIDs under 2.x with a second arc above 39
/// (such as the 2.999 example arc), which TSAs may use.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct TstInfo {
    pub(crate) version: u8,
    pub(crate) policy: Any,
    pub(crate) message_imprint: MessageImprint,
    pub(crate) serial_number: Uint,
    pub(crate) gen_time: Any,
    #[asn1(optional = "true")]
    pub(crate) accuracy: Option<Accuracy>,
    #[asn1(default = "Default::default")]
    pub(crate) ordering: bool,
    #[asn1(optional = "true")]
    pub(crate) nonce: Option<Uint>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub(crate) tsa: Option<GeneralName>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub(crate) extensions: Option<x509_cert::ext::Extensions>,
}

/// RFC 5035 IssuerSerial.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct IssuerSerial {
    pub(crate) issuer: GeneralNames,
    pub(crate) serial_number: SerialNumber,
}

/// RFC 2634 ESSCertID.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct EssCertId {
    pub(crate) cert_hash: OctetString,
    #[asn1(optional = "true")]
    pub(crate) issuer_serial: Option<IssuerSerial>,
}

/// RFC 2634 SigningCertificate.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct SigningCertificate {
    pub(crate) certs: Vec<EssCertId>,
    #[asn1(optional = "true")]
    pub(crate) policies: Option<Vec<Any>>,
}

/// RFC 5035 ESSCertIDv2 (hash algorithm SHA-256 when absent).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct EssCertIdV2 {
    #[asn1(optional = "true")]
    pub(crate) hash_algorithm: Option<AlgorithmIdentifierOwned>,
    pub(crate) cert_hash: OctetString,
    #[asn1(optional = "true")]
    pub(crate) issuer_serial: Option<IssuerSerial>,
}

/// RFC 5035 SigningCertificateV2.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct SigningCertificateV2 {
    pub(crate) certs: Vec<EssCertIdV2>,
    #[asn1(optional = "true")]
    pub(crate) policies: Option<Vec<Any>>,
}

/// One DER element, as received.
#[derive(Clone, Copy)]
pub(crate) struct DerElem<'a> {
    pub(crate) tag: u8,
    /// Tag, length and value.
    pub(crate) whole: &'a [u8],
    pub(crate) value: &'a [u8],
}

/// The DER element at the start of `input`, and what follows it. Single-
/// byte tags and definite lengths only, which is all a token that `der`
/// has already decoded can contain.
pub(crate) fn der_split(input: &[u8]) -> Option<(DerElem<'_>, &[u8])> {
    let (&tag, after_tag) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, mut rest) = after_tag.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |l, b| (l << 8) | usize::from(*b));
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    let header = input.len() - rest.len();
    let elem = DerElem {
        tag,
        whole: &input[..header + len],
        value: &rest[..len],
    };
    Some((elem, &rest[len..]))
}

/// The elements of a constructed value, in the order received.
pub(crate) fn der_children(mut value: &[u8]) -> Option<Vec<DerElem<'_>>> {
    let mut out = Vec::new();
    while !value.is_empty() {
        let (elem, rest) = der_split(value)?;
        out.push(elem);
        value = rest;
    }
    Some(out)
}

pub(crate) fn oid_name(oid: &ObjectIdentifier) -> String {
    const_oid::db::DB
        .by_oid(oid)
        .map_or_else(|| oid.to_string(), |n| format!("{n} ({oid})"))
}

/// The dotted form of an OBJECT IDENTIFIER read raw (see [`TstInfo`]).
pub(crate) fn oid_text(any: &Any) -> Result<String, TspError> {
    let bad = |r: &str| TspError::Malformed {
        what: "TSTInfo policy",
        reason: r.to_owned(),
    };
    if any.tag() != Tag::ObjectIdentifier {
        return Err(bad("not an OBJECT IDENTIFIER"));
    }
    let bytes = any.value();
    if bytes.is_empty() || bytes.len() > 64 || bytes.last().is_some_and(|b| b & 0x80 != 0) {
        return Err(bad("truncated or too long"));
    }
    let mut arcs: Vec<u64> = Vec::new();
    let mut cur: u64 = 0;
    let mut fresh = true;
    for &b in bytes {
        if fresh && b == 0x80 {
            return Err(bad("non-minimal arc encoding"));
        }
        cur = cur
            .checked_mul(128)
            .map(|c| c | u64::from(b & 0x7f))
            .ok_or_else(|| bad("arc too large"))?;
        fresh = b & 0x80 == 0;
        if fresh {
            arcs.push(cur);
            cur = 0;
        }
    }
    let first = arcs[0];
    let (a, b) = match first {
        0..40 => (0, first),
        40..80 => (1, first - 40),
        _ => (2, first - 80),
    };
    let mut out = format!("{a}.{b}");
    for arc in &arcs[1..] {
        out.push_str(&format!(".{arc}"));
    }
    Ok(out)
}

/// Parses a GeneralizedTime as RFC 3161 §2.4.2 writes genTime:
/// `YYYYMMDDhhmmss[.s+]Z`, UTC, no trailing zeros in the fraction.
pub(crate) fn parse_gen_time(any: &Any) -> Result<GenTime, TspError> {
    let bad = |r: &str| TspError::Malformed {
        what: "TSTInfo genTime",
        reason: r.to_owned(),
    };
    if any.tag() != Tag::GeneralizedTime {
        return Err(bad("not a GeneralizedTime"));
    }
    let s = std::str::from_utf8(any.value()).map_err(|_| bad("not ASCII"))?;
    let body = s
        .strip_suffix('Z')
        .ok_or_else(|| bad("not UTC (no trailing Z)"))?;
    let (whole, frac) = match body.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (body, None),
    };
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("expected YYYYMMDDhhmmss"));
    }
    let num = |r: std::ops::Range<usize>| whole[r].parse::<u16>().map_err(|_| bad("bad digits"));
    let date = time::Date::from_calendar_date(
        i32::from(num(0..4)?),
        time::Month::try_from(num(4..6)? as u8).map_err(|_| bad("bad month"))?,
        num(6..8)? as u8,
    )
    .map_err(|_| bad("no such date"))?;
    let t = time::Time::from_hms(num(8..10)? as u8, num(10..12)? as u8, num(12..14)? as u8)
        .map_err(|_| bad("no such time of day"))?;
    let secs = date.with_time(t).assume_utc().unix_timestamp();
    let secs = u64::try_from(secs).map_err(|_| bad("before 1970"))?;
    let mut nanos = 0u32;
    if let Some(f) = frac {
        if f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) || f.ends_with('0')
        {
            return Err(bad("bad fraction of a second"));
        }
        nanos = format!("{f:0<9}")
            .parse()
            .map_err(|_| bad("bad fraction"))?;
    }
    let mut rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}",
        &whole[0..4],
        &whole[4..6],
        &whole[6..8],
        &whole[8..10],
        &whole[10..12],
        &whole[12..14]
    );
    if let Some(f) = frac {
        rfc3339.push('.');
        rfc3339.push_str(f);
    }
    rfc3339.push('Z');
    Ok(GenTime {
        since_epoch: Duration::new(secs, nanos),
        rfc3339,
    })
}
