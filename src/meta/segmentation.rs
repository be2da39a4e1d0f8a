//! `VssSegmentationMeta`: the class map of a frame, its class table and where it came from.

use std::ffi::CStr;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gstvsscodec::meta::stored::{self, MetaInfoPtr, RawMeta, StoredMeta};

use crate::model::ClassInfo;

/// Which branch of the segmenter produced a class map: the full model ([`Branch::Full`], on
/// the keyframes of every mode) or a mode's own non-keyframe branch. Branches are named as the
/// modes are ([`Branch::as_str`]: full, lowres, fusion, warp, distributed).
pub use crate::segmenter::Mode as Branch;

/// A frame's segmentation, as vsssegment attaches it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Segmentation {
    /// Class map size; it covers the whole frame whatever the frame's own size.
    pub width: u32,
    pub height: u32,
    /// One class id per pixel, row-major, `width * height` bytes; ids index `classes`.
    pub class_map: Arc<[u8]>,
    pub classes: Arc<[ClassInfo]>,
    /// Whether the model ran on this frame at full resolution. Always false in `distributed`
    /// mode, which has no keyframes.
    pub keyframe: bool,
    /// Frames since the last keyframe (0 on a keyframe); in `distributed` mode, frames since
    /// the temporal memory was last reset (0 on the first frame after it).
    pub distance: u32,
    pub branch: Branch,
    /// The bundle's name.
    pub model: Arc<str>,
    /// Time vsssegment spent on this frame (pre-processing, network or warp, post-processing).
    pub compute_time: Duration,
}

impl Segmentation {
    /// Share of pixels per class id (length = number of classes).
    pub fn class_shares(&self) -> Vec<f64> {
        let mut counts = vec![0u64; self.classes.len()];
        for &id in self.class_map.iter() {
            if let Some(c) = counts.get_mut(usize::from(id)) {
                *c += 1;
            }
        }
        let total = self.class_map.len().max(1) as f64;
        counts.into_iter().map(|c| c as f64 / total).collect()
    }

    /// The class id at frame position (x, y) of a `frame_w x frame_h` frame: nearest
    /// neighbour with pixel centres aligned, the rule of `model::resize_nearest` that scales
    /// the element's own class maps (map pixel `floor((x + 0.5) * width / frame_w)`).
    pub fn class_at(&self, x: u32, y: u32, frame_w: u32, frame_h: u32) -> Option<u8> {
        if x >= frame_w || y >= frame_h || self.width == 0 || self.height == 0 {
            return None;
        }
        let nearest = |p: u32, map: u32, frame: u32| {
            ((2 * u64::from(p) + 1) * u64::from(map) / (2 * u64::from(frame))) as usize
        };
        let mx = nearest(x, self.width, frame_w);
        let my = nearest(y, self.height, frame_h);
        self.class_map.get(my * self.width as usize + mx).copied()
    }
}

impl StoredMeta for Segmentation {
    const API_NAME: &'static CStr = c"VssSegmentationMetaAPI";
    const IMPL_NAME: &'static CStr = c"VssSegmentationMeta";
    fn api_cell() -> &'static OnceLock<glib::Type> {
        static CELL: OnceLock<glib::Type> = OnceLock::new();
        &CELL
    }
    fn info_cell() -> &'static OnceLock<MetaInfoPtr> {
        static CELL: OnceLock<MetaInfoPtr> = OnceLock::new();
        &CELL
    }
    /// The class map covers the whole frame at its own resolution, so it stays right when the
    /// frame is copied, scaled or converted.
    fn survives(transform: glib::Quark) -> bool {
        use gst::meta::MetaTransform;
        transform == gst::meta::MetaTransformCopy::quark()
            || transform.as_str() == "gst-video-scale"
    }
}

/// The segmentation meta on a buffer.
#[repr(transparent)]
pub struct SegmentationMeta(RawMeta<Segmentation>);

// SAFETY: the meta owns plain data and Arcs of immutable data.
unsafe impl Send for SegmentationMeta {}
unsafe impl Sync for SegmentationMeta {}

impl SegmentationMeta {
    pub fn add(
        buffer: &mut gst::BufferRef,
        segmentation: Segmentation,
    ) -> gst::MetaRefMut<'_, Self, gst::meta::Standalone> {
        let meta = stored::add(buffer, segmentation);
        // SAFETY: `add` returned a meta of this type attached to `buffer`.
        unsafe { Self::from_mut_ptr(buffer, meta) }
    }

    pub fn segmentation(&self) -> &Segmentation {
        self.0.value()
    }
}

// SAFETY: repr(transparent) over RawMeta, which starts with GstMeta.
unsafe impl MetaAPI for SegmentationMeta {
    type GstType = RawMeta<Segmentation>;

    fn meta_api() -> glib::Type {
        stored::api_type::<Segmentation>()
    }
}

impl fmt::Debug for SegmentationMeta {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let s = self.segmentation();
        f.debug_struct("SegmentationMeta")
            .field("size", &(s.width, s.height))
            .field("keyframe", &s.keyframe)
            .field("distance", &s.distance)
            .field("branch", &s.branch)
            .field("model", &s.model)
            .field("compute_time", &s.compute_time)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_lookup_follow_the_class_map() {
        let classes: Arc<[ClassInfo]> = (0..3)
            .map(|id| ClassInfo {
                id,
                name: format!("c{id}"),
                color: [0, 0, 0],
            })
            .collect();
        let seg = Segmentation {
            width: 2,
            height: 2,
            class_map: Arc::from(vec![0u8, 1, 1, 2]),
            classes,
            ..Default::default()
        };
        assert_eq!(seg.class_shares(), vec![0.25, 0.5, 0.25]);
        assert_eq!(seg.class_at(3, 3, 4, 4), Some(2));
        assert_eq!(seg.class_at(0, 3, 4, 4), Some(1));
        assert_eq!(seg.class_at(4, 0, 4, 4), None);
    }

    #[test]
    fn meta_survives_buffer_copy() {
        gst::init().unwrap();
        let seg = Segmentation {
            width: 1,
            height: 1,
            class_map: Arc::from(vec![7u8]),
            model: Arc::from("m"),
            ..Default::default()
        };
        let mut buffer = gst::Buffer::with_size(4).unwrap();
        SegmentationMeta::add(buffer.get_mut().unwrap(), seg.clone());
        let copy = buffer.copy();
        assert_eq!(
            copy.meta::<SegmentationMeta>().unwrap().segmentation(),
            &seg
        );
    }
}
