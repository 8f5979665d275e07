//! `accord init` and `accord id`, and opening an agent (its passphrase).

use std::io::{self, IsTerminal};

use accord_core::keyfile::KdfParams;
use accord_store::Home;
use serde_json::json;

use crate::exit::{CliError, Code};
use crate::text::printable;

pub(crate) fn cmd_init(
    home: &Home,
    name: Option<String>,
    no_passphrase: bool,
) -> Result<(), CliError> {
    if let Some(n) = &name
        && (n.is_empty() || n.len() > 128 || n.chars().any(char::is_control))
    {
        return Err(CliError::input(
            "--name must be 1-128 characters without control characters",
        ));
    }
    for p in [home.key_path(), home.store_path()] {
        if p.exists() {
            return Err(CliError::new(
                Code::Identity,
                format!(
                    "{} already exists; an existing identity is never overwritten (use another --home)",
                    p.display()
                ),
            ));
        }
    }
    let passphrase = if no_passphrase {
        None
    } else {
        Some(new_passphrase()?)
    };
    let agent = home.init(
        name.as_deref(),
        passphrase.as_ref().map(|p| p.as_bytes()),
        KdfParams::DEFAULT,
    )?;
    let key = agent.key();
    outln!("created agent {}", key.agent_id());
    outln!("fingerprint  {}", key.public().fingerprint());
    outln!("home         {}", home.dir().display());
    if no_passphrase {
        eprintln!("warning: the private key is stored unencrypted (--no-passphrase)");
    }
    Ok(())
}

pub(crate) fn cmd_id(home: &Home, json: bool) -> Result<(), CliError> {
    let info = home.info()?;
    if json {
        outln!(
            "{}",
            json!({
                "agent_id": info.agent_id.as_str(),
                "fingerprint": info.public_key.fingerprint(),
                "public_key": info.public_key.to_b64(),
                "name": info.name,
                "created_at": info.created_at.as_str(),
                "encrypted": info.encrypted,
            })
        );
    } else {
        outln!("agent_id     {}", info.agent_id);
        outln!("fingerprint  {}", info.public_key.fingerprint());
        outln!("public_key   {}", info.public_key.to_b64());
        outln!(
            "name         {}",
            printable(info.name.as_deref().unwrap_or("-"))
        );
        outln!("created_at   {}", info.created_at);
        outln!(
            "key          {}",
            if info.encrypted {
                "encrypted (Argon2id + AES-256-GCM)"
            } else {
                "UNENCRYPTED"
            }
        );
    }
    Ok(())
}

pub(crate) fn open_agent(home: &Home) -> Result<accord_store::Agent, CliError> {
    let info = home.info()?;
    let passphrase = if info.encrypted {
        Some(existing_passphrase()?)
    } else {
        None
    };
    Ok(home.open(passphrase.as_ref().map(|p| p.as_bytes()))?)
}

pub(crate) fn existing_passphrase() -> Result<zeroizing::Secret, CliError> {
    if let Some(p) = std::env::var_os("ACCORD_PASSPHRASE") {
        return zeroizing::Secret::from_os(p);
    }
    if !io::stderr().is_terminal() {
        return Err(CliError::new(
            Code::Identity,
            "the key is encrypted: set ACCORD_PASSPHRASE, or run on a terminal to be asked",
        ));
    }
    rpassword::prompt_password("passphrase: ")
        .map(zeroizing::Secret::new)
        .map_err(|e| {
            CliError::new(
                Code::Identity,
                format!("cannot read passphrase: {e} (set ACCORD_PASSPHRASE)"),
            )
        })
}

pub(crate) fn new_passphrase() -> Result<zeroizing::Secret, CliError> {
    let p = if let Some(p) = std::env::var_os("ACCORD_PASSPHRASE") {
        zeroizing::Secret::from_os(p)?
    } else if io::stderr().is_terminal() {
        let a = rpassword::prompt_password("new passphrase: ")
            .map_err(|e| CliError::io(e.to_string()))?;
        let b = rpassword::prompt_password("repeat passphrase: ")
            .map_err(|e| CliError::io(e.to_string()))?;
        if a != b {
            return Err(CliError::input("the passphrases differ"));
        }
        zeroizing::Secret::new(a)
    } else {
        return Err(CliError::new(
            Code::Identity,
            "a passphrase is needed to encrypt the key: set ACCORD_PASSPHRASE, run on a terminal, or pass --no-passphrase for a throwaway agent",
        ));
    };
    if p.as_bytes().is_empty() {
        return Err(CliError::new(
            Code::Identity,
            "empty passphrase: give a real one, or pass --no-passphrase for a throwaway agent",
        ));
    }
    Ok(p)
}

pub(crate) mod zeroizing {
    use super::{CliError, Code};

    /// A passphrase, wiped from memory when dropped.
    pub struct Secret(zeroize::Zeroizing<String>);

    impl Secret {
        pub fn new(s: String) -> Self {
            Secret(zeroize::Zeroizing::new(s))
        }
        pub fn from_os(s: std::ffi::OsString) -> Result<Self, CliError> {
            s.into_string()
                .map(Self::new)
                .map_err(|_| CliError::new(Code::Identity, "ACCORD_PASSPHRASE is not valid UTF-8"))
        }
        pub fn as_bytes(&self) -> &[u8] {
            self.0.as_bytes()
        }
    }
}
