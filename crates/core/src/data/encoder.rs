//! The text encoder behind tokenization: the `tokenizers` 1.0 engine where it loads, the 0.23
//! `Tokenizer` as the reference it is checked against and the fallback where it does not.
//!
//! The 1.0 release candidate encodes 10-60x faster than 0.23 but is a reduced, read-only API,
//! and it refuses byte-level vocabularies that lack a token for some byte (SmolLM2's GGUF
//! vocabulary does). 0.23 silently drops such bytes. So for those vocabularies the fast engine
//! gets one *sentinel* id per missing byte, above every real id; a document whose ids contain a
//! sentinel is encoded again by the reference, and keeps exactly what 0.23 gives. Every other
//! document is encoded once, by the fast engine, and a deterministic sample of them is encoded by
//! both and compared (a long one by its first [`CHECK_BYTES`]; see [`Encoder::check_sample`]): a
//! disagreement is an error, never a silent change.
//!
//! Both engines encode whole documents: the truncation and padding a `tokenizer.json` may carry
//! (saved fine-tunes often set `max_length`) are for model inputs, not for a corpus, and are off.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use tokenizers::Tokenizer;
use tokenizers_fast::pipeline::{EncodeOptions, Override, PipelineToken, PipelineTokenizer};

use super::error::DataError;

/// Which engine encodes, and why the fast one does not where it does not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineInfo {
    /// `tokenizers 1.0.0-rc.3` or `tokenizers 0.23`.
    pub engine: String,
    /// Bytes the vocabulary has no token for (documents holding them go to the reference).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_bytes: Vec<u8>,
    /// Why the fast engine is not used, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
}

/// Texts of a corpus always cross-checked against the reference, before sampling starts.
pub const CHECK_FIRST: u64 = 4;
/// Longest text (its prefix, beyond) a cross-check encodes with the reference.
pub const CHECK_BYTES: usize = 4 << 10;

/// Token ids in the fast engine's own type (a `u32` each, `repr(transparent)`), so the engine
/// appends straight into a caller's buffer; read as `&[u32]`. Copying every id out of a
/// per-thread scratch buffer took 0.7% of the tokenize stage's CPU samples.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ids(Vec<PipelineToken>);

impl Ids {
    pub fn new() -> Self {
        Ids(Vec::new())
    }

    pub fn with_capacity(n: usize) -> Self {
        Ids(Vec::with_capacity(n))
    }

    pub fn push(&mut self, id: u32) {
        self.0.push(PipelineToken::from(id));
    }

    pub fn truncate(&mut self, len: usize) {
        self.0.truncate(len);
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn into_vec(self) -> Vec<u32> {
        self.0.into_iter().map(PipelineToken::id).collect()
    }
}

impl std::ops::Deref for Ids {
    type Target = [u32];

    fn deref(&self) -> &[u32] {
        PipelineToken::cast_slice(&self.0)
    }
}

impl Extend<u32> for Ids {
    fn extend<I: IntoIterator<Item = u32>>(&mut self, ids: I) {
        self.0.extend(ids.into_iter().map(PipelineToken::from));
    }
}

/// The tokenizers a process has loaded, by content: the model stage's check and every tokenize
/// stage of a recipe read the same `tokenizer.json` (copies of it in the store), and Qwen3's
/// takes about 0.7 s to load, Llama 3's about as long. The last [`Loaded::KEPT`] contents asked
/// for are kept, each loaded once: a stage asking while another loads the same content waits
/// for that load. Each caller's encoder names its own path.
pub struct Loaded(Mutex<Vec<(blake3::Hash, Slot)>>);

/// One content's encoder, `None` until loaded (its lock is held while it loads).
type Slot = Arc<Mutex<Option<Encoder>>>;

impl Loaded {
    /// A recipe's base tokenizer and the vocabulary built on it.
    const KEPT: usize = 2;

    pub const fn new() -> Self {
        Loaded(Mutex::new(Vec::new()))
    }

