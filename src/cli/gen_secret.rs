//! `wscluster gen-secret`: prints a fresh random cluster secret (32 bytes from the operating
//! system's secure random source, through the TLS library's provider, as 64 hex digits), to be
//! stored in a file given by `cluster.secret_file` / `--cluster-secret-file`, or in
//! `WSCLUSTER_CLUSTER__SECRET`.

use std::process::ExitCode;

/// Random bytes in a generated secret.
const SECRET_BYTES: usize = 32;

/// A new secret as hex digits.
pub(crate) fn generate() -> Result<String, String> {
    let mut bytes = [0u8; SECRET_BYTES];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| "the operating system's random source failed".to_owned())?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Runs `wscluster gen-secret`: prints a new secret, one line.
pub(crate) fn run() -> ExitCode {
    match generate() {
        Ok(secret) => {
            println!("{secret}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wscluster gen-secret: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_64_hex_digits_and_differ() {
        let a = generate().unwrap_or_else(|e| panic!("{e}"));
        let b = generate().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.len(), 2 * SECRET_BYTES);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b);
    }
}
