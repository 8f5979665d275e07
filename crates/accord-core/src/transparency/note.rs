//! C2SP signed notes (c2sp.org/signed-note), the checkpoints they carry
//! (c2sp.org/tlog-checkpoint) and Ed25519 witness cosignatures
//! (c2sp.org/tlog-cosignature, `cosignature/v1`).
//!
//! A checkpoint of an agent's chain is
//!
//! ```text
//! accord/agent/<agent_id>
//! <number of events>
//! <base64 RFC 9162 root over the events' canonical bytes>
//!
//! — accord/agent/<agent_id> <base64(key ID ‖ Ed25519 signature)>
//! ```
//!
//! signed by the agent's own key, so any standard transparency-log witness
//! can check and cosign it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::Signature;

use crate::hash::Hash32;
use crate::identity::{AgentId, Keypair, PublicKey};

/// Signature type byte of plain Ed25519 note signatures.
pub const SIG_ED25519: u8 = 0x01;
/// Signature type byte of timestamped Ed25519 cosignatures.
pub const SIG_COSIGNATURE_V1: u8 = 0x04;
/// Largest note accepted.
pub const MAX_NOTE_BYTES: usize = 64 * 1024;
/// Most signature lines accepted (the spec asks for at least 16).
pub const MAX_SIGNATURES: usize = 64;

/// Why a note, checkpoint or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// Not a well-formed signed note.
    #[error("malformed signed note: {0}")]
    Malformed(String),
    /// Not a well-formed checkpoint body.
    #[error("malformed checkpoint: {0}")]
    Checkpoint(String),
    /// Key names must be non-empty, without Unicode spaces (the White_Space
    /// property), control characters or '+'.
    #[error("invalid key name {name:?}: {problem}")]
    KeyName {
        /// The name (at most 80 characters of it).
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// No signature line from the expected key.
    #[error("no signature by {0} on this note")]
    NotSigned(String),
    /// A signature line from the expected key does not verify.
    #[error("the signature by {0} does not verify")]
    BadSignature(String),
}

/// SHA-256(name ‖ 0x0A ‖ type ‖ public key)\[:4\], the signed-note key ID.
pub fn key_id(name: &str, sig_type: u8, key: &PublicKey) -> [u8; 4] {
    let mut buf = Vec::with_capacity(name.len() + 34);
    buf.extend_from_slice(name.as_bytes());
    buf.push(b'\n');
    buf.push(sig_type);
    buf.extend_from_slice(&key.to_bytes());
    let h = Hash32::of(&buf);
    [h.0[0], h.0[1], h.0[2], h.0[3]]
}

/// The verifier key string `name+keyid+base64(0x01 ‖ key)`, as witnesses are
/// configured with it.
pub fn verifier_key(name: &str, key: &PublicKey) -> String {
    let mut material = vec![SIG_ED25519];
    material.extend_from_slice(&key.to_bytes());
    format!(
        "{name}+{}+{}",
        hex::encode(key_id(name, SIG_ED25519, key)),
        STANDARD.encode(material)
    )
}

/// A character signed notes refuse anywhere (c2sp.org/signed-note: "ASCII
/// control characters (those below U+0020) other than newline"). DEL
/// (U+007F) and the C1 controls U+0080–U+009F are not among them.
pub fn is_note_control(c: char) -> bool {
    c < '\u{20}' && c != '\n'
}

/// A character key names refuse: "Unicode spaces" of c2sp.org/signed-note,
/// read as the reference implementation (golang.org/x/mod/sumdb/note,
/// `unicode.IsSpace`) reads it: the Unicode White_Space property, which is
/// Rust's `char::is_whitespace` — U+0009–U+000D, U+0020, U+0085, U+00A0,
/// U+1680, U+2000–U+200A, U+2028, U+2029, U+202F, U+205F and U+3000. Not
/// U+180E, U+200B or U+FEFF, which are not White_Space.
pub fn is_name_space(c: char) -> bool {
    c.is_whitespace()
}

