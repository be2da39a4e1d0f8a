//! Logits to class maps, and tensors back to plain bytes.
//!
//! Two ways to a class map at the frame's resolution:
//! - [`class_map`]: argmax at the logits' resolution, then nearest upsampling of the ids. Cheap
//!   (argmax over the model-size map only): the recommended per-frame default for the element.
//! - [`class_map_bilinear`]: bilinear upsampling of the logits (`align_corners=False`), then
//!   argmax: smoother, more accurate class boundaries when the frame is larger than the model
//!   input, at the cost of interpolating K channels (on the CPU only along class edges). The
//!   bundle contract's own definition of the class map when `logits_stride > 1`
//!   (models/README.md; every shipped bundle has 1), so use it for such bundles, or where edge
//!   accuracy matters more than ~1 ms a keyframe.
//!
//! Both agree on all but the pixels along class edges: 0.84% of a 960x540 map from 360x480
//! ESPNet logits, for 0.8 ms (nearest) vs 1.8 ms (bilinear) on 2 Xeon cores (`tests/model.rs`
//! `timings`; the dense bilinear path took 6.5 ms on the earlier AMD machine).

use tch::{Device, Kind, Tensor};

use super::error::{ModelError, TchContext};

/// Logits `[1, K, h, w]` (K <= 256) to a uint8 class map `[out_h, out_w]` on the same device:
/// argmax over K at `h x w`, then nearest-neighbour upsampling with pixel centres aligned
/// (PIL's / `nearest-exact` rule, not torch's legacy `nearest`).
pub fn class_map(logits: &Tensor, out_h: u32, out_w: u32) -> Result<Tensor, ModelError> {
    check_logits(logits, "class_map")?;
    let ids = argmax_classes(logits, true)?;
    let ids = resize_nearest(&ids, out_h, out_w)?;
    ids.f_view([i64::from(out_h), i64::from(out_w)])
        .context("class map shape")
}

/// Logits `[1, K, h, w]` to a uint8 class map `[out_h, out_w]`: bilinear upsampling of the
/// logits (`align_corners=False`), then argmax. Equal to [`class_map`] when the sizes match.
///
/// On the CPU it interpolates only where it matters: an output pixel whose four surrounding
/// logit pixels share their argmax takes that class (it wins every convex combination of
/// them, ties to the lower id included), and only the others, along class edges, interpolate
/// all K logits. Same map as upsampling everything (up to float rounding between near-tied
/// logits: tested on real logits). 11 classes from 184x240 to 360x480, 2 cores: 1.5 ms
/// against 2.6 for the dense path, on a synthetic frame full of class edges.
pub fn class_map_bilinear(logits: &Tensor, out_h: u32, out_w: u32) -> Result<Tensor, ModelError> {
    check_logits(logits, "class_map_bilinear")?;
    let size = logits.size();
    let out = [i64::from(out_h), i64::from(out_w)];
    if size[2..] == out {
        return argmax_classes(logits, false)?
            .f_view(out)
            .context("class map shape");
    }
    let empty = size[2..].contains(&0) || out.contains(&0);
    if logits.device() == Device::Cpu && logits.kind() == Kind::Float && !empty {
        return class_map_bilinear_cpu(logits, out_h, out_w);
    }
    class_map_bilinear_dense(logits, out_h, out_w)
}

/// [`class_map_bilinear`] by upsampling all K channels: the definition, and the path for
/// devices other than the CPU.
fn class_map_bilinear_dense(logits: &Tensor, out_h: u32, out_w: u32) -> Result<Tensor, ModelError> {
    let out = [i64::from(out_h), i64::from(out_w)];
    let logits = logits
        .f_upsample_bilinear2d(out, false, None, None)
        .context("upsampling logits")?;
    argmax_classes(&logits, false)?
        .f_view(out)
        .context("class map shape")
}

