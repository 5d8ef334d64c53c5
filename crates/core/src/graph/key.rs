//! Cache keys: a dedicated, deterministic, portable encoding of everything a stage's output
//! depends on, hashed with blake3. Not `std::hash::Hash`, whose output may change between
//! Rust versions and platforms.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A blake3 digest, shown as hex. Stage keys and output digests are both `Digest`s.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The first 12 hex digits: enough to tell artifacts apart in listings.
    pub fn short(&self) -> String {
        self.hex()[..12].to_string()
    }

    pub fn parse(hex: &str) -> Option<Digest> {
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Digest(out))
    }

    pub fn of_bytes(bytes: &[u8]) -> Digest {
        Digest(*blake3::hash(bytes).as_bytes())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.short())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let text = String::deserialize(d)?;
        Digest::parse(&text).ok_or_else(|| serde::de::Error::custom("not a 64-digit hex digest"))
    }
}

/// Accumulates a key: every value is tagged and length-prefixed, so distinct inputs never
/// produce the same byte stream.
pub struct KeyWriter {
    hasher: blake3::Hasher,
}

impl Default for KeyWriter {
    fn default() -> Self {
        KeyWriter::new()
    }
}

impl KeyWriter {
    pub fn new() -> KeyWriter {
        KeyWriter { hasher: blake3::Hasher::new() }
    }

    fn tag(&mut self, tag: u8) {
        self.hasher.update(&[tag]);
    }

    pub fn str(&mut self, s: &str) {
        self.tag(b's');
        self.hasher.update(&(s.len() as u64).to_le_bytes());
        self.hasher.update(s.as_bytes());
    }

    pub fn u64(&mut self, x: u64) {
        self.tag(b'u');
        self.hasher.update(&x.to_le_bytes());
    }

    /// Floats by bit pattern, with -0.0 and NaN payloads normalised.
    pub fn f64(&mut self, x: f64) {
        self.tag(b'f');
        let x = if x == 0.0 {
            0.0
        } else if x.is_nan() {
            f64::NAN
        } else {
            x
        };
        self.hasher.update(&x.to_bits().to_le_bytes());
    }

    pub fn bool(&mut self, b: bool) {
        self.tag(if b { b'T' } else { b'F' });
    }

    pub fn seq(&mut self, len: usize) {
        self.tag(b'[');
        self.hasher.update(&(len as u64).to_le_bytes());
    }

    pub fn digest(&mut self, d: &Digest) {
        self.tag(b'd');
        self.hasher.update(&d.0);
    }

    pub fn finish(&self) -> Digest {
        Digest(*self.hasher.finalize().as_bytes())
    }
}

/// Something that contributes to a cache key, deterministically and portably.
pub trait CacheKey {
    fn write_key(&self, w: &mut KeyWriter);

    fn cache_key(&self) -> Digest {
        let mut w = KeyWriter::new();
        self.write_key(&mut w);
        w.finish()
    }
}

impl CacheKey for str {
    fn write_key(&self, w: &mut KeyWriter) {
        w.str(self);
    }
}

impl CacheKey for String {
    fn write_key(&self, w: &mut KeyWriter) {
        w.str(self);
    }
}

impl CacheKey for u64 {
    fn write_key(&self, w: &mut KeyWriter) {
        w.u64(*self);
    }
}

impl CacheKey for Digest {
    fn write_key(&self, w: &mut KeyWriter) {
        w.digest(self);
    }
}

impl<T: CacheKey> CacheKey for [T] {
    fn write_key(&self, w: &mut KeyWriter) {
        w.seq(self.len());
        for item in self {
            item.write_key(w);
        }
    }
}

impl<T: CacheKey> CacheKey for Vec<T> {
    fn write_key(&self, w: &mut KeyWriter) {
        self.as_slice().write_key(w);
    }
}

impl<A: CacheKey, B: CacheKey> CacheKey for (A, B) {
    fn write_key(&self, w: &mut KeyWriter) {
        self.0.write_key(w);
        self.1.write_key(w);
    }
}

/// JSON parameters in canonical form: object keys sorted, numbers as f64 or integers.
impl CacheKey for serde_json::Value {
    fn write_key(&self, w: &mut KeyWriter) {
        use serde_json::Value;
        match self {
            Value::Null => w.tag(b'n'),
            Value::Bool(b) => w.bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_f64()) {
                (Some(u), _) => w.u64(u),
                (None, Some(f)) => w.f64(f),
                (None, None) => w.str(&n.to_string()),
            },
            Value::String(s) => w.str(s),
            Value::Array(items) => {
                w.seq(items.len());
                for item in items {
                    item.write_key(w);
                }
            }
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                w.tag(b'{');
                w.seq(keys.len());
                for key in keys {
                    w.str(key);
                    map[key].write_key(w);
                }
            }
        }
    }
}

/// Hashes a file's content, streaming (corpora can be large). Read through a small buffer, not
/// mapped: every mapped page of a multi-GB shard would count in the process's resident memory.
pub fn hash_file(path: &std::path::Path) -> std::io::Result<Digest> {
    hash_file_reporting(path, &|_| {})
}

/// [`hash_file`], telling `read` the size of each block as it is hashed (a progress bar's feed).
pub fn hash_file_reporting(path: &std::path::Path, read: &dyn Fn(u64)) -> std::io::Result<Digest> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    // The block blake3's own `update_reader` uses.
    let mut block = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut block) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&block[..n]);
                read(n as u64);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Digest(*hasher.finalize().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keys_ignore_object_order_but_not_values() {
        let a: serde_json::Value = serde_json::from_str(r#"{"a": 1, "b": [0.5, "x"]}"#).unwrap_or_default();
        let b: serde_json::Value = serde_json::from_str(r#"{"b": [0.5, "x"], "a": 1}"#).unwrap_or_default();
        let c: serde_json::Value = serde_json::from_str(r#"{"b": [0.5, "y"], "a": 1}"#).unwrap_or_default();
        assert_eq!(a.cache_key(), b.cache_key());
        assert_ne!(a.cache_key(), c.cache_key());
        // Length prefixes keep ["ab"] and ["a", "b"] apart.
        assert_ne!(vec!["ab".to_string()].cache_key(), vec!["a".to_string(), "b".to_string()].cache_key());
    }

    #[test]
    fn a_file_hashed_in_blocks_has_its_contents_digest_and_reports_every_byte() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        // Three and a half blocks: the last one short.
        let bytes: Vec<u8> = (0..(7u32 << 15)).map(|i| (i * 31 % 251) as u8).collect();
        std::fs::write(&path, &bytes).expect("write");
        let seen = std::cell::Cell::new(0u64);
        let d = hash_file_reporting(&path, &|n| seen.set(seen.get() + n)).expect("hash");
        assert_eq!(d, Digest::of_bytes(&bytes));
        assert_eq!(seen.get(), bytes.len() as u64);
    }

    #[test]
    fn digests_round_trip_through_hex() {
        let d = Digest::of_bytes(b"cptc");
        assert_eq!(Digest::parse(&d.hex()), Some(d));
        assert_eq!(Digest::parse("xyz"), None);
    }
}
