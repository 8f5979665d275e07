//! Time-stamp requests (TimeStampReq) and replies (TimeStampResp).

use der::asn1::{BitString, OctetString, Uint};
use der::{Decode, Encode};
use spki::AlgorithmIdentifierOwned;

use cms::content_info::ContentInfo;

use crate::asn1::{MessageImprint, TimeStampReq, TimeStampResp, oid_name};
use crate::{HashAlg, Imprint, MAX_TOKEN_BYTES, Nonce, TspError, malformed};

/// The DER TimeStampReq for `imprint`: version 1, the caller's nonce,
/// certReq TRUE (so the token carries the TSA certificate), no policy.
pub fn request(imprint: &Imprint, nonce: &Nonce) -> Result<Vec<u8>, TspError> {
    let bad = |e: der::Error| TspError::Nonce(e.to_string());
    let req = TimeStampReq {
        version: 1,
        message_imprint: MessageImprint {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: imprint.alg.oid(),
                parameters: None,
            },
            hashed_message: OctetString::new(imprint.digest.clone()).map_err(bad)?,
        },
        req_policy: None,
        nonce: Some(Uint::new(nonce.as_bytes()).map_err(bad)?),
        cert_req: true,
    };
    req.to_der().map_err(bad)
}

/// The (imprint, nonce) of a DER TimeStampReq: what a reply must answer.
pub fn parse_request(der: &[u8]) -> Result<(Imprint, Option<Nonce>), TspError> {
    check_size("time-stamp request", der)?;
    let req = TimeStampReq::from_der(der).map_err(malformed("TimeStampReq"))?;
    let alg = HashAlg::from_oid(&req.message_imprint.hash_algorithm.oid).ok_or_else(|| {
        TspError::Unsupported(format!(
            "message imprint algorithm {}",
            oid_name(&req.message_imprint.hash_algorithm.oid)
        ))
    })?;
    let digest = req.message_imprint.hashed_message.as_bytes().to_vec();
    if digest.len() != alg.output_len() {
        return Err(TspError::Malformed {
            what: "TimeStampReq",
            reason: format!("{alg} imprint of {} bytes", digest.len()),
        });
    }
    Ok((
        Imprint { alg, digest },
        req.nonce.map(|n| Nonce::from_be(n.as_bytes())),
    ))
}

pub(crate) fn check_size(what: &'static str, der: &[u8]) -> Result<(), TspError> {
    if der.len() > MAX_TOKEN_BYTES {
        return Err(TspError::TooLarge {
            what,
            len: der.len(),
        });
    }
    Ok(())
}

/// Reads a DER TimeStampResp: the status must be granted (0) or
/// grantedWithMods (1); returns the token's exact DER bytes.
pub fn parse_response(der: &[u8]) -> Result<Vec<u8>, TspError> {
    check_size("time-stamp reply", der)?;
    let resp = TimeStampResp::from_der(der).map_err(malformed("TimeStampResp"))?;
    let status = resp.status.status.as_bytes();
    let code = match status {
        [] => Some(0),
        [b] => Some(*b),
        _ => None,
    };
    if !matches!(code, Some(0 | 1)) {
        let name = match code {
            Some(2) => "rejection".to_owned(),
            Some(3) => "waiting".to_owned(),
            Some(4) => "revocationWarning".to_owned(),
            Some(5) => "revocationNotification".to_owned(),
            _ => format!("unknown status {}", hex::encode(status)),
        };
        let mut detail = String::new();
        if let Some(bits) = &resp.status.fail_info {
            let names = fail_info_names(bits);
            if !names.is_empty() {
                detail.push_str(&format!(", failInfo {}", names.join(" ")));
            }
        }
        if let Some(text) = &resp.status.status_string {
            let t: Vec<&str> = text.iter().map(|s| s.as_str()).collect();
            detail.push_str(&format!(": \"{}\"", t.join("; ")));
        }
        return Err(TspError::Status {
            status: name,
            detail,
        });
    }
    let token = resp.time_stamp_token.ok_or(TspError::NoToken)?;
    token.to_der().map_err(malformed("TimeStampToken"))
}

pub(crate) fn fail_info_names(bits: &BitString) -> Vec<String> {
    const NAMES: [(usize, &str); 8] = [
        (0, "badAlg"),
        (2, "badRequest"),
        (5, "badDataFormat"),
        (14, "timeNotAvailable"),
        (15, "unacceptedPolicy"),
        (16, "unacceptedExtension"),
        (17, "addInfoNotAvailable"),
        (25, "systemFailure"),
    ];
    let set: Vec<usize> = bits
        .bits()
        .enumerate()
        .filter(|(_, b)| *b)
        .map(|(i, _)| i)
        .collect();
    set.iter()
        .map(|i| {
            NAMES
                .iter()
                .find(|(n, _)| n == i)
                .map_or_else(|| format!("bit{i}"), |(_, s)| (*s).to_owned())
        })
        .collect()
}

/// A bare token (`.tst`, a CMS ContentInfo) or a whole reply (`.tsr`): the
/// token's DER either way (a reply must be granted).
pub fn token_from_token_or_reply(der: &[u8]) -> Result<Vec<u8>, TspError> {
    check_size("time-stamp token", der)?;
    // A ContentInfo starts with an OID, a TimeStampResp with a SEQUENCE.
    if ContentInfo::from_der(der).is_ok() {
        return Ok(der.to_vec());
    }
    parse_response(der).map_err(|e| match e {
        TspError::Malformed { .. } => TspError::Malformed {
            what: "time-stamp token or reply",
            reason: "neither a CMS ContentInfo (.tst) nor a TimeStampResp (.tsr)".into(),
        },
        other => other,
    })
}
