//! Warping keyframe tensors (logits, features, class maps) along a motion field's grid.
//!
//! The grid comes from [`crate::motion::MotionField::write_grid`]: `(x, y)` pairs normalised
//! to `[-1, 1]` with `align_corners=False`, each output position pointing at where its content
//! was in the keyframe. Sampling is `grid_sample` with border padding, as in
//! `models/vss_models/motion.py` and [`crate::motion::MotionField::warp_class_map`].

use tch::{Kind, Tensor};

use super::error::{ModelError, TchContext};

/// How `grid_sample` interpolates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WarpMode {
    /// For logits and features.
    Bilinear,
    /// For class maps (ids must not be blended); ties round half to even.
    Nearest,
}

impl WarpMode {
    /// `grid_sampler`'s interpolation code.
    fn code(self) -> i64 {
        match self {
            WarpMode::Bilinear => 0,
            WarpMode::Nearest => 1,
        }
    }
}

/// `grid_sampler`'s padding code for "border" (clamp to the edge).
const PADDING_BORDER: i64 = 1;

/// Warps `input` (`[N, C, h, w]`) with a grid of the same `h x w` (`h * w * 2` floats).
pub fn warp(input: &Tensor, grid: &[f32], mode: WarpMode) -> Result<Tensor, ModelError> {
    let size = input.size();
    if size.len() != 4 {
        return Err(ModelError::Shape {
            what: "warp",
            problem: format!("expected [N, C, H, W], got {size:?}"),
        });
    }
    warp_to(input, grid, (size[2] as usize, size[3] as usize), mode)
}

/// Warps `input` (`[N, C, h, w]`) with a grid of `grid_size = (height, width)` positions: the
/// output is `[N, C, height, width]` (e.g. model-size logits sampled at frame resolution).
/// Integer inputs (class maps) are sampled as floats and converted back, which is exact with
/// [`WarpMode::Nearest`] and rounds towards zero with [`WarpMode::Bilinear`].
pub fn warp_to(
    input: &Tensor,
    grid: &[f32],
    grid_size: (usize, usize),
    mode: WarpMode,
) -> Result<Tensor, ModelError> {
    let size = input.size();
    let (gh, gw) = grid_size;
    if size.len() != 4 {
        return Err(ModelError::Shape {
            what: "warp",
            problem: format!("expected [N, C, H, W], got {size:?}"),
        });
    }
    if grid.len() != gh * gw * 2 {
        return Err(ModelError::Shape {
            what: "warp",
            problem: format!(
                "grid holds {} values, expected {gh} x {gw} x 2 = {}",
                grid.len(),
                gh * gw * 2
            ),
        });
    }
    let kind = input.kind();
    let float_input = if input.is_floating_point() {
        input.shallow_clone()
    } else {
        input
            .f_to_kind(Kind::Float)
            .context("warp input to float")?
    };
    let grid = Tensor::f_from_slice(grid)
        .and_then(|t| t.f_view([1, gh as i64, gw as i64, 2]))
        .and_then(|t| t.f_to_device(input.device()))
        .and_then(|t| t.f_to_kind(float_input.kind()))
        .and_then(|t| t.f_expand([size[0], gh as i64, gw as i64, 2], false))
        .context("warp grid")?;
    let out = float_input
        .f_grid_sampler(&grid, mode.code(), PADDING_BORDER, false)
        .context("grid_sample")?;
    if kind == out.kind() {
        Ok(out)
    } else {
        out.f_to_kind(kind).context("warp output kind")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::motion::MotionField;
    use tch::Device;

    #[test]
    fn zero_field_is_identity() {
        let field = MotionField::new(32, 24, 4).unwrap();
        let x = Tensor::rand([1, 3, 24, 32], (Kind::Float, Device::Cpu));
        let grid = field.to_grid(24, 32);
        for mode in [WarpMode::Bilinear, WarpMode::Nearest] {
            let y = warp(&x, &grid, mode).unwrap();
            let diff = (&y - &x).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "{mode:?}: {diff}");
        }
        let ids = Tensor::arange(24 * 32, (Kind::Int64, Device::Cpu))
            .remainder(11)
            .to_kind(Kind::Uint8)
            .view([1, 1, 24, 32]);
        let y = warp(&ids, &grid, WarpMode::Nearest).unwrap();
        assert_eq!(y.kind(), Kind::Uint8);
        assert!(y.equal(&ids));
    }

    #[test]
    fn wrong_grid_length_is_an_error() {
        let x = Tensor::zeros([1, 1, 4, 4], (Kind::Float, Device::Cpu));
        assert!(warp(&x, &[0.0; 31], WarpMode::Bilinear).is_err());
        assert!(warp_to(&x, &[0.0; 8], (2, 2), WarpMode::Bilinear).is_ok());
    }
}