    /// The encoder of the `tokenizer.json` at `path`: loaded before (from any path) or now.
    pub fn get(&self, path: &Path) -> Result<Encoder, DataError> {
        let text = read_tokenizer(path)?;
        let digest = blake3::hash(text.as_bytes());
        let slot = {
            let mut slots = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            // The content asked for goes last: the first one is the least recently asked for.
            let slot = match slots.iter().position(|(d, _)| *d == digest) {
                Some(i) => slots.remove(i).1,
                None => Arc::new(Mutex::new(None)),
            };
            slots.push((digest, slot.clone()));
            if slots.len() > Self::KEPT {
                slots.remove(0);
            }
            slot
        };
        let mut held = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(known) = held.as_ref() {
            return Ok(Encoder { path: path.to_path_buf(), ..known.clone() });
        }
        let encoder = Encoder::load_text(path, &text)?;
        *held = Some(encoder.clone());
        Ok(encoder)
    }

    /// Lets go of every encoder kept (those in use stay alive with their users).
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

impl Default for Loaded {
    fn default() -> Self {
        Self::new()
    }
}

/// The process' tokenizers, behind [`Encoder::shared`].
static LOADED: Loaded = Loaded::new();

/// Lets go of the tokenizers [`Encoder::shared`] keeps: before a training or evaluation stage,
/// which runs for a long while in another process and needs none of them here.
pub fn release_shared() {
    LOADED.clear();
}

/// The text of the `tokenizer.json` at `path`.
fn read_tokenizer(path: &Path) -> Result<String, DataError> {
    std::fs::read_to_string(path).map_err(|e| DataError::Tokenizer { path: path.to_path_buf(), message: e.to_string() })
}

/// The name of the fast engine, as stats and reports show it.
pub const FAST_ENGINE: &str = "tokenizers 1.0.0-rc.3";
/// The name of the reference engine.
pub const REFERENCE_ENGINE: &str = "tokenizers 0.23";

struct Fast {
    tok: PipelineTokenizer,
    /// Ids from here up are sentinels for bytes missing from the vocabulary.
    sentinel_from: u32,
    missing_bytes: Vec<u8>,
}

/// A loaded `tokenizer.json`: the reference `Tokenizer` and, where it loads, the fast engine.
/// The engines are shared: a clone costs two reference counts, not a second load.
#[derive(Clone)]
pub struct Encoder {
    path: PathBuf,
    reference: Arc<Tokenizer>,
    fast: Option<Arc<Fast>>,
    fallback_reason: Option<String>,
    /// [`super::tokenize::vocab_size`] of the reference, worked out once.
    vocab_size: u64,
    /// [`super::tokenize::unencodable_bytes`] of the reference, once asked for: building it
    /// serializes the whole model, too slow to repeat per file.
    unencodable: std::sync::OnceLock<Option<[bool; 256]>>,
}

/// How a document was encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// By the fast engine alone.
    Fast,
    /// By the reference: no fast engine, or the text holds a byte the vocabulary lacks.
    Reference,
}

impl Encoder {
    /// Loads `path` with both engines; the fast one is optional (its refusal is recorded).
    ///
    /// The two engines load side by side (each takes 0.1-0.2 s for a 50k vocabulary, on the
    /// critical path of every tokenize stage), and the reference's unencodable bytes are worked
    /// out beside the fast engine's build.
    pub fn load(path: &Path) -> Result<Self, DataError> {
        let text = read_tokenizer(path)?;
        Self::load_text(path, &text)
    }

    /// [`load`](Self::load), once per process for each content (see [`Loaded`]).
    pub fn shared(path: &Path) -> Result<Self, DataError> {
        LOADED.get(path)
    }

    /// Both engines from the text of the `tokenizer.json` at `path` (see [`load`](Self::load)).
    fn load_text(path: &Path, text: &str) -> Result<Self, DataError> {
        let bad = |message: String| DataError::Tokenizer { path: path.to_path_buf(), message };
        let (reference, fast) = rayon::join(
            || {
                let reference = whole_documents(text.parse().map_err(|e: tokenizers::Error| bad(e.to_string()))?);
                let unencodable = super::tokenize::unencodable_bytes(&reference);
                Ok::<_, DataError>((reference, unencodable))
            },
            || unpanicked(|| prepare_fast(text)),
        );
        let (reference, unencodable) = reference?;
        let (fast, fallback_reason) = match fast.and_then(|prepared| unpanicked(|| prepared.finish(&reference))) {
            Ok(fast) => (Some(fast), None),
            Err(reason) => (None, Some(reason)),
        };
        let encoder = Encoder::new(path, reference, fast, fallback_reason);
        let _ = encoder.unencodable.set(unencodable);
        Ok(encoder)
    }

