//! Comparing secrets (API keys, password digests) without leaking, through the
//! time the comparison takes, how much of a guess was right.

/// Whether `given` equals `expected`, in time that depends only on their lengths.
pub(crate) fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    if given.len() != expected.len() {
        return false;
    }
    given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret(b"secret", b"secret"));
        assert!(!same_secret(b"secreT", b"secret"));
        assert!(!same_secret(b"secret1", b"secret"));
        assert!(!same_secret(b"", b"secret"));
    }
}