/// Checks a key name: non-empty, no Unicode space, no control character,
/// no `+` (9.1), so a writer makes only names a reader accepts.
pub fn check_name(name: &str) -> Result<(), NoteError> {
    let bad = |problem: String| NoteError::KeyName {
        name: name.chars().take(80).collect(),
        problem,
    };
    if name.is_empty() {
        return Err(bad("it is empty".into()));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| is_name_space(c) || is_note_control(c) || c == '+')
    {
        let what = if c == '+' {
            "'+'".to_owned()
        } else if is_name_space(c) {
            format!("U+{:04X}, a Unicode space (White_Space)", c as u32)
        } else {
            format!("U+{:04X}, a control character", c as u32)
        };
        return Err(bad(format!(
            "it contains {what}; key names have no spaces, controls or '+' (PROTOCOL.md 9.1)"
        )));
    }
    Ok(())
}

/// The first control character of `s` a note refuses, as a message.
fn find_control(s: &str) -> Option<String> {
    s.char_indices().find(|&(_, c)| is_note_control(c)).map(|(i, c)| {
        format!(
            "contains the control character U+{:04X} at byte {i} (only newline is allowed below U+0020)",
            c as u32
        )
    })
}

/// One signature line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name.
    pub name: String,
    /// Key ID (first four bytes of the decoded signature).
    pub key_id: [u8; 4],
    /// The rest of the decoded signature.
    pub signature: Vec<u8>,
}

/// A parsed signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The text, including its final newline.
    pub text: String,
    /// The signature lines, in order.
    pub signatures: Vec<NoteSignature>,
}

impl Note {
    /// Parses a signed note: valid UTF-8, no control characters below U+0020
    /// but newline,
    /// text ending in newline, a blank line, then `— name base64` lines.
    pub fn parse(bytes: &[u8]) -> Result<Self, NoteError> {
        let bad = |m: &str| NoteError::Malformed(m.to_owned());
        if bytes.len() > MAX_NOTE_BYTES {
            return Err(bad("larger than 64 KiB"));
        }
        let s = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
        if let Some(m) = find_control(s) {
            return Err(NoteError::Malformed(m));
        }
        // The text ends at the last blank line.
        let split = s
            .rfind("\n\n")
            .ok_or_else(|| bad("no blank line before the signatures"))?;
        let (text, sigs) = (&s[..split + 1], &s[split + 2..]);
        if !sigs.ends_with('\n') {
            return Err(bad("signature block does not end in a newline"));
        }
        let mut signatures = Vec::new();
        for line in sigs[..sigs.len() - 1].split('\n') {
            let rest = line.strip_prefix("\u{2014} ").ok_or_else(|| {
                bad("a signature line does not start with an em dash and a space")
            })?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or_else(|| bad("a signature line has no signature"))?;
            check_name(name)?;
            let raw = STANDARD
                .decode(b64)
                .map_err(|_| bad("a signature is not base64"))?;
            if raw.len() < 5 {
                return Err(bad("a signature is shorter than its key ID"));
            }
            signatures.push(NoteSignature {
                name: name.to_owned(),
                key_id: [raw[0], raw[1], raw[2], raw[3]],
                signature: raw[4..].to_vec(),
            });
            if signatures.len() > MAX_SIGNATURES {
                return Err(bad("too many signatures"));
            }
        }
        if signatures.is_empty() {
            return Err(bad("no signatures"));
        }
        Ok(Note {
            text: text.to_owned(),
            signatures,
        })
    }

