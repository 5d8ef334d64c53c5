//! GGUF v3 reader: header, metadata key/values, tensor infos and the aligned data section.
//!
//! Every length or count read from the file is checked against the bytes that remain before
//! anything is allocated, so a corrupt or hostile file yields a [`ConvertError`], never a panic or
//! an out-of-memory abort.

use std::collections::HashSet;

use super::error::ConvertError;

/// The four bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// The only version this reader accepts (v1 used 32-bit counts; v2 is a draft of v3).
pub const GGUF_VERSION: u32 = 3;
/// Data-section alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's `GGML_MAX_DIMS`: more dimensions than this cannot come from llama.cpp.
pub const MAX_DIMS: u32 = 4;
/// Elements per quantization block of the Q4_0 / Q4_1 / Q8_0 formats.
pub const QK: usize = 32;

/// ggml tensor element types this converter can dequantize.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Bf16,
    Q4_0,
    Q4_1,
    Q8_0,
}

impl GgmlType {
    /// Maps a ggml type id; `Err` carries the type's name (for the error message).
    pub fn from_id(id: u32) -> Result<Self, String> {
        match id {
            0 => Ok(Self::F32),
            1 => Ok(Self::F16),
            2 => Ok(Self::Q4_0),
            3 => Ok(Self::Q4_1),
            8 => Ok(Self::Q8_0),
            30 => Ok(Self::Bf16),
            other => Err(ggml_type_name(other).to_owned()),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "F32",
            Self::F16 => "F16",
            Self::Bf16 => "BF16",
            Self::Q4_0 => "Q4_0",
            Self::Q4_1 => "Q4_1",
            Self::Q8_0 => "Q8_0",
        }
    }

    /// (elements per block, bytes per block).
    pub fn block(self) -> (usize, usize) {
        match self {
            Self::F32 => (1, 4),
            Self::F16 | Self::Bf16 => (1, 2),
            Self::Q4_0 => (QK, 2 + QK / 2),
            Self::Q4_1 => (QK, 2 + 2 + QK / 2),
            Self::Q8_0 => (QK, 2 + QK),
        }
    }
}

/// ggml's names for its type ids (ggml.h `enum ggml_type`), so errors can say "Q5_K" not "13".
pub fn ggml_type_name(id: u32) -> &'static str {
    match id {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        6 => "Q5_0",
        7 => "Q5_1",
        8 => "Q8_0",
        9 => "Q8_1",
        10 => "Q2_K",
        11 => "Q3_K",
        12 => "Q4_K",
        13 => "Q5_K",
        14 => "Q6_K",
        15 => "Q8_K",
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        30 => "BF16",
        34 => "TQ1_0",
        35 => "TQ2_0",
        39 => "MXFP4",
        _ => "unknown",
    }
}

/// A metadata value (GGUF `gguf_metadata_value_type`).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    Array(Vec<Value>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    /// Human name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::U8(_) => "uint8",
            Self::I8(_) => "int8",
            Self::U16(_) => "uint16",
            Self::I16(_) => "int16",
            Self::U32(_) => "uint32",
            Self::I32(_) => "int32",
            Self::F32(_) => "float32",
            Self::Bool(_) => "bool",
            Self::Str(_) => "string",
            Self::Array(_) => "array",
            Self::U64(_) => "uint64",
            Self::I64(_) => "int64",
            Self::F64(_) => "float64",
        }
    }

    /// Any non-negative integer; writers differ on u32/i32/u64 for the same key.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::U8(v) => Some(v.into()),
            Self::U16(v) => Some(v.into()),
            Self::U32(v) => Some(v.into()),
            Self::U64(v) => Some(v),
            Self::I8(v) => u64::try_from(v).ok(),
            Self::I16(v) => u64::try_from(v).ok(),
            Self::I32(v) => u64::try_from(v).ok(),
            Self::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// A float, widened through its shortest decimal form so that an f32 `1e-5` becomes the f64
    /// `1e-5` (not `9.999999747378752e-6`) in config.json.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::F32(v) => format!("{v}").parse().ok(),
            Self::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Self::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Self::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// One entry of the tensor-info table.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the fastest-varying (columns); the HF shape is the reverse.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Byte offset inside the data section.
    pub offset: u64,
    pub n_elements: u64,
    pub n_bytes: u64,
}

