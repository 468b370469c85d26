//! PHC strings (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`): written for new
//! hashes, parsed (with bounds on their cost) for stored ones.

use argon2::{
    ARGON2ID_IDENT, Algorithm, Argon2, Params, PasswordHash, Version,
    password_hash::phc::{Output, ParamsString, Salt},
};

/// Stored hashes asking for more than this are refused instead of verified, so
/// a corrupt or tampered row cannot make a worker allocate gigabytes or spin
/// for minutes. Far above anything this platform would configure.
const MAX_STORED_MEMORY_KIB: u32 = 1024 * 1024;
const MAX_STORED_ITERATIONS: u32 = 64;

/// The PHC string of one argon2id computation.
pub(super) fn phc_string(params: &Params, salt: &[u8], output: &[u8]) -> Result<String, argon2::password_hash::Error> {
    let hash = PasswordHash {
        algorithm: ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params)?,
        salt: Some(Salt::new(salt)?),
        hash: Some(Output::new(output)?),
    };
    Ok(hash.to_string())
}

/// A stored PHC string, parsed: the hasher it was made with, its salt and output.
pub(super) struct StoredHash {
    pub(super) argon2: Argon2<'static>,
    pub(super) salt: Salt,
    pub(super) output: Output,
    /// Made with other parameters than `wanted`: hash the password again.
    pub(super) needs_rehash: bool,
}

impl StoredHash {
    /// Refuses hashes that are not argon2, lack a salt or output, or whose cost
    /// is absurd (a tampered row must not make a thread allocate gigabytes).
    pub(super) fn parse(stored: &str, wanted: &Params) -> Result<Self, &'static str> {
        let hash = PasswordHash::new(stored).map_err(|_| "malformed PHC string")?;
        let algorithm = Algorithm::try_from(hash.algorithm.as_str()).map_err(|_| "not an argon2 hash")?;
        let version = match hash.version {
            Some(version) => Version::try_from(version).map_err(|_| "unknown argon2 version")?,
            None => Version::default(),
        };
        let params = Params::try_from(&hash).map_err(|_| "invalid argon2 parameters")?;
        if params.m_cost() > MAX_STORED_MEMORY_KIB || params.t_cost() > MAX_STORED_ITERATIONS {
            return Err("argon2 cost out of bounds");
        }
        let (Some(salt), Some(output)) = (hash.salt, hash.hash) else {
            return Err("no salt or no output");
        };
        let needs_rehash = algorithm != Algorithm::Argon2id
            || version != Version::V0x13
            || params.m_cost() != wanted.m_cost()
            || params.t_cost() != wanted.t_cost()
            || params.p_cost() != wanted.p_cost()
            || output.len() != wanted.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        Ok(Self { argon2: Argon2::new(algorithm, version, params), salt, output, needs_rehash })
    }
}
