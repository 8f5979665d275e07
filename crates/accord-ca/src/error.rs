//! One error enum per kind of input: CSRs, certificates, CRLs, attestation
//! documents, and what the CA itself refuses to do. A parse error is never
//! reported as a bad signature, and a lower layer's error is kept as the
//! source, not as text.

use accord_core::IdentityError;
use accord_core::signed::SignedError;

use crate::MAX_INPUT_BYTES;
use crate::serial::Reason;

/// Why a PKCS#10 certificate signing request was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CsrError {
    /// Larger than [`MAX_INPUT_BYTES`].
    #[error("CSR is {0} bytes, the limit is {MAX_INPUT_BYTES}")]
    TooLarge(usize),
    /// Not a PEM `CERTIFICATE REQUEST` nor a DER PKCS#10 structure.
    #[error("not a PKCS#10 certificate signing request")]
    Encoding(#[source] der::Error),
    /// Decodes, but not as strict DER that re-encodes to the same bytes.
    #[error("CSR is not canonical DER (re-encoding it changes its bytes)")]
    NotCanonical,
    /// Signed with another algorithm than Ed25519 (or with parameters).
    #[error("CSR signature algorithm {0} is not Ed25519 (1.3.101.112, no parameters)")]
    Algorithm(String),
    /// The subject key is not an Ed25519 key.
    #[error("CSR subject key algorithm {0} is not Ed25519 (1.3.101.112, no parameters)")]
    KeyAlgorithm(String),
    /// The subject key is not a valid, strong Ed25519 public key.
    #[error("CSR subject key refused: {0}")]
    Key(#[source] IdentityError),
    /// The signature does not verify under the CSR's own key: no proof of
    /// possession (signed by another key, or altered).
    #[error(
        "CSR signature does not verify under its own subject key: no proof of possession (signed by another key, or altered)"
    )]
    BadSignature,
}