impl TensorInfo {
    /// Shape in row-major (PyTorch / safetensors) order.
    pub fn hf_shape(&self) -> Vec<u64> {
        self.dims.iter().rev().copied().collect()
    }
}

/// A parsed GGUF file borrowing its tensor bytes from the input buffer.
#[derive(Debug)]
pub struct Gguf<'a> {
    pub version: u32,
    pub alignment: u64,
    /// Metadata in file order.
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<TensorInfo>,
    /// Offset of the data section in the file.
    pub data_offset: u64,
    data: &'a [u8],
}

impl<'a> Gguf<'a> {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The raw bytes of a tensor (bounds were checked by [`parse_gguf`]).
    pub fn tensor_data(&self, info: &TensorInfo) -> Result<&'a [u8], ConvertError> {
        let start = usize::try_from(info.offset).ok();
        let len = usize::try_from(info.n_bytes).ok();
        start.zip(len).and_then(|(s, l)| self.data.get(s..s.checked_add(l)?)).ok_or_else(|| {
            ConvertError::TruncatedTensor {
                tensor: info.name.clone(),
                start: info.offset,
                end: info.offset.saturating_add(info.n_bytes),
                available: self.data.len() as u64,
            }
        })
    }
}

/// Parses a whole GGUF v3 file held in memory.
pub fn parse_gguf(bytes: &[u8]) -> Result<Gguf<'_>, ConvertError> {
    parse(bytes, true)
}

/// The header of a GGUF file: metadata and tensor infos, without the weights.
#[derive(Debug)]
pub struct GgufHeader {
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<TensorInfo>,
}

impl GgufHeader {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// Reads only the header of the GGUF file at `path` (planning needs its shapes, not its
/// weights): a growing prefix of the file until the header parses.
pub fn read_gguf_header(path: &std::path::Path) -> Result<GgufHeader, ConvertError> {
    use std::io::Read as _;
    let io = |source| ConvertError::io("read", path, source);
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut reader = std::io::BufReader::new(file);
    let mut bytes = Vec::new();
    let mut want: u64 = 1 << 20;
    loop {
        let more = want.min(size).saturating_sub(bytes.len() as u64);
        (&mut reader).take(more).read_to_end(&mut bytes).map_err(io)?;
        let whole = bytes.len() as u64 >= size;
        match parse(&bytes, whole) {
            Ok(g) => return Ok(GgufHeader { metadata: g.metadata, tensors: g.tensors }),
            Err(ConvertError::Truncated { .. } | ConvertError::ImplausibleCount { .. }) if !whole => want *= 4,
            Err(e) => return Err(e),
        }
    }
}

/// Parses a GGUF v3 file, or its prefix when `check_data` is false (the tensor data's bounds
/// are then not checked).
fn parse(bytes: &[u8], check_data: bool) -> Result<Gguf<'_>, ConvertError> {
    let mut r = Reader { buf: bytes, pos: 0 };

    let magic = r.take(4, "the magic")?;
    if magic != GGUF_MAGIC {
        return Err(ConvertError::BadMagic { found: describe_magic(magic) });
    }
    let version = r.u32("the version")?;
    if version != GGUF_VERSION {
        return Err(ConvertError::UnsupportedVersion { version });
    }
    let n_tensors = r.u64("the tensor count")?;
    let n_kv = r.u64("the metadata count")?;
    // Smallest possible entries: a tensor info is name length (8) + n_dims (4) + type (4) +
    // offset (8); a key/value is key length (8) + type (4) + a one-byte value.
    let n_kv = r.count(n_kv, 8 + 4 + 1, "metadata entries", 16)?;
    let n_tensors = r.count(n_tensors, 8 + 4 + 4 + 8, "tensors", 8)?;

