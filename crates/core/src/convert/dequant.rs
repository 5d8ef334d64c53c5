//! Dequantization of ggml tensor data (F32, F16, BF16, Q8_0, Q4_0, Q4_1) to f32, and the
//! conversion of f32 values to the bytes of the output dtype.

use half::{bf16, f16};
use rayon::prelude::*;

use super::OutDtype;
use super::gguf::{GgmlType, QK};

/// Dequantizes `data` (exactly `n_blocks * block_bytes` long, as checked by the parser) into f32.
///
/// Returns `None` when `data` is not a whole number of blocks; the parser rules that out, so
/// callers turn it into an internal error rather than trusting it blindly.
pub fn dequantize(ty: GgmlType, data: &[u8]) -> Option<Vec<f32>> {
    let (block_elems, block_bytes) = ty.block();
    if !data.len().is_multiple_of(block_bytes) {
        return None;
    }
    let n = data.len() / block_bytes * block_elems;
    let mut out = vec![0f32; n];
    // Parallel over chunks of blocks: big enough to amortise rayon's overhead, small enough to
    // balance the 49k-row embedding against the 576-element norms.
    const BLOCKS_PER_TASK: usize = 1024;
    out.par_chunks_mut(block_elems * BLOCKS_PER_TASK).zip(data.par_chunks(block_bytes * BLOCKS_PER_TASK)).for_each(
        |(dst, src)| {
            for (d, s) in dst.chunks_exact_mut(block_elems).zip(src.chunks_exact(block_bytes)) {
                dequantize_block(ty, s, d);
            }
        },
    );
    Some(out)
}

/// Dequantizes one block; `src` and `dst` have exactly the block's byte and element counts.
pub fn dequantize_block(ty: GgmlType, src: &[u8], dst: &mut [f32]) {
    match ty {
        GgmlType::F32 => {
            for (d, s) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *d = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
            }
        }
        GgmlType::F16 => {
            for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *d = f16::from_le_bytes([s[0], s[1]]).to_f32();
            }
        }
        GgmlType::Bf16 => {
            for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *d = bf16::from_le_bytes([s[0], s[1]]).to_f32();
            }
        }
        GgmlType::Q8_0 => {
            let Some((scale, qs)) = split_f16(src) else {
                return;
            };
            for (d, &q) in dst.iter_mut().zip(qs) {
                *d = scale * f32::from(q as i8);
            }
        }
        GgmlType::Q4_0 => {
            let Some((scale, qs)) = split_f16(src) else {
                return;
            };
            // Low nibbles hold elements 0..16, high nibbles 16..32 (ggml's `dequantize_row_q4_0`).
            let (lo, hi) = dst.split_at_mut(QK / 2);
            for ((l, h), &b) in lo.iter_mut().zip(hi.iter_mut()).zip(qs) {
                *l = scale * (f32::from(b & 0x0f) - 8.0);
                *h = scale * (f32::from(b >> 4) - 8.0);
            }
        }
        GgmlType::Q4_1 => {
            let Some((scale, rest)) = split_f16(src) else {
                return;
            };
            let Some((min, qs)) = split_f16(rest) else {
                return;
            };
            let (lo, hi) = dst.split_at_mut(QK / 2);
            for ((l, h), &b) in lo.iter_mut().zip(hi.iter_mut()).zip(qs) {
                *l = scale * f32::from(b & 0x0f) + min;
                *h = scale * f32::from(b >> 4) + min;
            }
        }
    }
}

/// Splits a leading little-endian f16 off a block.
fn split_f16(b: &[u8]) -> Option<(f32, &[u8])> {
    match b {
        [x, y, rest @ ..] => Some((f16::from_le_bytes([*x, *y]).to_f32(), rest)),
        _ => None,
    }
}

/// Encodes f32 values as little-endian bytes of `dtype` (round-to-nearest-even for f16/bf16).
pub fn encode(values: &[f32], dtype: OutDtype) -> Vec<u8> {
    let width = match dtype {
        OutDtype::F32 => 4,
        OutDtype::F16 | OutDtype::Bf16 => 2,
    };
    let mut out = vec![0u8; values.len() * width];
    // Plain loops over pre-sized chunks: much faster than `flat_map(..).collect()` in unoptimized
    // (dev-profile) builds, where this is the hottest loop of an import.
    const PER_TASK: usize = 1 << 16;
    out.par_chunks_mut(PER_TASK * width).zip(values.par_chunks(PER_TASK)).for_each(|(dst, src)| match dtype {
        OutDtype::F32 => {
            for (d, v) in dst.chunks_exact_mut(4).zip(src) {
                d.copy_from_slice(&v.to_le_bytes());
            }
        }
        OutDtype::F16 => {
            for (d, v) in dst.chunks_exact_mut(2).zip(src) {
                d.copy_from_slice(&f16::from_f32(*v).to_le_bytes());
            }
        }
        OutDtype::Bf16 => {
            for (d, v) in dst.chunks_exact_mut(2).zip(src) {
                d.copy_from_slice(&bf16::from_f32(*v).to_le_bytes());
            }
        }
    });
    out
}