/// Why the CA refused to create, load, issue or sign.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// Not a valid SPIFFE trust domain name.
    #[error(
        "trust domain {0:?} is not a SPIFFE trust domain (1-255 characters of a-z, 0-9, '.', '-', '_')"
    )]
    TrustDomain(String),
    /// A lifetime of zero or beyond the limit.
    #[error("lifetime of {got_s} s is not between 1 s and {max_s} s")]
    Lifetime {
        /// Asked for, in seconds.
        got_s: u64,
        /// The limit, in seconds.
        max_s: u64,
    },
    /// A time X.509 cannot carry (before 1970 or after 9999).
    #[error("time {0} cannot be written in a certificate")]
    Time(String),
    /// The certificate would outlive its CA.
    #[error("the certificate would expire at {not_after}, after its CA ({ca_not_after})")]
    OutlivesCa {
        /// The certificate's end.
        not_after: String,
        /// The CA certificate's end.
        ca_not_after: String,
    },
    /// The CA certificate is not valid at the time of issuance.
    #[error("the CA certificate is not valid now: {0}")]
    CaNotValid(#[source] Box<CertError>),
    /// The CSR was refused.
    #[error(transparent)]
    Csr(#[from] CsrError),
    /// The CSR's key does not derive the agent_id it is enrolled as.
    #[error(
        "the CSR's key derives agent_id {derived}, not {claimed}: a request for another agent's identity"
    )]
    AgentIdMismatch {
        /// The agent_id asked for.
        claimed: String,
        /// What the CSR's key derives.
        derived: String,
    },
    /// The controller's key is not the key of the CA certificate.
    #[error("the controller key {key_agent_id} is not the key of this CA certificate")]
    KeyMismatch {
        /// The key's agent_id.
        key_agent_id: String,
    },
    /// The CA certificate was refused.
    #[error("CA certificate refused: {0}")]
    CaCertificate(#[source] Box<CertError>),
    /// A CRL whose nextUpdate is not after its thisUpdate.
    #[error("CRL nextUpdate {next_update} is not after thisUpdate {this_update}")]
    CrlWindow {
        /// thisUpdate.
        this_update: String,
        /// nextUpdate.
        next_update: String,
    },
    /// More CRL entries than [`crate::MAX_CRL_ENTRIES`], or one serial twice.
    #[error("CRL entries refused: {0}")]
    CrlEntries(String),
    /// The certificate writer failed.
    #[error("certificate writer failed")]
    Build(#[from] rcgen::Error),
    /// What was just written does not pass this crate's own verifier (a bug;
    /// nothing is handed out).
    #[error("the certificate just issued fails verification: {0}")]
    SelfCheck(#[source] Box<CertError>),
}

/// Why a certificate was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// Larger than [`MAX_INPUT_BYTES`].
    #[error("certificate is {0} bytes, the limit is {MAX_INPUT_BYTES}")]
    TooLarge(usize),
    /// Not a PEM `CERTIFICATE` nor a DER X.509 certificate.
    #[error("not an X.509 certificate")]
    Encoding(#[source] der::Error),
    /// Not exactly one certificate in the PEM file.
    #[error("expected one certificate, found {0}")]
    Count(usize),
    /// Decodes, but not as strict DER that re-encodes to the same bytes.
    #[error("certificate is not canonical DER (re-encoding it changes its bytes)")]
    NotCanonical,
    /// Not X.509 version 3.
    #[error("certificate is not X.509 version 3")]
    Version,
    /// Signed with another algorithm than Ed25519, or the two signature
    /// algorithm fields differ.
    #[error("certificate signature algorithm {0} is not Ed25519 (1.3.101.112, no parameters)")]
    Algorithm(String),
    /// The subject key is not an Ed25519 key.
    #[error("certificate subject key algorithm {0} is not Ed25519")]
    KeyAlgorithm(String),
    /// The subject key is not a valid, strong Ed25519 public key.
    #[error("certificate subject key refused: {0}")]
    Key(#[source] IdentityError),
    /// Not a positive serial number.
    #[error("serial number is not a positive integer")]
    Serial,
    /// Issued by another CA (another name).
    #[error("issued by {issuer}, not by this CA ({ca}): a certificate from another CA")]
    UnknownIssuer {
        /// The certificate's issuer.
        issuer: String,
        /// The CA's subject.
        ca: String,
    },
    /// The signature does not verify under the CA's key (another CA of the
    /// same name, or an altered certificate).
    #[error(
        "the signature on {subject} does not verify under the CA's key: another CA, or an altered certificate"
    )]
    BadSignature {
        /// The certificate's subject.
        subject: String,
    },
    /// Not yet valid at the time of the check.
    #[error("{subject} is not valid before {not_before} (checked at {now})")]
    NotYetValid {
        /// The certificate's subject.
        subject: String,
        /// Its notBefore.
        not_before: String,
        /// The time of the check.
        now: String,
    },
    /// Expired at the time of the check.
    #[error("{subject} expired at {not_after} (checked at {now})")]
    Expired {
        /// The certificate's subject.
        subject: String,
        /// Its notAfter.
        not_after: String,
        /// The time of the check.
        now: String,
    },
    /// An extension appears twice, is unreadable, or is critical and unknown.
    #[error("extension {oid}: {problem}")]
    Extension {
        /// The extension's OID.
        oid: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// basicConstraints missing or with the wrong CA flag for its role.
    #[error("basicConstraints: {0}")]
    BasicConstraints(&'static str),
    /// keyUsage missing or wrong for its role.
    #[error("keyUsage: {0}")]
    KeyUsage(&'static str),
    /// extendedKeyUsage missing serverAuth or clientAuth.
    #[error("extendedKeyUsage: {0}")]
    ExtendedKeyUsage(&'static str),
    /// The subjectAltName is not exactly one well-formed SPIFFE ID URI.
    #[error("SPIFFE ID: {0}")]
    SpiffeId(String),
    /// The SPIFFE ID is in another trust domain than the CA's.
    #[error("SPIFFE ID is in trust domain {found}, the CA's is {expected}")]
    TrustDomainMismatch {
        /// In the certificate.
        found: String,
        /// The CA's.
        expected: String,
    },
    /// The SPIFFE ID names another agent than the one the key derives.
    #[error(
        "SPIFFE ID names agent {named}, but the certificate's key derives {derived}: a certificate naming another agent"
    )]
    AgentKeyMismatch {
        /// The agent in the SPIFFE ID.
        named: String,
        /// The agent the key derives.
        derived: String,
    },
    /// Listed in the CRL.
    #[error("certificate serial {serial} was revoked at {at} ({reason})")]
    Revoked {
        /// The serial, hex.
        serial: String,
        /// When (the CRL entry's revocationDate).
        at: String,
        /// Why.
        reason: Reason,
    },
    /// The CRL given is not this CA's.
    #[error("the CRL was not issued by this CA")]
    CrlFromAnotherCa,
}

/// Why a certificate revocation list was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CrlError {
    /// Larger than [`MAX_INPUT_BYTES`].
    #[error("CRL is {0} bytes, the limit is {MAX_INPUT_BYTES}")]
    TooLarge(usize),
    /// Not a PEM `X509 CRL` nor a DER CRL.
    #[error("not an X.509 CRL")]
    Encoding(#[source] der::Error),
    /// Decodes, but not as strict DER that re-encodes to the same bytes.
    #[error("CRL is not canonical DER (re-encoding it changes its bytes)")]
    NotCanonical,
    /// Not version 2.
    #[error("CRL is not version 2")]
    Version,
    /// Signed with another algorithm than Ed25519.
    #[error("CRL signature algorithm {0} is not Ed25519 (1.3.101.112, no parameters)")]
    Algorithm(String),
    /// Issued by another CA.
    #[error("CRL issued by {issuer}, not by this CA ({ca})")]
    UnknownIssuer {
        /// The CRL's issuer.
        issuer: String,
        /// The CA's subject.
        ca: String,
    },
    /// The signature does not verify under the CA's key: altered or forged.
    #[error("the CRL's signature does not verify under the CA's key: altered or forged")]
    BadSignature,
    /// thisUpdate is in the future.
    #[error("CRL thisUpdate {this_update} is in the future (checked at {now})")]
    NotYetValid {
        /// thisUpdate.
        this_update: String,
        /// The time of the check.
        now: String,
    },
    /// No nextUpdate (this profile requires one).
    #[error("CRL has no nextUpdate")]
    NoNextUpdate,
    /// Past its nextUpdate: a newer CRL should exist, so this one may miss
    /// revocations.
    #[error(
        "CRL is stale: nextUpdate {next_update} has passed (checked at {now}); fetch a fresh CRL"
    )]
    Stale {
        /// nextUpdate.
        next_update: String,
        /// The time of the check.
        now: String,
    },
    /// More than [`crate::MAX_CRL_ENTRIES`] entries.
    #[error("CRL has more than {0} entries")]
    TooManyEntries(usize),
    /// An extension (of the CRL or an entry) appears twice, is unreadable,
    /// or is critical and unknown.
    #[error("CRL extension {oid}: {problem}")]
    Extension {
        /// The extension's OID.
        oid: String,
        /// What is wrong.
        problem: &'static str,
    },
}

/// Why an attestation document was refused (fail-closed: any doubt refuses).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttestationError {
    /// Not a well-formed `accord-attestation/1` document.
    #[error("malformed attestation: {0}")]
    Malformed(#[from] SignedError),
    /// A member this format does not define.
    #[error("attestation carries unknown member {0:?}")]
    UnknownMember(String),
    /// agent_id does not derive from agent_key.
    #[error("attestation agent_id {agent_id} does not derive from its agent_key")]
    AgentKey {
        /// The agent_id claimed.
        agent_id: String,
    },
    /// Signed (or claimed to be) by another controller than the trusted one.
    #[error("attestation names controller {found}, the trusted controller is {expected}")]
    WrongController {
        /// The controller the document names.
        found: String,
        /// The trusted controller's agent_id.
        expected: String,
    },
    /// The signature does not verify under the trusted controller's key.
    #[error("the controller's signature does not verify: the attestation was altered or forged")]
    BadSignature,
    /// About another agent than the one presenting it.
    #[error("attestation is for agent {found}, not for {expected}")]
    WrongAgent {
        /// The agent expected.
        expected: String,
        /// The agent the attestation is for.
        found: String,
    },
    /// In another trust domain than expected.
    #[error("attestation is for trust domain {found}, not {expected}")]
    WrongTrustDomain {
        /// Expected.
        expected: String,
        /// Found.
        found: String,
    },
    /// issued_at is not before expires_at.
    #[error("attestation issued_at {issued_at} is not before expires_at {expires_at}")]
    Window {
        /// issued_at.
        issued_at: String,
        /// expires_at.
        expires_at: String,
    },
    /// issued_at is further in the future than the tolerated skew.
    #[error("attestation issued_at {issued_at} is in the future (checked at {now})")]
    NotYetValid {
        /// issued_at.
        issued_at: String,
        /// The time of the check.
        now: String,
    },
    /// Past expires_at.
    #[error("attestation expired at {expires_at} (checked at {now})")]
    Expired {
        /// expires_at.
        expires_at: String,
        /// The time of the check.
        now: String,
    },
    /// The codebase or config hash is not the one required.
    #[error("attestation {member} is {found}, required {expected}")]
    HashMismatch {
        /// `codebase_hash` or `config_hash`.
        member: &'static str,
        /// Required.
        expected: String,
        /// In the attestation.
        found: String,
    },
}
