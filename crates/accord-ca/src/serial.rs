//! Serial numbers and revocation reasons.

use std::fmt;

/// A certificate serial number: a positive integer of at most 20 bytes
/// (RFC 5280 §4.1.2.2), held as its big-endian magnitude without leading
/// zeros and written as lower-case hex.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Vec<u8>);

impl Serial {
    /// A serial from 16 random bytes the caller draws: the top bit is
    /// cleared (positive) and the next one set (always 16 bytes, never zero),
    /// leaving 126 random bits, well above the 64 that CA/B Forum rules ask.
    pub fn from_random(mut bytes: [u8; 16]) -> Self {
        bytes[0] = (bytes[0] & 0x7f) | 0x40;
        Serial(bytes.to_vec())
    }

    /// From the content bytes of a DER INTEGER (or any big-endian
    /// magnitude); `None` when negative, zero or longer than 20 bytes.
    pub fn from_der_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.first().is_some_and(|b| b & 0x80 != 0) {
            return None;
        }
        let start = bytes.iter().position(|&b| b != 0)?;
        let mag = &bytes[start..];
        // 20 bytes of content, one of which may be a leading zero.
        (mag.len() <= 20 && (mag.len() < 20 || mag[0] & 0x80 == 0)).then(|| Serial(mag.to_vec()))
    }

    /// Parses hex (either case, optional `0x`, optional `:` separators as
    /// OpenSSL prints them).
    pub fn from_hex(s: &str) -> Option<Self> {
        let s = s.strip_prefix("0x").unwrap_or(s);
        let digits: String = s.chars().filter(|&c| c != ':').collect();
        if digits.is_empty() || digits.len() > 42 || !digits.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return None;
        }
        let padded = if digits.len() % 2 == 1 {
            format!("0{digits}")
        } else {
            digits
        };
        let bytes: Vec<u8> = (0..padded.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&padded[i..i + 2], 16))
            .collect::<Result<_, _>>()
            .ok()?;
        let start = bytes.iter().position(|&b| b != 0)?;
        let mag = &bytes[start..];
        (mag.len() <= 20 && (mag.len() < 20 || mag[0] & 0x80 == 0)).then(|| Serial(mag.to_vec()))
    }

    /// The big-endian magnitude, no leading zeros.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Lower-case hex of the magnitude.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({})", self.to_hex())
    }
}

/// Why a certificate was revoked (RFC 5280 §5.3.1 CRLReason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// unspecified (0); also what an entry without a reason code means.
    Unspecified,
    /// keyCompromise (1).
    KeyCompromise,
    /// cACompromise (2).
    CaCompromise,
    /// affiliationChanged (3).
    AffiliationChanged,
    /// superseded (4).
    Superseded,
    /// cessationOfOperation (5).
    CessationOfOperation,
    /// certificateHold (6).
    CertificateHold,
    /// removeFromCRL (8).
    RemoveFromCrl,
    /// privilegeWithdrawn (9).
    PrivilegeWithdrawn,
    /// aACompromise (10).
    AaCompromise,
}

impl Reason {
    /// Every reason, in code order.
    pub const ALL: [Reason; 10] = [
        Reason::Unspecified,
        Reason::KeyCompromise,
        Reason::CaCompromise,
        Reason::AffiliationChanged,
        Reason::Superseded,
        Reason::CessationOfOperation,
        Reason::CertificateHold,
        Reason::RemoveFromCrl,
        Reason::PrivilegeWithdrawn,
        Reason::AaCompromise,
    ];

