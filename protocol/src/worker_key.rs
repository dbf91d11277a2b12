//! The shared worker key: the secret that dispatchers and workers prove they both hold before
//! any task crosses the network (the Noise handshake in `faas_daemons::channel`).
//!
//! A key file is text: lines starting with `#` are comments, and the rest is the secret in
//! hexadecimal, at least [`MIN_KEY_BYTES`] bytes (64 hex digits); whitespace is ignored.
//! `faas keygen` writes one with 32 random bytes. Parsing and formatting live here, without
//! I/O, so the CLI that writes a key and the daemons that read it agree on the format.

/// The shortest secret accepted: 256 bits.
pub const MIN_KEY_BYTES: usize = 32;

/// A worker key. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct WorkerKey(Vec<u8>);

impl std::fmt::Debug for WorkerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WorkerKey({} bytes, redacted)", self.0.len())
    }
}

/// Why a key file's text is not a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    NotHex,
    TooShort(usize),
}

impl std::error::Error for KeyError {}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotHex => write!(
                f,
                "the key is not hexadecimal (make a new one with `faas keygen PATH`)"
            ),
            Self::TooShort(n) => write!(
                f,
                "the key has {n} bytes; at least {MIN_KEY_BYTES} are needed (make a new one with `faas keygen PATH`)"
            ),
        }
    }
}

impl WorkerKey {
    /// A new key of 32 bytes from the operating system's random source.
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; MIN_KEY_BYTES];
        getrandom::fill(&mut bytes).expect("the operating system's random source works");
        Self(bytes)
    }

    /// Reads a key file's text.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let hex: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .flat_map(|l| l.chars())
            .filter(|c| !c.is_whitespace())
            .collect();
        if !hex.len().is_multiple_of(2) || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(KeyError::NotHex);
        }
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("checked hex digits"))
            .collect();
        if bytes.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort(bytes.len()));
        }
        Ok(Self(bytes))
    }

    /// The text of a key file holding this key.
    pub fn to_file_text(&self) -> String {
        let hex: String = self.0.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "# FaaS worker key (faas keygen): give this file to faas-dispatcher and faas-worker\n\
             # with --worker-key-file. Anyone holding it can take and answer tasks: keep it 0600.\n\
             {hex}\n"
        )
    }

    /// The secret itself, for the key derivation.
    pub fn secret(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_round_trips_through_its_file_text() {
        let k = WorkerKey::generate();
        assert_eq!(k.secret().len(), MIN_KEY_BYTES);
        assert_eq!(WorkerKey::parse(&k.to_file_text()).unwrap(), k);
        assert_ne!(WorkerKey::generate(), k, "random");
        assert_eq!(format!("{k:?}"), "WorkerKey(32 bytes, redacted)");
    }

    #[test]
    fn short_or_garbled_keys_are_refused_with_how_to_make_one() {
        assert_eq!(WorkerKey::parse("abcd"), Err(KeyError::TooShort(2)));
        assert_eq!(WorkerKey::parse("xyz"), Err(KeyError::NotHex));
        assert_eq!(WorkerKey::parse(""), Err(KeyError::TooShort(0)));
        assert!(KeyError::NotHex.to_string().contains("faas keygen"));
        let long = "# comment\n".to_owned() + &"ab".repeat(40) + "\n";
        assert_eq!(WorkerKey::parse(&long).unwrap().secret().len(), 40);
    }
}