    /// Both engines from a `tokenizer.json` already read (`text`) and its reference `Tokenizer`;
    /// `path` only names it in messages.
    pub fn from_json(path: &Path, reference: Tokenizer, text: &str) -> Self {
        let reference = whole_documents(reference);
        let (fast, fallback_reason) = match load_fast(text, &reference) {
            Ok(fast) => (Some(fast), None),
            Err(reason) => (None, Some(reason)),
        };
        Encoder::new(path, reference, fast, fallback_reason)
    }

    /// Loads `path` with the reference engine only.
    pub fn reference_only(path: &Path) -> Result<Self, DataError> {
        let reference = Tokenizer::from_file(path)
            .map_err(|e| DataError::Tokenizer { path: path.to_path_buf(), message: e.to_string() })?;
        Ok(Encoder::new(path, whole_documents(reference), None, None))
    }

    fn new(path: &Path, reference: Tokenizer, fast: Option<Fast>, fallback_reason: Option<String>) -> Self {
        let vocab_size = super::tokenize::vocab_size(&reference);
        Encoder {
            path: path.to_path_buf(),
            reference: Arc::new(reference),
            fast: fast.map(Arc::new),
            fallback_reason,
            vocab_size,
            unencodable: std::sync::OnceLock::new(),
        }
    }

    /// The size of a table indexed by the reference's ids: its largest id + 1 (added tokens
    /// included), or its token count where that is larger.
    pub fn vocab_size(&self) -> u64 {
        self.vocab_size
    }

    /// The bytes no token of the vocabulary covers ([`super::tokenize::unencodable_bytes`]),
    /// worked out once.
    pub fn unencodable_bytes(&self) -> Option<[bool; 256]> {
        *self.unencodable.get_or_init(|| super::tokenize::unencodable_bytes(&self.reference))
    }

    /// The same tokenizer with the fast engine switched off (the reason is recorded).
    pub fn without_fast(mut self, reason: impl Into<String>) -> Self {
        self.fast = None;
        self.fallback_reason = Some(reason.into());
        self
    }

    /// A reference-only copy of this encoder (the reason is recorded), for when its fast engine
    /// disagreed; the file is not read again.
    pub fn reference_copy(&self, reason: impl Into<String>) -> Self {
        self.clone().without_fast(reason)
    }

    /// Whether the fast engine encodes (else every text goes to the reference).
    pub fn has_fast(&self) -> bool {
        self.fast.is_some()
    }

