//! Recovery codes: ten single-use codes of 80 random bits each, shown once
//! and stored as SHA-256 (like the opaque tokens: at this entropy there is
//! nothing to brute-force, so no slow hash). Written `xxxx-xxxx-xxxx-xxxx`
//! in lower-case RFC 4648 base32; read back ignoring case, dashes and spaces.

use aws_lc_rs::digest;

use crate::{secret::Secret, tokens::random_bytes};

pub const COUNT: usize = 10;
const CODE_BYTES: usize = 10;
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Ten fresh codes, as the user is shown them.
pub fn generate() -> Vec<Secret> {
    (0..COUNT).map(|_| Secret::new(format_code(&random_bytes()[..CODE_BYTES]))).collect()
}

/// What the store keeps of a code; `None` for what cannot be a code.
pub fn hash(code: &str) -> Option<Vec<u8>> {
    let normalised: String =
        code.chars().filter(|c| *c != '-' && !c.is_whitespace()).collect::<String>().to_lowercase();
    let well_formed = normalised.len() == CODE_BYTES * 8 / 5 && normalised.bytes().all(|b| ALPHABET.contains(&b));
    well_formed.then(|| digest::digest(&digest::SHA256, normalised.as_bytes()).as_ref().to_vec())
}

/// 80 bits as 16 base32 characters in groups of four.
fn format_code(bytes: &[u8]) -> String {
    let mut bits = 0u128;
    for byte in bytes {
        bits = (bits << 8) | u128::from(*byte);
    }
    let chars: Vec<char> =
        (0..16).rev().map(|i| char::from(ALPHABET[usize::try_from((bits >> (i * 5)) & 31).unwrap_or(0)])).collect();
    chars.chunks(4).map(|group| group.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_ten_distinct_groups_of_base32_and_hash_as_typed() {
        let codes = generate();
        assert_eq!(codes.len(), COUNT);
        let distinct: std::collections::HashSet<_> = codes.iter().map(|c| c.expose().to_owned()).collect();
        assert_eq!(distinct.len(), COUNT);
        let code = codes[0].expose();
        assert_eq!(code.len(), 19);
        assert_eq!(code.matches('-').count(), 3);
        let typed = format!(" {} ", code.to_uppercase().replace('-', " "));
        assert_eq!(hash(&typed), hash(code), "case, dashes and spaces do not matter");
        assert!(hash(code).is_some());
        assert_ne!(hash(code), hash(codes[1].expose()));
        for junk in ["", "abcd-efgh", "abcd-efgh-ijkl-mno1", "abcd-efgh-ijkl-mnopq", "123456"] {
            assert_eq!(hash(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn eighty_bits_are_spelled_in_order() {
        assert_eq!(format_code(&[0; 10]), "aaaa-aaaa-aaaa-aaaa");
        assert_eq!(format_code(&[0xff; 10]), "7777-7777-7777-7777");
        assert_eq!(format_code(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 1]), "aaaa-aaaa-aaaa-aaab");
    }
}
