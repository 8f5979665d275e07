//! The key file (`accord-key/1`): an agent's secret key encrypted at rest.
//!
//! ```json
//! {"agent_id":"…","created_at":"…","format":"accord-key/1","name":"planner",
//!  "protection":{"cipher":"aes-256-gcm","kdf":"argon2id","m_cost_kib":65536,
//!                "nonce":"…","p_cost":1,"salt":"…","t_cost":3,"version":19},
//!  "public_key":"…","secret":"…"}
//! ```
//!
//! The secret is the 32-byte Ed25519 seed sealed with AES-256-GCM under a key
//! derived by Argon2id from the passphrase. The KDF parameters live in the file
//! (so they can be raised later without breaking old files) and the AEAD's
//! associated data is the canonical form of every member except `secret`, so
//! editing the name, id, key or parameters makes decryption fail. With
//! `"protection":{"kdf":"none"}` the secret is the plain seed (throwaway
//! agents, `--no-passphrase`).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use argon2::{Algorithm, Argon2, Params, Version};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use crate::identity::{AgentId, Keypair, PublicKey, decode_b64_exact, encode_b64};
use crate::jcs;
use crate::timestamp::Timestamp;

/// The `format` member of a key file.
pub const KEY_FORMAT: &str = "accord-key/1";
/// Largest key file read.
pub const MAX_KEY_FILE_BYTES: usize = 64 * 1024;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// What new key files use: 64 MiB, 3 passes, 1 lane (RFC 9106 §4's
    /// second recommended option).
    pub const DEFAULT: KdfParams = KdfParams {
        m_cost_kib: 64 * 1024,
        t_cost: 3,
        p_cost: 1,
    };
    // Bounds on what a key file may ask for: a hostile file can cost at most
    // 1 GiB and 16 passes (seconds, not hours) per open attempt, and no file
    // is written with parameters weaker than 8 MiB / 1 pass.
    /// Greatest memory cost, in KiB, a key file may carry.
    pub const MAX_M_COST_KIB: u32 = 1024 * 1024;
    /// Greatest pass count.
    pub const MAX_T_COST: u32 = 16;
    /// Greatest lane count.
    pub const MAX_P_COST: u32 = 16;
    /// Least memory cost, in KiB, read or written.
    pub const MIN_M_COST_KIB: u32 = 8 * 1024;

    /// Whether these parameters are within the bounds every key file must
    /// respect (8 MiB–1 GiB, 1–16 passes, 1–16 lanes).
    pub fn in_bounds(&self) -> bool {
        (Self::MIN_M_COST_KIB..=Self::MAX_M_COST_KIB).contains(&self.m_cost_kib)
            && (1..=Self::MAX_T_COST).contains(&self.t_cost)
            && (1..=Self::MAX_P_COST).contains(&self.p_cost)
    }
}

/// Why a key file could not be written or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file is not a valid `accord-key/1` document.
    #[error("key file is corrupt: {0}")]
    Corrupt(String),
    /// Decryption failed.
    #[error("wrong passphrase (or the key file was modified)")]
    WrongPassphrase,
    /// The file is encrypted but no passphrase was given.
    #[error(
        "the key is encrypted: a passphrase is required (set ACCORD_PASSPHRASE or run on a terminal)"
    )]
    PassphraseRequired,
    /// An empty passphrase was given for an encrypted key.
    #[error("empty passphrase: give a real one, or create a throwaway agent with --no-passphrase")]
    EmptyPassphrase,
    /// The KDF failed (parameters out of range).
    #[error("key derivation failed: {0}")]
    Kdf(#[source] argon2::Error),
    /// Argon2 parameters outside what Accord accepts.
    #[error(
        "key derivation failed: Argon2 parameters outside 8 MiB-1 GiB, 1-16 passes, 1-16 lanes"
    )]
    KdfBounds,
    /// AES-GCM refused to encrypt (never for a 32-byte seed; named rather
    /// than a panic).
    #[error("key derivation failed: encryption failed")]
    Encrypt,
    /// The derived key was refused by the cipher (never with a 32-byte
    /// key; kept so the failure is named rather than a panic).
    #[error("the derived key does not fit AES-256-GCM")]
    CipherKey,
}