    let mut metadata: Vec<(String, Value)> = Vec::with_capacity(n_kv);
    let mut seen_keys = HashSet::with_capacity(n_kv);
    for i in 0..n_kv {
        let at = r.pos;
        let key = r.string(&format!("the key of metadata entry {i}"))?;
        if !seen_keys.insert(key.clone()) {
            return Err(ConvertError::malformed(at, format!("metadata key `{key}` appears twice")));
        }
        let ty = r.u32(&format!("the type of metadata `{key}`"))?;
        let value = r.value(ty, &key, 0)?;
        metadata.push((key, value));
    }

    let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some((_, v)) => match v.as_u64() {
            Some(a) if a.is_power_of_two() => a,
            _ => {
                return Err(ConvertError::MetadataType {
                    key: "general.alignment".into(),
                    expected: "a power of two",
                    found: format!("{v:?}"),
                });
            }
        },
    };

    let mut tensors = Vec::with_capacity(n_tensors);
    let mut seen_names = HashSet::with_capacity(n_tensors);
    for i in 0..n_tensors {
        let at = r.pos;
        let name = r.string(&format!("the name of tensor {i}"))?;
        if !seen_names.insert(name.clone()) {
            return Err(ConvertError::malformed(at, format!("tensor `{name}` appears twice")));
        }
        let n_dims = r.u32(&format!("the dimension count of tensor `{name}`"))?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(ConvertError::malformed(
                at,
                format!("tensor `{name}` has {n_dims} dimensions (1..={MAX_DIMS} allowed)"),
            ));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for d in 0..n_dims {
            dims.push(r.u64(&format!("dimension {d} of tensor `{name}`"))?);
        }
        let type_id = r.u32(&format!("the type of tensor `{name}`"))?;
        let offset = r.u64(&format!("the data offset of tensor `{name}`"))?;
        let ty = GgmlType::from_id(type_id).map_err(|type_name| ConvertError::UnsupportedTensorType {
            tensor: name.clone(),
            type_name,
            type_id,
        })?;
        let (n_elements, n_bytes) = tensor_size(&name, &dims, ty, at)?;
        if offset % alignment != 0 {
            return Err(ConvertError::malformed(
                at,
                format!("tensor `{name}` starts at data offset {offset}, not a multiple of the alignment {alignment}"),
            ));
        }
        tensors.push(TensorInfo { name, dims, ty, offset, n_elements, n_bytes });
    }

    // The data section starts at the next multiple of the alignment; padding may be cut short
    // only if no tensor needs data.
    let data_offset =
        align_up(r.pos as u64, alignment).ok_or_else(|| ConvertError::malformed(r.pos, "alignment overflows"))?;
    let data = usize::try_from(data_offset).ok().and_then(|s| bytes.get(s..)).unwrap_or(&[]);
    for t in tensors.iter().filter(|_| check_data) {
        let end = t.offset.saturating_add(t.n_bytes);
        if end > data.len() as u64 {
            return Err(ConvertError::TruncatedTensor {
                tensor: t.name.clone(),
                start: t.offset,
                end,
                available: data.len() as u64,
            });
        }
    }

    Ok(Gguf { version, alignment, metadata, tensors, data_offset, data })
}

/// Element count and byte size of a tensor, refusing overflows and partial blocks.
fn tensor_size(name: &str, dims: &[u64], ty: GgmlType, at: usize) -> Result<(u64, u64), ConvertError> {
    let mut n: u64 = 1;
    for &d in dims {
        n = n.checked_mul(d).ok_or_else(|| {
            ConvertError::malformed(at, format!("tensor `{name}` has an element count that overflows: {dims:?}"))
        })?;
    }
    let (block_elems, block_bytes) = ty.block();
    let row = dims.first().copied().unwrap_or(1);
    if row % block_elems as u64 != 0 {
        return Err(ConvertError::malformed(
            at,
            format!(
                "tensor `{name}` has rows of {row} elements, not a multiple of the {} block size {block_elems}",
                ty.name()
            ),
        ));
    }
    let bytes = (n / block_elems as u64)
        .checked_mul(block_bytes as u64)
        .ok_or_else(|| ConvertError::malformed(at, format!("tensor `{name}` has a byte size that overflows")))?;
    Ok((n, bytes))
}