    /// Serialises the note: text, blank line, signature lines.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.text.clone().into_bytes();
        out.push(b'\n');
        for s in &self.signatures {
            let mut raw = s.key_id.to_vec();
            raw.extend_from_slice(&s.signature);
            out.extend_from_slice(
                format!("\u{2014} {} {}\n", s.name, STANDARD.encode(raw)).as_bytes(),
            );
        }
        out
    }

    /// Signs `text` (which must end in a newline) as `name` with plain
    /// Ed25519. Refuses what [`Note::parse`] would refuse in the result:
    /// a bad name, a control character, a text without final newline, a
    /// note over [`MAX_NOTE_BYTES`].
    pub fn sign(text: &str, name: &str, key: &Keypair) -> Result<Self, NoteError> {
        check_name(name)?;
        if !text.ends_with('\n') {
            return Err(NoteError::Malformed("text must end in a newline".into()));
        }
        if let Some(m) = find_control(text) {
            return Err(NoteError::Malformed(format!("text {m}")));
        }
        let sig = key.sign(text.as_bytes());
        let note = Note {
            text: text.to_owned(),
            signatures: vec![NoteSignature {
                name: name.to_owned(),
                key_id: key_id(name, SIG_ED25519, key.public()),
                signature: sig.to_bytes().to_vec(),
            }],
        };
        note.check_size()?;
        Ok(note)
    }

    /// The limits [`Note::parse`] applies to the whole note, for writers.
    fn check_size(&self) -> Result<(), NoteError> {
        let len = self.to_bytes().len();
        if len > MAX_NOTE_BYTES {
            return Err(NoteError::Malformed(format!(
                "the note would be {len} bytes, larger than 64 KiB"
            )));
        }
        if self.signatures.len() > MAX_SIGNATURES {
            return Err(NoteError::Malformed(format!(
                "the note would carry {} signatures, more than {MAX_SIGNATURES}",
                self.signatures.len()
            )));
        }
        Ok(())
    }

    /// Verifies the plain Ed25519 signature by (`name`, `key`). Lines from
    /// other keys are ignored, as the spec requires.
    pub fn verify(&self, name: &str, key: &PublicKey) -> Result<(), NoteError> {
        let id = key_id(name, SIG_ED25519, key);
        let sig = self
            .signatures
            .iter()
            .find(|s| s.name == name && s.key_id == id)
            .ok_or_else(|| NoteError::NotSigned(name.to_owned()))?;
        let ok = <[u8; 64]>::try_from(sig.signature.as_slice())
            .map(|b| key.verify_strict(self.text.as_bytes(), &Signature::from_bytes(&b)))
            .unwrap_or(false);
        if ok {
            Ok(())
        } else {
            Err(NoteError::BadSignature(name.to_owned()))
        }
    }

    /// The note reduced to its text and the one signature line by
    /// (`name`, `key_id`), if present — what a witness keeps, so that lines
    /// added by whoever relayed the note cannot grow it.
    pub fn only_signature(&self, name: &str, key_id: [u8; 4]) -> Note {
        Note {
            text: self.text.clone(),
            signatures: self
                .signatures
                .iter()
                .filter(|s| s.name == name && s.key_id == key_id)
                .take(1)
                .cloned()
                .collect(),
        }
    }

    /// Adds a `cosignature/v1` line by (`name`, `key`) at POSIX time `time`.
    pub fn cosign(&mut self, name: &str, key: &Keypair, time: u64) -> Result<(), NoteError> {
        check_name(name)?;
        if time > i64::MAX as u64 {
            // verify_cosignature refuses such a line.
            return Err(NoteError::Malformed(format!(
                "cosignature time {time} is beyond 2^63−1"
            )));
        }
        let sig = key.sign(&cosigned_message(&self.text, time));
        let mut raw = time.to_be_bytes().to_vec();
        raw.extend_from_slice(&sig.to_bytes());
        self.signatures.push(NoteSignature {
            name: name.to_owned(),
            key_id: key_id(name, SIG_COSIGNATURE_V1, key.public()),
            signature: raw,
        });
        if let Err(e) = self.check_size() {
            self.signatures.pop();
            return Err(e);
        }
        Ok(())
    }

    /// Verifies the `cosignature/v1` line by (`name`, `key`) and returns its
    /// timestamp.
    pub fn verify_cosignature(&self, name: &str, key: &PublicKey) -> Result<u64, NoteError> {
        let id = key_id(name, SIG_COSIGNATURE_V1, key);
        let sig = self
            .signatures
            .iter()
            .find(|s| s.name == name && s.key_id == id)
            .ok_or_else(|| NoteError::NotSigned(name.to_owned()))?;
        let bad = || NoteError::BadSignature(name.to_owned());
        if sig.signature.len() != 72 {
            return Err(bad());
        }
        let time = u64::from_be_bytes(sig.signature[..8].try_into().map_err(|_| bad())?);
        if time > i64::MAX as u64 {
            return Err(bad());
        }
        let s: [u8; 64] = sig.signature[8..].try_into().map_err(|_| bad())?;
        if key.verify_strict(
            &cosigned_message(&self.text, time),
            &Signature::from_bytes(&s),
        ) {
            Ok(time)
        } else {
            Err(bad())
        }
    }
}