/// The public part of a key file, readable without the passphrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFileInfo {
    /// The agent's id.
    pub agent_id: AgentId,
    /// The agent's public key.
    pub public_key: PublicKey,
    /// Optional human name.
    pub name: Option<String>,
    /// When the key was created.
    pub created_at: Timestamp,
    /// Whether a passphrase protects the secret.
    pub encrypted: bool,
}

/// Writes a key file. `passphrase: None` stores the seed unencrypted.
/// `salt` (16 bytes) and `nonce` (12 bytes) must come from a CSPRNG.
pub fn seal(
    key: &Keypair,
    name: Option<&str>,
    created_at: &Timestamp,
    passphrase: Option<&[u8]>,
    params: KdfParams,
    salt: [u8; 16],
    nonce: [u8; 12],
) -> Result<Vec<u8>, KeyFileError> {
    let protection = match passphrase {
        None => json!({ "kdf": "none" }),
        Some([]) => return Err(KeyFileError::EmptyPassphrase),
        Some(_) if !params.in_bounds() => {
            return Err(KeyFileError::KdfBounds);
        }
        Some(_) => json!({
            "cipher": "aes-256-gcm",
            "kdf": "argon2id",
            "version": 19,
            "m_cost_kib": params.m_cost_kib,
            "t_cost": params.t_cost,
            "p_cost": params.p_cost,
            "salt": encode_b64(&salt),
            "nonce": encode_b64(&nonce),
        }),
    };
    let mut doc = Map::new();
    doc.insert("format".into(), KEY_FORMAT.into());
    doc.insert("agent_id".into(), key.agent_id().as_str().into());
    doc.insert("public_key".into(), key.public().to_b64().into());
    doc.insert("name".into(), name.map_or(Value::Null, Into::into));
    doc.insert("created_at".into(), created_at.as_str().into());
    doc.insert("protection".into(), protection);
    let aad = jcs::to_vec(&Value::Object(doc.clone()));
    let secret = match passphrase {
        None => encode_b64(key.seed().as_ref()),
        Some(p) => {
            let aead_key = derive(p, &salt, params)?;
            let cipher = Aes256Gcm::new_from_slice(aead_key.as_ref())
                .map_err(|_| KeyFileError::CipherKey)?;
            let ct = cipher
                .encrypt(
                    &Nonce::from(nonce),
                    Payload {
                        msg: key.seed().as_ref(),
                        aad: &aad,
                    },
                )
                .map_err(|_| KeyFileError::Encrypt)?;
            encode_b64(&ct)
        }
    };
    doc.insert("secret".into(), secret.into());
    let mut out = jcs::to_vec(&Value::Object(doc));
    out.push(b'\n');
    Ok(out)
}

/// Reads the public part of a key file and checks it is well formed.
pub fn inspect(bytes: &[u8]) -> Result<KeyFileInfo, KeyFileError> {
    parse(bytes).map(|p| p.info)
}

/// Opens a key file, decrypting with `passphrase` when it is encrypted.
pub fn open(bytes: &[u8], passphrase: Option<&[u8]>) -> Result<Keypair, KeyFileError> {
    let parsed = parse(bytes)?;
    let seed: Zeroizing<[u8; 32]> = match &parsed.protection {
        Protection::None { seed } => seed.clone(),
        Protection::Argon2 {
            params,
            salt,
            nonce,
            ciphertext,
        } => {
            let p = passphrase.ok_or(KeyFileError::PassphraseRequired)?;
            if p.is_empty() {
                return Err(KeyFileError::EmptyPassphrase);
            }
            let aead_key = derive(p, salt, *params)?;
            let cipher = Aes256Gcm::new_from_slice(aead_key.as_ref())
                .map_err(|_| KeyFileError::CipherKey)?;
            let pt = Zeroizing::new(
                cipher
                    .decrypt(
                        &Nonce::from(*nonce),
                        Payload {
                            msg: ciphertext,
                            aad: &parsed.aad,
                        },
                    )
                    .map_err(|_| KeyFileError::WrongPassphrase)?,
            );
            let arr: [u8; 32] = pt
                .as_slice()
                .try_into()
                .map_err(|_| KeyFileError::Corrupt("decrypted secret is not 32 bytes".into()))?;
            Zeroizing::new(arr)
        }
    };
    let kp = Keypair::from_seed(&seed).map_err(|e| KeyFileError::Corrupt(e.to_string()))?;
    if kp.public() != &parsed.info.public_key {
        return Err(KeyFileError::Corrupt(
            "the secret key does not match the public key in the file".into(),
        ));
    }
    Ok(kp)
}