/// One output coordinate of `upsample_bilinear2d(align_corners=False)` on an axis of `n`
/// input pixels: the two input indices and the weight of the second, as libtorch computes
/// them (source = scale * (i + 0.5) - 0.5, clamped at 0; scale = n / out in f32).
fn bilinear_axis(n: usize, out: usize) -> Vec<(usize, usize, f32)> {
    let scale = n as f32 / out as f32;
    (0..out)
        .map(|i| {
            let src = (scale * (i as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (src as usize).min(n - 1);
            let i1 = if i0 < n - 1 { i0 + 1 } else { i0 };
            (i0, i1, (src - i0 as f32).clamp(0.0, 1.0))
        })
        .collect()
}

fn class_map_bilinear_cpu(logits: &Tensor, out_h: u32, out_w: u32) -> Result<Tensor, ModelError> {
    let size = logits.size();
    let (k, h, w) = (size[1] as usize, size[2] as usize, size[3] as usize);
    let (oh, ow) = (out_h as usize, out_w as usize);
    let logits = logits.f_contiguous().context("contiguous logits")?;
    let low = to_vec_u8(&argmax_classes(&logits, false)?)?;
    // SAFETY: `logits` is a contiguous float32 CPU tensor of k*h*w elements, alive and not
    // written to while this borrow lasts (it is a local handle, used read-only below).
    let values: &[f32] =
        unsafe { std::slice::from_raw_parts(logits.data_ptr() as *const f32, k * h * w) };
    let plane = h * w;
    let cols = bilinear_axis(w, ow);
    let rows = bilinear_axis(h, oh);
    let mut map = vec![0u8; oh * ow];
    for (&(y0, y1, fy), out_row) in rows.iter().zip(map.chunks_exact_mut(ow.max(1))) {
        let (top, bottom) = (&low[y0 * w..(y0 + 1) * w], &low[y1 * w..(y1 + 1) * w]);
        for (&(x0, x1, fx), px) in cols.iter().zip(out_row.iter_mut()) {
            let id = top[x0];
            if id == top[x1] && id == bottom[x0] && id == bottom[x1] {
                *px = id;
                continue;
            }
            let (i00, i01, i10, i11) = (y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1);
            let (mut best, mut best_class) = (f32::NEG_INFINITY, 0usize);
            for (class, p) in values.chunks_exact(plane).enumerate() {
                let upper = (1.0 - fx) * p[i00] + fx * p[i01];
                let lower = (1.0 - fx) * p[i10] + fx * p[i11];
                let v = (1.0 - fy) * upper + fy * lower;
                if class == 0 || v > best {
                    (best, best_class) = (v, class);
                }
            }
            *px = best_class as u8;
        }
    }
    Tensor::f_from_slice(&map)
        .and_then(|t| t.f_view([i64::from(out_h), i64::from(out_w)]))
        .context("class map")
}

/// uint8 index of the largest logit over dim 1 (the first one on ties, as `argmax`).
///
/// Contiguous float logits on a CPU with AVX2 go through [`argmax_planes`]; anything else
/// through `max(dim)`, not `argmax`: on libtorch 2.13's CPU, `argmax` over the channel dim of
/// an NCHW tensor is ~6x slower (15 ms vs 2.3 ms for 11x360x480 on 2 threads).
fn argmax_classes(logits: &Tensor, keepdim: bool) -> Result<Tensor, ModelError> {
    let size = logits.size();
    if logits.device() == Device::Cpu
        && logits.kind() == Kind::Float
        && logits.is_contiguous()
        && size.len() == 4
        && size[0] == 1
        && (1..=256).contains(&size[1])
        && size[2] * size[3] > 0
    {
        let (k, plane) = (size[1] as usize, (size[2] * size[3]) as usize);
        // SAFETY: a contiguous float32 CPU tensor of k * plane elements, alive and only read
        // while this borrow lasts (a local handle).
        let values: &[f32] =
            unsafe { std::slice::from_raw_parts(logits.data_ptr() as *const f32, k * plane) };
        if let Some(ids) = argmax_planes_vectorised(values, k, plane) {
            let shape: &[i64] = if keepdim {
                &[1, 1, size[2], size[3]]
            } else {
                &[1, size[2], size[3]]
            };
            return Tensor::from_slice(&ids).f_view(shape).context("class ids");
        }
    }
    let (_, indices) = logits
        .f_max_dim(1, keepdim)
        .context("argmax over classes")?;
    indices.f_to_kind(Kind::Uint8).context("class ids to uint8")
}

/// Pixels per tile of [`argmax_planes`]: its running maxima and ids stay in L1.
const ARGMAX_TILE: usize = 1024;

/// [`argmax_planes`] where the CPU runs it vectorised (x86-64 with AVX2: 11x360x480 in 0.4 ms
/// on one core, against 0.9 ms for libtorch's `max(dim=1)` on 2, which walks each pixel's K
/// strided values). None elsewhere: compiled for baseline x86-64 the loop is scalar (3.4 ms),
/// so libtorch's kernel stays the path there.
fn argmax_planes_vectorised(values: &[f32], k: usize, plane: usize) -> Option<Vec<u8>> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return Some(unsafe { argmax_planes_avx2(values, k, plane) });
    }
    let _ = (values, k, plane);
    None
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn argmax_planes_avx2(values: &[f32], k: usize, plane: usize) -> Vec<u8> {
    argmax_planes(values, k, plane)
}

/// Per pixel, the index of the largest of `k` planes of `plane` values each (`values` holds the
/// planes one after the other): libtorch's `max(dim=1)` indices. Each tile of pixels is swept
/// plane by plane, a compare and two selects per value, which LLVM vectorises with AVX2.
/// Ties go to the lower index; a NaN wins over numbers and the first NaN stays, as in libtorch.
#[inline(always)]
fn argmax_planes(values: &[f32], k: usize, plane: usize) -> Vec<u8> {
    let mut ids = vec![0u8; plane];
    let mut best = [0f32; ARGMAX_TILE];
    let mut best_id = [0u32; ARGMAX_TILE];
    for start in (0..plane).step_by(ARGMAX_TILE) {
        let n = ARGMAX_TILE.min(plane - start);
        let (best, best_id) = (&mut best[..n], &mut best_id[..n]);
        best.copy_from_slice(&values[start..start + n]);
        best_id.fill(0);
        for c in 1..k {
            let row = &values[c * plane + start..c * plane + start + n];
            for ((b, id), &v) in best.iter_mut().zip(best_id.iter_mut()).zip(row) {
                let take = v > *b || (v.is_nan() && !b.is_nan());
                *b = if take { v } else { *b };
                *id = if take { c as u32 } else { *id };
            }
        }
        for (out, &id) in ids[start..start + n].iter_mut().zip(best_id.iter()) {
            *out = id as u8;
        }
    }
    ids
}

/// Nearest-neighbour resize of a `[N, C, h, w]` tensor of any kind (ids stay ids), centres
/// aligned: output pixel `i` reads input `floor((i + 0.5) * h / out_h)`.
pub fn resize_nearest(t: &Tensor, out_h: u32, out_w: u32) -> Result<Tensor, ModelError> {
    let size = t.size();
    let out = [i64::from(out_h), i64::from(out_w)];
    if size.len() != 4 {
        return Err(ModelError::Shape {
            what: "resize_nearest",
            problem: format!("expected [N, C, H, W], got {size:?}"),
        });
    }
    if size[2..] == out {
        return Ok(t.shallow_clone());
    }
    t.f_internal_upsample_nearest_exact2d(out, None, None)
        .context("nearest upsampling")
}

fn check_logits(logits: &Tensor, what: &'static str) -> Result<(), ModelError> {
    let size = logits.size();
    let problem = if size.len() != 4 || size[0] != 1 {
        format!("expected logits [1, K, H, W], got {size:?}")
    } else if size[1] > 256 {
        format!("{} classes do not fit a uint8 class map", size[1])
    } else if !logits.is_floating_point() {
        format!("expected floating-point logits, got {:?}", logits.kind())
    } else {
        return Ok(());
    };
    Err(ModelError::Shape { what, problem })
}

/// The bytes of a uint8 tensor, row-major (copied to the CPU, made contiguous if needed).
pub fn to_vec_u8(t: &Tensor) -> Result<Vec<u8>, ModelError> {
    let mut out = vec![0u8; t.numel()];
    copy_u8(t, &mut out)?;
    Ok(out)
}

/// Copies a uint8 tensor's elements, row-major, into `dst` (which must hold exactly that many),
/// e.g. the element's reusable class-map buffer.
pub fn copy_u8(t: &Tensor, dst: &mut [u8]) -> Result<(), ModelError> {
    if t.kind() != Kind::Uint8 {
        return Err(ModelError::Shape {
            what: "copy_u8",
            problem: format!("expected a uint8 tensor, got {:?}", t.kind()),
        });
    }
    let n = t.numel();
    if dst.len() != n {
        return Err(ModelError::Shape {
            what: "copy_u8",
            problem: format!("tensor has {n} elements, buffer holds {}", dst.len()),
        });
    }
    let t = t
        .f_to_device(Device::Cpu)
        .and_then(|t| t.f_contiguous())
        .context("tensor to CPU")?;
    t.f_copy_data_u8(dst, n).context("copying tensor bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Logits whose argmax is `map` (values are class ids, K classes).
    fn logits_for(map: &[u8], h: i64, w: i64, k: i64) -> Tensor {
        let ids = Tensor::from_slice(map)
            .to_kind(Kind::Int64)
            .view([1, 1, h, w]);
        let classes = Tensor::arange(k, (Kind::Int64, Device::Cpu)).view([1, k, 1, 1]);
        // Score = -|class - id|: maximal (0) at the id.
        -(classes - ids).abs().to_kind(Kind::Float)
    }

    #[test]
    fn class_map_at_the_same_size_is_the_argmax() {
        let map: Vec<u8> = (0..12).map(|i| (i * 7 % 5) as u8).collect();
        let logits = logits_for(&map, 3, 4, 5);
        assert_eq!(to_vec_u8(&class_map(&logits, 3, 4).unwrap()).unwrap(), map);
        assert_eq!(
            to_vec_u8(&class_map_bilinear(&logits, 3, 4).unwrap()).unwrap(),
            map
        );
    }

    #[test]
    fn the_tiled_argmax_gives_libtorchs_indices() {
        // Sizes around the tile, ties (repeated values), NaNs and infinities.
        for (k, h, w) in [
            (1, 3, 5),
            (11, 37, 53),
            (19, 1, 1024),
            (3, 2, 1025),
            (256, 2, 3),
        ] {
            let logits = Tensor::randint(4, [1, k, h, w], (Kind::Float, Device::Cpu));
            let flat = logits.view([-1]);
            let n = flat.size()[0];
            for (i, v) in [(0, f64::NAN), (n / 2, f64::INFINITY), (n - 1, f64::NAN)] {
                let _ = flat.get(i).fill_(v);
            }
            let (_, want) = logits.max_dim(1, false);
            let values = Vec::<f32>::try_from(&flat).unwrap();
            let plain = argmax_planes(&values, k as usize, (h * w) as usize);
            let plain = Tensor::from_slice(&plain)
                .to_kind(Kind::Int64)
                .view([1, h, w]);
            assert!(plain.equal(&want), "k={k} {h}x{w}: the loop differs");
            let got = argmax_classes(&logits, false).unwrap();
            assert_eq!(got.kind(), Kind::Uint8);
            assert!(
                got.to_kind(Kind::Int64).equal(&want),
                "k={k} {h}x{w}: differs from max(dim=1)"
            );
            let kept = argmax_classes(&logits, true).unwrap();
            assert_eq!(kept.size(), [1, 1, h, w]);
        }
    }

    #[test]
    fn ties_and_random_logits_follow_argmax() {
        let ties = Tensor::zeros([1, 4, 2, 3], (Kind::Float, Device::Cpu));
        assert_eq!(to_vec_u8(&class_map(&ties, 2, 3).unwrap()).unwrap(), [0; 6]);
        let logits = Tensor::randn([1, 19, 37, 53], (Kind::Float, Device::Cpu));
        let want = logits.argmax(1, false).to_kind(Kind::Uint8).view([37, 53]);
        assert!(class_map(&logits, 37, 53).unwrap().equal(&want));
    }

    #[test]
    fn nearest_upsampling_repeats_each_id() {
        let map = [0u8, 1, 2, 3];
        let logits = logits_for(&map, 2, 2, 4);
        let up = to_vec_u8(&class_map(&logits, 4, 6).unwrap()).unwrap();
        #[rustfmt::skip]
        let want = [
            0, 0, 0, 1, 1, 1,
            0, 0, 0, 1, 1, 1,
            2, 2, 2, 3, 3, 3,
            2, 2, 2, 3, 3, 3,
        ];
        assert_eq!(up, want);
        // Bilinear logits: same blocks here (each class's score falls off linearly).
        let bil = to_vec_u8(&class_map_bilinear(&logits, 4, 6).unwrap()).unwrap();
        assert_eq!(bil.len(), 24);
        assert_eq!((bil[0], bil[5], bil[18], bil[23]), (0, 1, 2, 3));
    }

    #[test]
    fn edge_only_bilinear_equals_upsampling_every_channel() {
        // Smooth random logits (a coarse field upsampled), so classes form regions with edges.
        let coarse = Tensor::randn([1, 11, 12, 16], (Kind::Float, Device::Cpu));
        let logits = coarse.upsample_bilinear2d([46, 60], false, None, None);
        for (oh, ow) in [(92u32, 120u32), (90, 120), (100, 77), (23, 30), (46, 61)] {
            let fast = to_vec_u8(&class_map_bilinear(&logits, oh, ow).unwrap()).unwrap();
            let dense = to_vec_u8(&class_map_bilinear_dense(&logits, oh, ow).unwrap()).unwrap();
            let differ = fast.iter().zip(&dense).filter(|(a, b)| a != b).count();
            assert!(
                differ * 10_000 <= fast.len(),
                "{ow}x{oh}: {differ} of {} pixels differ",
                fast.len()
            );
        }
        // Empty logits or an empty map: libtorch's error, not a panic.
        let none = Tensor::zeros([1, 3, 0, 4], (Kind::Float, Device::Cpu));
        assert!(class_map_bilinear(&none, 8, 8).is_err());
        assert!(class_map_bilinear(&logits, 0, 5).is_err());
        // Exact ties everywhere: the lower id, as argmax.
        let ties = Tensor::zeros([1, 4, 5, 6], (Kind::Float, Device::Cpu));
        assert_eq!(
            to_vec_u8(&class_map_bilinear(&ties, 9, 11).unwrap()).unwrap(),
            [0; 99]
        );
    }

    #[test]
    fn bad_tensors_are_errors() {
        let ints = Tensor::zeros([1, 3, 2, 2], (Kind::Int64, Device::Cpu));
        assert!(class_map(&ints, 2, 2).is_err());
        let flat = Tensor::zeros([3, 2, 2], (Kind::Float, Device::Cpu));
        assert!(class_map(&flat, 2, 2).is_err());
        assert!(to_vec_u8(&flat).is_err());
        let mut small = [0u8; 3];
        let bytes = Tensor::zeros([2, 2], (Kind::Uint8, Device::Cpu));
        assert!(copy_u8(&bytes, &mut small).is_err());
    }
}