fn align_up(x: u64, a: u64) -> Option<u64> {
    Some(x.checked_add(a - 1)? / a * a)
}

/// Shows the first bytes both as text (when printable) and hex.
fn describe_magic(b: &[u8]) -> String {
    let hex: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
    if b.iter().all(|c| c.is_ascii_graphic()) {
        format!("`{}` ({})", String::from_utf8_lossy(b), hex.join(" "))
    } else {
        format!("bytes {}", hex.join(" "))
    }
}

/// A bounds-checked little-endian cursor.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// Nested arrays deeper than this are refused (llama.cpp writes at most one level) to bound
/// recursion.
const MAX_ARRAY_NESTING: u32 = 4;

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ConvertError> {
        let slice = self.pos.checked_add(n).and_then(|end| self.buf.get(self.pos..end)).ok_or_else(|| {
            ConvertError::Truncated {
                what: what.to_owned(),
                offset: self.pos as u64,
                needed: n as u64,
                available: self.remaining() as u64,
            }
        })?;
        self.pos += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ConvertError> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u8(&mut self, what: &str) -> Result<u8, ConvertError> {
        Ok(self.array::<1>(what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, ConvertError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    fn u32(&mut self, what: &str) -> Result<u32, ConvertError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64, ConvertError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// Validates a count against the remaining bytes (each item needs at least `min_size`),
    /// reporting the count's own offset (`back` bytes before the cursor).
    fn count(&self, count: u64, min_size: u64, what: &'static str, back: usize) -> Result<usize, ConvertError> {
        let available = self.remaining() as u64;
        match count.checked_mul(min_size) {
            Some(need) if need <= available => {
                usize::try_from(count).map_err(|_| ConvertError::malformed(self.pos, "count overflows"))
            }
            _ => Err(ConvertError::ImplausibleCount {
                what,
                count,
                offset: self.pos.saturating_sub(back) as u64,
                available,
            }),
        }
    }

    fn string(&mut self, what: &str) -> Result<String, ConvertError> {
        let at = self.pos;
        let len = self.u64(what)?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|e| ConvertError::malformed(at, format!("{what} is not UTF-8: {e}")))
    }

    fn value(&mut self, ty: u32, key: &str, depth: u32) -> Result<Value, ConvertError> {
        let what = format!("the value of metadata `{key}`");
        let at = self.pos;
        Ok(match ty {
            0 => Value::U8(self.u8(&what)?),
            1 => Value::I8(self.u8(&what)? as i8),
            2 => Value::U16(self.u16(&what)?),
            3 => Value::I16(self.u16(&what)? as i16),
            4 => Value::U32(self.u32(&what)?),
            5 => Value::I32(self.u32(&what)? as i32),
            6 => Value::F32(f32::from_bits(self.u32(&what)?)),
            7 => match self.u8(&what)? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => {
                    return Err(ConvertError::malformed(at, format!("metadata `{key}` has bool byte {b}")));
                }
            },
            8 => Value::Str(self.string(&what)?),
            9 => {
                if depth >= MAX_ARRAY_NESTING {
                    return Err(ConvertError::malformed(at, format!("metadata `{key}` nests arrays too deeply")));
                }
                let elem_ty = self.u32(&what)?;
                let len = self.u64(&what)?;
                let min = match elem_ty {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    t => {
                        return Err(ConvertError::malformed(
                            at,
                            format!("metadata `{key}` is an array of unknown type {t}"),
                        ));
                    }
                };
                let len = self.count(len, min, "array elements", 8)?;
                let mut items = Vec::with_capacity(len);
                for _ in 0..len {
                    items.push(self.value(elem_ty, key, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64(&what)?),
            11 => Value::I64(self.u64(&what)? as i64),
            12 => Value::F64(f64::from_bits(self.u64(&what)?)),
            t => {
                return Err(ConvertError::malformed(at, format!("metadata `{key}` has unknown value type {t}")));
            }
        })
    }
}