enum Protection {
    None {
        seed: Zeroizing<[u8; 32]>,
    },
    Argon2 {
        params: KdfParams,
        salt: [u8; 16],
        nonce: [u8; 12],
        ciphertext: Vec<u8>,
    },
}

struct Parsed {
    info: KeyFileInfo,
    protection: Protection,
    aad: Vec<u8>,
}

fn parse(bytes: &[u8]) -> Result<Parsed, KeyFileError> {
    let corrupt = |m: &str| KeyFileError::Corrupt(m.to_owned());
    if bytes.len() > MAX_KEY_FILE_BYTES {
        return Err(corrupt("larger than 64 KiB"));
    }
    let value = jcs::parse(bytes).map_err(|e| KeyFileError::Corrupt(e.to_string()))?;
    let Value::Object(mut doc) = value else {
        return Err(corrupt("not a JSON object"));
    };
    if doc.get("format").and_then(Value::as_str) != Some(KEY_FORMAT) {
        return Err(corrupt(
            "not an accord-key/1 file (format member missing or different)",
        ));
    }
    let secret = match doc.remove("secret") {
        Some(Value::String(s)) => s,
        _ => return Err(corrupt("missing secret")),
    };
    let aad = jcs::to_vec(&Value::Object(doc.clone()));
    let s = |k: &str| doc.get(k).and_then(Value::as_str);
    let public_key =
        PublicKey::from_b64(s("public_key").ok_or_else(|| corrupt("missing public_key"))?)
            .map_err(|e| KeyFileError::Corrupt(e.to_string()))?;
    let agent_id = AgentId::parse(s("agent_id").ok_or_else(|| corrupt("missing agent_id"))?)
        .map_err(|e| KeyFileError::Corrupt(e.to_string()))?;
    agent_id
        .check_key(&public_key)
        .map_err(|e| KeyFileError::Corrupt(e.to_string()))?;
    let name = match doc.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) => Some(n.clone()),
        Some(_) => return Err(corrupt("name must be a string or null")),
    };
    let created_at =
        Timestamp::parse(s("created_at").ok_or_else(|| corrupt("missing created_at"))?)
            .map_err(|e| KeyFileError::Corrupt(e.to_string()))?;
    let prot = doc
        .get("protection")
        .and_then(Value::as_object)
        .ok_or_else(|| corrupt("missing protection"))?;
    let ps = |k: &str| prot.get(k).and_then(Value::as_str);
    let pn = |k: &str| {
        prot.get(k)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                KeyFileError::Corrupt(format!("protection.{k} missing or not an integer"))
            })
    };
    let protection = match ps("kdf") {
        Some("none") => Protection::None {
            seed: Zeroizing::new(
                decode_b64_exact::<32>(&secret)
                    .ok_or_else(|| corrupt("secret is not 32 bytes of base64url"))?,
            ),
        },
        Some("argon2id") => {
            if ps("cipher") != Some("aes-256-gcm") || pn("version")? != 19 {
                return Err(corrupt("unsupported cipher or Argon2 version"));
            }
            let params = KdfParams {
                m_cost_kib: pn("m_cost_kib")?,
                t_cost: pn("t_cost")?,
                p_cost: pn("p_cost")?,
            };
            if !params.in_bounds() {
                return Err(corrupt("Argon2 parameters out of the accepted range"));
            }
            Protection::Argon2 {
                params,
                salt: ps("salt")
                    .and_then(decode_b64_exact::<16>)
                    .ok_or_else(|| corrupt("salt is not 16 bytes"))?,
                nonce: ps("nonce")
                    .and_then(decode_b64_exact::<12>)
                    .ok_or_else(|| corrupt("nonce is not 12 bytes"))?,
                ciphertext: base64_decode(&secret)
                    .ok_or_else(|| corrupt("secret is not base64url"))?,
            }
        }
        _ => return Err(corrupt("unknown protection.kdf")),
    };
    let encrypted = matches!(protection, Protection::Argon2 { .. });
    Ok(Parsed {
        info: KeyFileInfo {
            agent_id,
            public_key,
            name,
            created_at,
            encrypted,
        },
        protection,
        aad,
    })
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
}