fn cosigned_message(text: &str, time: u64) -> Vec<u8> {
    format!("cosignature/v1\ntime {time}\n{text}").into_bytes()
}

/// A tree head of an agent's chain (c2sp.org/tlog-checkpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// `accord/agent/<agent_id>`; also the signing key's name.
    pub origin: String,
    /// Number of events covered.
    pub size: u64,
    /// RFC 9162 root over the events' canonical bytes.
    pub root: Hash32,
}

impl Checkpoint {
    /// The origin (and key name) of `agent`'s checkpoints.
    pub fn origin_of(agent: &AgentId) -> String {
        format!("accord/agent/{agent}")
    }

    /// The note text: origin, size, base64 root, each ending in a newline.
    pub fn text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root.0)
        )
    }

    /// Parses a checkpoint body (extension lines are refused: Accord writes
    /// none).
    pub fn parse_text(text: &str) -> Result<Self, NoteError> {
        let bad = |m: &str| NoteError::Checkpoint(m.to_owned());
        let lines: Vec<&str> = text
            .strip_suffix('\n')
            .ok_or_else(|| bad("no final newline"))?
            .split('\n')
            .collect();
        let [origin, size, root] = lines[..] else {
            return Err(bad("expected exactly three lines: origin, size, root"));
        };
        check_name(origin).map_err(|e| match e {
            NoteError::KeyName { problem, .. } => {
                bad(&format!("origin is not a key name: {problem}"))
            }
            other => other,
        })?;
        if size.is_empty()
            || !size.bytes().all(|b| b.is_ascii_digit())
            || (size.len() > 1 && size.starts_with('0'))
        {
            return Err(bad("size is not a decimal without leading zeros"));
        }
        let size: u64 = size.parse().map_err(|_| bad("size out of range"))?;
        let root = STANDARD
            .decode(root)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| bad("root is not 32 bytes of base64"))?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root: Hash32(root),
        })
    }

    /// Signs the checkpoint with the agent's key; the key must be the one
    /// the origin names.
    pub fn sign(&self, key: &Keypair) -> Result<Note, NoteError> {
        if self.origin != Self::origin_of(key.agent_id()) {
            return Err(NoteError::Checkpoint(
                "origin does not name the signing agent".into(),
            ));
        }
        Note::sign(&self.text(), &self.origin, key)
    }

    /// Parses a signed checkpoint and verifies it was signed by `key`, the
    /// agent its origin names.
    pub fn open(note: &[u8], key: &PublicKey) -> Result<(Checkpoint, Note), NoteError> {
        let note = Note::parse(note)?;
        let cp = Checkpoint::parse_text(&note.text)?;
        if cp.origin != Self::origin_of(&key.agent_id()) {
            return Err(NoteError::Checkpoint(format!(
                "origin {:?} is not the log of agent {}",
                cp.origin,
                key.agent_id()
            )));
        }
        note.verify(&cp.origin, key)?;
        Ok((cp, note))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trip_and_tampering() {
        let k = Keypair::from_seed(&[5u8; 32]).unwrap();
        let cp = Checkpoint {
            origin: Checkpoint::origin_of(k.agent_id()),
            size: 1204,
            root: Hash32::of(b"root"),
        };
        let note = cp.sign(&k).unwrap();
        let bytes = note.to_bytes();
        let (parsed, _) = Checkpoint::open(&bytes, k.public()).unwrap();
        assert_eq!(parsed, cp);
        let text = String::from_utf8(bytes.clone()).unwrap();
        let edited = text.replacen("1204", "1203", 1);
        assert!(matches!(
            Checkpoint::open(edited.as_bytes(), k.public()),
            Err(NoteError::BadSignature(_))
        ));
        let other = Keypair::from_seed(&[6u8; 32]).unwrap();
        assert!(Checkpoint::open(&bytes, other.public()).is_err());
        for bad in [
            "",
            "a\n",
            "x\n\n— n AAAA\n",
            "o\n01\nAAAA\n\n— o AAAAAAA=\n",
        ] {
            assert!(
                Checkpoint::open(bad.as_bytes(), k.public()).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn cosignature_round_trip() {
        let log = Keypair::from_seed(&[5u8; 32]).unwrap();
        let witness = Keypair::from_seed(&[7u8; 32]).unwrap();
        let cp = Checkpoint {
            origin: Checkpoint::origin_of(log.agent_id()),
            size: 3,
            root: Hash32::of(b"r"),
        };
        let mut note = cp.sign(&log).unwrap();
        note.cosign("accord/agent/witness", &witness, 1_795_000_000)
            .unwrap();
        let reparsed = Note::parse(&note.to_bytes()).unwrap();
        assert_eq!(
            reparsed.verify_cosignature("accord/agent/witness", witness.public()),
            Ok(1_795_000_000)
        );
        // A cosignature is not a plain signature and vice versa.
        assert!(
            reparsed
                .verify("accord/agent/witness", witness.public())
                .is_err()
        );
        assert!(
            reparsed
                .verify_cosignature(&cp.origin, log.public())
                .is_err()
        );
        reparsed.verify(&cp.origin, log.public()).unwrap();
    }

    /// 9.1 follows c2sp.org/signed-note and its reference implementation:
    /// key names refuse exactly the White_Space characters (and controls,
    /// and '+'); notes refuse controls below U+0020 but newline, not DEL.
    #[test]
    fn names_and_controls_follow_c2sp() {
        let k = Keypair::from_seed(&[9u8; 32]).unwrap();
        let refused = [
            '\u{9}', '\u{b}', '\u{c}', ' ', '\u{85}', '\u{a0}', '\u{1680}', '\u{2000}', '\u{2005}',
            '\u{200a}', '\u{2028}', '\u{2029}', '\u{202f}', '\u{205f}', '\u{3000}', '+', '\u{1}',
        ];
        for c in refused {
            let name = format!("a{c}b");
            let e = Note::sign("x\n", &name, &k).unwrap_err();
            assert!(
                matches!(e, NoteError::KeyName { .. }),
                "U+{:04X}: {e}",
                c as u32
            );
            let line = format!("x\n\n\u{2014} {name} AAAAAAA=\n");
            assert!(
                Note::parse(line.as_bytes()).is_err(),
                "U+{:04X} parsed",
                c as u32
            );
        }
        for c in [
            '\u{180e}', '\u{200b}', '\u{feff}', '\u{7f}', '\u{80}', '\u{9f}',
        ] {
            let name = format!("a{c}b");
            let note =
                Note::sign("x\n", &name, &k).unwrap_or_else(|e| panic!("U+{:04X}: {e}", c as u32));
            let back = Note::parse(&note.to_bytes()).unwrap();
            back.verify(&name, k.public()).unwrap();
        }
        // DEL in the text: accepted by writer and reader alike.
        let note = Note::sign("a\u{7f}b\n", "n", &k).unwrap();
        Note::parse(&note.to_bytes())
            .unwrap()
            .verify("n", k.public())
            .unwrap();
        let e = Note::parse(b"a\x01b\n\n\xe2\x80\x94 n AAAAAAA=\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("U+0001 at byte 1"), "{e}");
        assert!(Note::sign("a\u{1}\n", "n", &k).is_err());
    }

    /// A note the writer makes is one the reader takes: the size and
    /// signature-count limits hold at signing and cosigning.
    #[test]
    fn writers_refuse_notes_the_reader_refuses() {
        let k = Keypair::from_seed(&[9u8; 32]).unwrap();
        let big = format!("{}\n", "a".repeat(MAX_NOTE_BYTES));
        assert!(Note::sign(&big, "n", &k).is_err());
        let mut note = Note::sign("x\n", "n", &k).unwrap();
        for i in 1..MAX_SIGNATURES {
            note.cosign(&format!("w{i}"), &k, 1).unwrap();
        }
        assert!(Note::parse(&note.to_bytes()).is_ok());
        assert!(note.cosign("one-more", &k, 1).is_err());
        assert_eq!(note.signatures.len(), MAX_SIGNATURES);
        assert!(note.cosign("w", &k, u64::MAX).is_err());
    }
}
