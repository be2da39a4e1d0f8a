//! `arseg` (AR-Seg, CVPR 2023): the full-resolution network on keyframes; on other frames a
//! low-resolution branch fused (CReFF) with the keyframe's features warped by the motion field.
//! Module methods: `keyframe(img)`, `warp(features, grid)`, `nonkeyframe(img_lr, warped)`.

use tch::{IValue, Tensor};

use super::SchemeAdapter;
use crate::model::bundle::Bundle;
use crate::model::error::ModelError;
use crate::model::executor;
use crate::motion::{DEFAULT_CELL_SIZE, MotionField};

pub(crate) struct Arseg;

impl SchemeAdapter for Arseg {
    fn methods(&self) -> &'static [&'static str] {
        &["keyframe", "nonkeyframe", "warp"]
    }

    fn forward_method(&self) -> &'static str {
        "keyframe"
    }

    /// Every method at the native and low-res sizes, warping with the identity grid.
    fn warm_up(&self, bundle: &Bundle, passes: usize) -> Result<(), ModelError> {
        let m = bundle.manifest();
        let (h, w) = m.native_size();
        let (lh, lw) = m.scaled_size(bundle.lowres_scale());
        let (image, image_lr) = (bundle.grey_image(h, w)?, bundle.grey_image(lh, lw)?);
        let (fh, fw) = bundle.feature_size(h, w);
        let identity = MotionField::new(w, h, DEFAULT_CELL_SIZE)
            .map_err(|e| bundle.contract_error(format!("warm-up field: {e}")))?
            .to_grid(fh as usize, fw as usize);
        for _ in 0..passes {
            let (logits, features) = bundle.keyframe(&image)?;
            bundle.check_outputs("keyframe", h, w, &logits, &features)?;
            let warped = bundle.warp_features(&features, &identity)?;
            if warped.size() != features.size() {
                return Err(bundle.contract_error(format!(
                    "method 'warp' returns {:?} for features {:?} (expected the same size)",
                    warped.size(),
                    features.size()
                )));
            }
            let (logits, fused) = bundle.nonkeyframe(&image_lr, &warped)?;
            bundle.check_outputs("nonkeyframe", h, w, &logits, &fused)?;
        }
        Ok(())
    }
}

/// The branches an `arseg` bundle adds to [`Bundle::forward`].
impl Bundle {
    /// `arseg`'s keyframe branch: the full-resolution network, as [`Bundle::forward`].
    pub fn keyframe(&self, image: &Tensor) -> Result<(Tensor, Tensor), ModelError> {
        self.forward(image)
    }

    /// `arseg`'s non-keyframe branch: uint8 RGB `image_lr` (the frame at the low-res size) and
    /// the keyframe features warped to this frame (`[1, C, H/stride, W/stride]` of the native
    /// size) to `(logits [1, K, H, W], fused features)`.
    pub fn nonkeyframe(
        &self,
        image_lr: &Tensor,
        warped: &Tensor,
    ) -> Result<(Tensor, Tensor), ModelError> {
        self.require_method("nonkeyframe")?;
        self.check_image(image_lr)?;
        let (image_lr, warped) = (image_lr.shallow_clone(), warped.shallow_clone());
        executor::run(move || {
            let inputs = vec![
                IValue::Tensor(self.on_device(&image_lr)?),
                IValue::Tensor(self.on_device(&warped)?),
            ];
            let output = self.call("nonkeyframe", inputs)?;
            self.pair("nonkeyframe", output)
        })
    }

    /// `arseg`'s feature warp (inside the module: the definition training used):
    /// `grid_sample(features, grid)`, bilinear, border padding, `align_corners=False`, with
    /// `grid` from [`crate::motion::MotionField::to_grid`] at the features' size.
    pub fn warp_features(&self, features: &Tensor, grid: &[f32]) -> Result<Tensor, ModelError> {
        self.require_method("warp")?;
        let size = features.size();
        if size.len() != 4 || grid.len() as i64 != size[2] * size[3] * 2 {
            return Err(ModelError::Shape {
                what: "warp_features",
                problem: format!(
                    "features {size:?} need a grid of H x W x 2 values, got {}",
                    grid.len()
                ),
            });
        }
        let features = features.shallow_clone();
        executor::run(move || {
            let grid = Tensor::f_from_slice(grid)
                .and_then(|t| t.f_view([1, size[2], size[3], 2]))
                .and_then(|t| t.f_to_device(self.device()))
                .map_err(|e| self.inference_error(e))?;
            let inputs = vec![
                IValue::Tensor(self.on_device(&features)?),
                IValue::Tensor(grid),
            ];
            match self.call("warp", inputs)? {
                IValue::Tensor(t) => Ok(t),
                _ => Err(self.contract_error("method 'warp' must return a tensor".into())),
            }
        })
    }
}