fn derive(
    passphrase: &[u8],
    salt: &[u8; 16],
    p: KdfParams,
) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
    let params =
        Params::new(p.m_cost_kib, p.t_cost, p.p_cost, Some(32)).map_err(KeyFileError::Kdf)?;
    let mut out = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase, salt, out.as_mut())
        .map_err(KeyFileError::Kdf)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams {
        m_cost_kib: 8 * 1024,
        t_cost: 1,
        p_cost: 1,
    };

    #[test]
    fn a_kdf_failure_keeps_argon2s_error() {
        use std::error::Error as _;
        // Within Accord's bounds for memory, but a salt Argon2 refuses.
        let e = derive(b"pw", &[0u8; 16], KdfParams { p_cost: 0, ..FAST }).unwrap_err();
        let cause = e.source().expect("Argon2's error is kept");
        assert!(cause.downcast_ref::<argon2::Error>().is_some(), "{e}");
    }

    fn ts() -> Timestamp {
        Timestamp::parse("2026-11-24T10:00:00.000000Z").unwrap()
    }

    #[test]
    fn encrypted_round_trip_and_wrong_passphrase() {
        let kp = Keypair::from_seed(&[9u8; 32]).unwrap();
        let file = seal(
            &kp,
            Some("planner"),
            &ts(),
            Some(b"hunter2"),
            FAST,
            [1; 16],
            [2; 12],
        )
        .unwrap();
        let info = inspect(&file).unwrap();
        assert!(info.encrypted);
        assert_eq!(info.name.as_deref(), Some("planner"));
        assert_eq!(
            open(&file, Some(b"hunter2")).unwrap().agent_id(),
            kp.agent_id()
        );
        assert_eq!(
            open(&file, Some(b"hunter3")).unwrap_err(),
            KeyFileError::WrongPassphrase
        );
        assert_eq!(
            open(&file, None).unwrap_err(),
            KeyFileError::PassphraseRequired
        );
        // The seed is not in the file in any common encoding.
        let text = String::from_utf8(file.clone()).unwrap();
        assert!(!text.contains(&encode_b64(&[9u8; 32])));
    }

    #[test]
    fn header_edits_break_decryption() {
        let kp = Keypair::from_seed(&[9u8; 32]).unwrap();
        let file = seal(
            &kp,
            Some("planner"),
            &ts(),
            Some(b"pw"),
            FAST,
            [1; 16],
            [2; 12],
        )
        .unwrap();
        let text = String::from_utf8(file).unwrap();
        let renamed = text.replace("\"planner\"", "\"mallory\"");
        assert_eq!(
            open(renamed.as_bytes(), Some(b"pw")).unwrap_err(),
            KeyFileError::WrongPassphrase
        );
        let weaker = text.replace("\"t_cost\":1", "\"t_cost\":2");
        assert_eq!(
            open(weaker.as_bytes(), Some(b"pw")).unwrap_err(),
            KeyFileError::WrongPassphrase
        );
    }

    #[test]
    fn corrupt_files_are_named_corrupt() {
        let kp = Keypair::from_seed(&[9u8; 32]).unwrap();
        let file = seal(&kp, None, &ts(), None, FAST, [0; 16], [0; 12]).unwrap();
        assert_eq!(open(&file, None).unwrap().agent_id(), kp.agent_id());
        for bad in [&b""[..], b"garbage", b"{}", &file[..file.len() / 2]] {
            assert!(matches!(open(bad, None), Err(KeyFileError::Corrupt(_))));
        }
        let other = Keypair::from_seed(&[8u8; 32]).unwrap();
        let swapped = String::from_utf8(file.clone())
            .unwrap()
            .replace(&encode_b64(&[9u8; 32]), &encode_b64(&[8u8; 32]));
        assert!(
            matches!(
                open(swapped.as_bytes(), None),
                Err(KeyFileError::Corrupt(_))
            ),
            "{:?}",
            other
        );
        // A hostile file asking for 1 TiB of Argon2 memory is refused before
        // any derivation is attempted.
        let enc = seal(&kp, None, &ts(), Some(b"pw"), FAST, [0; 16], [0; 12]).unwrap();
        let hostile = String::from_utf8(enc)
            .unwrap()
            .replace("\"m_cost_kib\":8192", "\"m_cost_kib\":1073741824");
        assert!(
            matches!(open(hostile.as_bytes(), Some(b"pw")), Err(KeyFileError::Corrupt(m)) if m.contains("out of the accepted range"))
        );
    }
}
