//! `application/x-www-form-urlencoded` text (query strings and publish bodies)
//! as name/value pairs, repeated names kept in order.

use percent_encoding::percent_decode;

use super::error::MercureError;

/// The pairs of `text`: `+` is a space, `%XX` a byte; names and values must be
/// UTF-8 (else 400 `invalid_request`). Empty pieces (`a=1&&b=2`) are skipped; a
/// piece without `=` is a name with an empty value.
pub fn pairs(text: &[u8]) -> Result<Vec<(String, String)>, MercureError> {
    let mut out = Vec::new();
    for piece in text.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match piece.iter().position(|&b| b == b'=') {
            Some(at) => (&piece[..at], &piece[at + 1..]),
            None => (piece, &[][..]),
        };
        out.push((decode(name)?, decode(value)?));
    }
    Ok(out)
}

fn decode(raw: &[u8]) -> Result<String, MercureError> {
    let plus: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    let bytes: Vec<u8> = percent_decode(&plus).collect();
    String::from_utf8(bytes)
        .map_err(|_| MercureError::InvalidRequest("a form field is not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_decoded_in_order_with_repeats() {
        let got = pairs(b"match=a%2Fb&match=c+d&&flag&x=%E2%9C%93=").unwrap_or_default();
        let want: Vec<(String, String)> = [
            ("match", "a/b"),
            ("match", "c d"),
            ("flag", ""),
            ("x", "\u{2713}="),
        ]
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
        assert_eq!(got, want);
        assert!(pairs(b"a=%FF").is_err());
    }
}