    /// The RFC 5280 name, e.g. `keyCompromise`.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Unspecified => "unspecified",
            Reason::KeyCompromise => "keyCompromise",
            Reason::CaCompromise => "cACompromise",
            Reason::AffiliationChanged => "affiliationChanged",
            Reason::Superseded => "superseded",
            Reason::CessationOfOperation => "cessationOfOperation",
            Reason::CertificateHold => "certificateHold",
            Reason::RemoveFromCrl => "removeFromCRL",
            Reason::PrivilegeWithdrawn => "privilegeWithdrawn",
            Reason::AaCompromise => "aACompromise",
        }
    }

    /// The CRLReason code.
    pub fn code(self) -> u32 {
        match self {
            Reason::Unspecified => 0,
            Reason::KeyCompromise => 1,
            Reason::CaCompromise => 2,
            Reason::AffiliationChanged => 3,
            Reason::Superseded => 4,
            Reason::CessationOfOperation => 5,
            Reason::CertificateHold => 6,
            Reason::RemoveFromCrl => 8,
            Reason::PrivilegeWithdrawn => 9,
            Reason::AaCompromise => 10,
        }
    }

    /// From a name, case-insensitively, ignoring `-` and `_`
    /// (`keyCompromise`, `key-compromise`, `KEY_COMPROMISE`).
    pub fn parse(s: &str) -> Option<Self> {
        let norm = |t: &str| -> String {
            t.chars()
                .filter(|c| !matches!(c, '-' | '_'))
                .flat_map(char::to_lowercase)
                .collect()
        };
        let want = norm(s);
        Reason::ALL.into_iter().find(|r| norm(r.name()) == want)
    }

    pub(crate) fn to_rcgen(self) -> rcgen::RevocationReason {
        use rcgen::RevocationReason as R;
        match self {
            Reason::Unspecified => R::Unspecified,
            Reason::KeyCompromise => R::KeyCompromise,
            Reason::CaCompromise => R::CaCompromise,
            Reason::AffiliationChanged => R::AffiliationChanged,
            Reason::Superseded => R::Superseded,
            Reason::CessationOfOperation => R::CessationOfOperation,
            Reason::CertificateHold => R::CertificateHold,
            Reason::RemoveFromCrl => R::RemoveFromCrl,
            Reason::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
            Reason::AaCompromise => R::AaCompromise,
        }
    }

    pub(crate) fn from_x509(r: x509_cert::ext::pkix::crl::CrlReason) -> Self {
        use x509_cert::ext::pkix::crl::CrlReason as R;
        match r {
            R::Unspecified => Reason::Unspecified,
            R::KeyCompromise => Reason::KeyCompromise,
            R::CaCompromise => Reason::CaCompromise,
            R::AffiliationChanged => Reason::AffiliationChanged,
            R::Superseded => Reason::Superseded,
            R::CessationOfOperation => Reason::CessationOfOperation,
            R::CertificateHold => Reason::CertificateHold,
            R::RemoveFromCRL => Reason::RemoveFromCrl,
            R::PrivilegeWithdrawn => Reason::PrivilegeWithdrawn,
            R::AaCompromise => Reason::AaCompromise,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials() {
        let s = Serial::from_random([0xff; 16]);
        assert_eq!(s.as_bytes().len(), 16);
        assert_eq!(s.as_bytes()[0], 0x7f);
        let z = Serial::from_random([0; 16]);
        assert_eq!(z.as_bytes()[0], 0x40);
        assert_eq!(Serial::from_hex(&s.to_hex()), Some(s.clone()));
        assert_eq!(
            Serial::from_hex(&s.to_hex().to_uppercase()),
            Some(s.clone())
        );
        assert_eq!(Serial::from_hex("00:7F"), Serial::from_hex("7f"));
        assert_eq!(Serial::from_hex("0"), None);
        assert_eq!(Serial::from_hex("xyz"), None);
        assert_eq!(Serial::from_der_bytes(&[0x80]), None);
        assert_eq!(
            Serial::from_der_bytes(&[0x00, 0x80]).unwrap().to_hex(),
            "80"
        );
    }

    #[test]
    fn reasons() {
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.name()), Some(r));
        }
        assert_eq!(Reason::parse("key-compromise"), Some(Reason::KeyCompromise));
        assert_eq!(Reason::parse("nope"), None);
    }
}