    /// The same reference with the fast engine of *another* tokenizer file: a deliberately
    /// wrong pairing, so tests can see the cross-check catch a disagreeing engine.
    #[doc(hidden)]
    pub fn with_fast_engine_of(mut self, other: &Path) -> Result<Self, DataError> {
        let other = Encoder::load(other)?;
        let reason = other.fallback_reason.unwrap_or_default();
        self.fast = Some(other.fast.ok_or(DataError::Tokenizer { path: other.path, message: reason })?);
        Ok(self)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The 0.23 tokenizer: vocabulary, special tokens, and the ids every engine must give.
    pub fn reference(&self) -> &Tokenizer {
        &self.reference
    }

    pub fn info(&self) -> EngineInfo {
        match &self.fast {
            Some(f) => EngineInfo {
                engine: FAST_ENGINE.to_string(),
                missing_bytes: f.missing_bytes.clone(),
                fallback_reason: None,
            },
            None => EngineInfo {
                engine: REFERENCE_ENGINE.to_string(),
                missing_bytes: Vec::new(),
                fallback_reason: self.fallback_reason.clone(),
            },
        }
    }

    /// Encodes `text`, appending its ids to `out`; says which engine's ids they are.
    pub fn encode_into(&self, text: &str, add_special_tokens: bool, out: &mut Ids) -> Result<Route, String> {
        if let Some(f) = &self.fast {
            let start = out.len();
            let opts = EncodeOptions {
                add_special_tokens,
                encode_special_tokens: false,
                padding: Override::Off,
                truncation: Override::Off,
            };
            f.tok.encode_into(text, &opts, &mut out.0).map_err(|e| e.to_string())?;
            if f.missing_bytes.is_empty() || out[start..].iter().all(|&id| id < f.sentinel_from) {
                return Ok(Route::Fast);
            }
            out.truncate(start);
        }
        out.extend(self.encode_reference(text, add_special_tokens)?);
        Ok(Route::Reference)
    }

    /// Whether the `index`-th text of a corpus is cross-checked when one in `every` is: the
    /// first [`CHECK_FIRST`] always (a systematic difference shows at once), then every
    /// `every`-th; never when `every` is 0.
    pub fn is_sampled(index: u64, every: u64) -> bool {
        every > 0 && (index < CHECK_FIRST || index.is_multiple_of(every))
    }

    /// Cross-checks one text the fast engine encoded as `fast_ids`: the reference encodes it (or
    /// its first [`CHECK_BYTES`], which both engines then encode, for a long text: the check
    /// costs at most that much of the slow engine). Returns where they first differ.
    pub fn check_sample(
        &self,
        text: &str,
        add_special_tokens: bool,
        fast_ids: &[u32],
    ) -> Result<Option<usize>, String> {
        if text.len() <= CHECK_BYTES {
            return Ok(first_difference(fast_ids, &self.encode_reference(text, add_special_tokens)?));
        }
        let mut cut = CHECK_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        self.check(&text[..cut], add_special_tokens)
    }

    /// The reference engine's ids for `text`.
    pub fn encode_reference(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, String> {
        let enc = self.reference.encode_fast(text, add_special_tokens).map_err(|e| e.to_string())?;
        Ok(enc.get_ids().to_vec())
    }

    /// Encodes the `index`-th text of a corpus into `out` and, when [`is_sampled`](Self::is_sampled)
    /// picks a fast-engine text, cross-checks it: returns the route, whether it was checked, and
    /// where the engines first differ.
    pub fn encode_checked(
        &self,
        text: &str,
        add_special_tokens: bool,
        index: u64,
        check_every: u64,
        out: &mut Ids,
    ) -> Result<(Route, bool, Option<usize>), String> {
        let start = out.len();
        let route = self.encode_into(text, add_special_tokens, out)?;
        let checked = route == Route::Fast && Self::is_sampled(index, check_every);
        let mismatch = if checked { self.check_sample(text, add_special_tokens, &out[start..])? } else { None };
        Ok((route, checked, mismatch))
    }

    /// Encodes `texts` in parallel (no special tokens added), cross-checking a sample as
    /// [`encode_checked`](Self::encode_checked) does; on a disagreement every text is encoded
    /// again by the reference.
    pub fn encode_all(&self, texts: &[&str], check_every: u64) -> Result<Vec<Vec<u32>>, String> {
        let encoded: Vec<(Vec<u32>, bool)> = texts
            .par_iter()
            .enumerate()
            .map(|(i, t)| {
                let mut ids = Ids::new();
                let (_, _, mismatch) = self.encode_checked(t, false, i as u64, check_every, &mut ids)?;
                Ok((ids.into_vec(), mismatch.is_none()))
            })
            .collect::<Result<_, String>>()?;
        if encoded.iter().all(|(_, agrees)| *agrees) {
            return Ok(encoded.into_iter().map(|(ids, _)| ids).collect());
        }
        texts.par_iter().map(|t| self.encode_reference(t, false)).collect()
    }

    /// Encodes `text` with both engines and returns the first position where they differ (the
    /// shorter length when one is a prefix of the other), or `None` when they agree. Always
    /// `None` without a fast engine.
    pub fn check(&self, text: &str, add_special_tokens: bool) -> Result<Option<usize>, String> {
        if self.fast.is_none() {
            return Ok(None);
        }
        let mut fast = Ids::new();
        self.encode_into(text, add_special_tokens, &mut fast)?;
        let reference = self.encode_reference(text, add_special_tokens)?;
        Ok(first_difference(&fast, &reference))
    }
}

/// The first index where `a` and `b` differ, or `None` when they are equal.
pub fn first_difference(a: &[u32], b: &[u32]) -> Option<usize> {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => Some(i),
        None if a.len() != b.len() => Some(a.len().min(b.len())),
        None => None,
    }
}

/// `build()`, with a panic of the release-candidate engine read as its refusal: the reference
/// then encodes, as for any tokenizer the fast engine does not take.
fn unpanicked<T>(build: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(build)).unwrap_or_else(|panic| {
        Err(format!("the fast engine panicked while loading: {}", crate::diag::panic_message(&*panic)))
    })
}

/// The fast engine for a `tokenizer.json`'s text, with sentinels for missing bytes; the reason
/// when it refuses.
fn load_fast(text: &str, reference: &Tokenizer) -> Result<Fast, String> {
    prepare_fast(text)?.finish(reference)
}

/// The fast engine as far as it can be built without the reference: built whole when the
/// vocabulary lacks no byte; else the canonical JSON waits for the reference's id bound, where
/// the sentinels start.
enum PreparedFast {
    Built(PipelineTokenizer),
    NeedsSentinels { json: Json, missing: Vec<u8> },
}

fn prepare_fast(text: &str) -> Result<PreparedFast, String> {
    let canonical = tokenizers_fast::canonicalize_str(text).map_err(|e| e.to_string())?;
    let json: Json = serde_json::from_str(&canonical).map_err(|e| e.to_string())?;
    let missing = missing_bytes(&json);
    if !missing.is_empty() {
        return Ok(PreparedFast::NeedsSentinels { json, missing });
    }
    let tok = tokenizers_fast::from_json(&canonical).map_err(|e| e.to_string())?;
    Ok(PreparedFast::Built(tok))
}

impl PreparedFast {
    fn finish(self, reference: &Tokenizer) -> Result<Fast, String> {
        match self {
            // No sentinel is ever given, so none is ever looked for.
            PreparedFast::Built(tok) => Ok(Fast { tok, sentinel_from: u32::MAX, missing_bytes: Vec::new() }),
            PreparedFast::NeedsSentinels { mut json, missing } => {
                let sentinel_from = sentinel_base(reference);
                add_sentinels(&mut json, &missing, sentinel_from);
                let tok = tokenizers_fast::from_json(&json.to_string()).map_err(|e| e.to_string())?;
                Ok(Fast { tok, sentinel_from, missing_bytes: missing })
            }
        }
    }
}

/// One past the largest id `tok` can give (model vocabulary and added tokens): the size of a
/// table indexed by id. Not `get_vocab_size`, which counts tokens and misses gaps in the ids.
pub fn id_bound(tok: &Tokenizer) -> u32 {
    tok.get_vocab(true).into_values().max().map_or(0, |m| m.saturating_add(1))
}

/// One past every id the reference knows: where sentinel ids start.
fn sentinel_base(reference: &Tokenizer) -> u32 {
    id_bound(reference).max(reference.get_vocab_size(true) as u32)
}

/// `tok` with the truncation and padding of its `tokenizer.json` switched off.
fn whole_documents(mut tok: Tokenizer) -> Tokenizer {
    tok.with_padding(None);
    // Switching truncation off cannot fail (only a stride check on new parameters can).
    let _ = tok.with_truncation(None);
    tok
}

/// The UTF-8-reachable bytes a byte-level BPE vocabulary (canonical JSON) has no token for;
/// none for other models.
fn missing_bytes(json: &Json) -> Vec<u8> {
    let Some(model) = json.get("model") else { return Vec::new() };
    let byte_level = model.get("byte_level").and_then(Json::as_bool).unwrap_or(false);
    let is_bpe = model.get("type").and_then(Json::as_str) == Some("BPE");
    let Some(vocab) = model.get("vocab").and_then(Json::as_object) else { return Vec::new() };
    if !(byte_level && is_bpe) {
        return Vec::new();
    }
    let chars = &*tokenizers_fast::utils::byte_level::BYTES_CHAR_LOOKUP;
    // Bytes that can occur in UTF-8 text: C0, C1 and F5..FF never do.
    let reachable = (0x00..=0xBFu8).chain(0xC2..=0xF4);
    reachable.filter(|&b| !vocab.contains_key(&chars[b as usize].to_string())).collect()
}

/// Gives each of the `missing` bytes a sentinel token (`sentinel_from + k`) in the vocabulary
/// of `json` (see [`missing_bytes`]).
fn add_sentinels(json: &mut Json, missing: &[u8], sentinel_from: u32) {
    let Some(vocab) = json.get_mut("model").and_then(|m| m.get_mut("vocab")).and_then(Json::as_object_mut) else {
        return;
    };
    let chars = &*tokenizers_fast::utils::byte_level::BYTES_CHAR_LOOKUP;
    for (k, &b) in missing.iter().enumerate() {
        vocab.insert(chars[b as usize].to_string(), Json::from(sentinel_from + k as u32));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpt2() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/tokenizers/gpt2/tokenizer.json")
    }

    fn same(a: &Encoder, b: &Encoder) -> bool {
        Arc::ptr_eq(&a.reference, &b.reference) && matches!((&a.fast, &b.fast), (Some(x), Some(y)) if Arc::ptr_eq(x, y))
    }

    #[test]
    fn a_tokenizer_is_loaded_once_per_content_whatever_its_path() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let text = std::fs::read_to_string(gpt2())?;
        let [a, b, c, d] = ["a", "b", "c", "d"].map(|n| dir.path().join(n).join("tokenizer.json"));
        for (path, body) in
            [(&a, text.clone()), (&b, text.clone()), (&c, format!("{text}\n")), (&d, format!("{text}\n\n"))]
        {
            std::fs::create_dir_all(path.parent().ok_or("no parent")?)?;
            std::fs::write(path, body)?;
        }
        let loaded = Loaded::new();
        let first = loaded.get(&a)?;
        let copy = loaded.get(&b)?;
        assert!(same(&first, &copy), "a copy of the file gives the engines already loaded");
        assert_eq!((first.path(), copy.path()), (a.as_path(), b.as_path()), "each names its own file");
        let other = loaded.get(&c)?;
        assert!(!same(&first, &other), "another content is loaded");
        // A third content pushes the first out: it is loaded again.
        loaded.get(&d)?;
        assert!(!same(&first, &loaded.get(&a)?));
        assert_eq!(copy.encode_reference("shared engines", false)?, first.encode_reference("shared engines", false)?);
        Ok(())
    }

    #[test]
    fn stages_asking_at_once_share_one_load_and_clear_lets_go() -> Result<(), Box<dyn std::error::Error>> {
        let loaded = Loaded::new();
        let path = gpt2();
        let (a, b) = std::thread::scope(|s| {
            let (a, b) = (s.spawn(|| loaded.get(&path)), s.spawn(|| loaded.get(&path)));
            (a.join(), b.join())
        });
        let (a, b) = (a.map_err(|_| "a load panicked")??, b.map_err(|_| "a load panicked")??);
        assert!(same(&a, &b), "the second asker waits for the first load");
        loaded.clear();
        assert!(!same(&a, &loaded.get(&path)?), "after clear, the content is loaded again");
        Ok(())
    }

    #[test]
    fn a_panic_of_the_fast_engine_is_its_refusal() {
        let refused: Result<(), String> = unpanicked(|| panic!("bad table"));
        assert_eq!(refused, Err("the fast engine panicked while loading: bad table".to_string()));
    }

    #[test]
    fn a_missing_tokenizer_names_its_path() {
        let missing = Path::new("/nonexistent/tokenizer.json");
        let got = Loaded::new().get(missing);
        assert!(matches!(&got, Err(DataError::Tokenizer { path, .. }) if path == missing), "{:?}", got.err());
    }
}
