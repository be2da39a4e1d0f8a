//! `VssMotionMeta`: the codec's motion vectors and picture type, attached to every frame by vssdec.

use std::ffi::CStr;
use std::fmt;
use std::sync::OnceLock;

use gst::glib;
use gst::prelude::*;

use super::stored::{self, MetaInfoPtr, RawMeta, StoredMeta};
use crate::motion::{MotionVector, PictureType};

/// What the decoder knows about a frame's motion.
///
/// A keyframe carries an empty list; so does a frame whose codec exports no vectors, which is
/// told apart by [`MotionMeta::vectors_available`] being false (e.g. HEVC on FFmpeg 5.1).
#[repr(transparent)]
pub struct MotionMeta(RawMeta<MotionInfo>);

// SAFETY: the meta owns plain data only.
unsafe impl Send for MotionMeta {}
unsafe impl Sync for MotionMeta {}

/// The content of a [`MotionMeta`], for adding one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MotionInfo {
    pub picture_type: PictureType,
    pub keyframe: bool,
    pub vectors_available: bool,
    pub vectors: Vec<MotionVector>,
}

impl StoredMeta for MotionInfo {
    const API_NAME: &'static CStr = c"VssMotionMetaAPI";
    const IMPL_NAME: &'static CStr = c"VssMotionMeta";
    fn api_cell() -> &'static OnceLock<glib::Type> {
        static CELL: OnceLock<glib::Type> = OnceLock::new();
        &CELL
    }
    fn info_cell() -> &'static OnceLock<MetaInfoPtr> {
        static CELL: OnceLock<MetaInfoPtr> = OnceLock::new();
        &CELL
    }
    // Vectors are in pixels of this frame: a scale or crop would make them wrong.
}

impl MotionMeta {
    pub fn add(
        buffer: &mut gst::BufferRef,
        info: MotionInfo,
    ) -> gst::MetaRefMut<'_, Self, gst::meta::Standalone> {
        let meta = stored::add(buffer, info);
        // SAFETY: `add` returned a meta of this type attached to `buffer`.
        unsafe { Self::from_mut_ptr(buffer, meta) }
    }

    pub fn picture_type(&self) -> PictureType {
        self.0.value.picture_type
    }

    /// Whether the codec marked this frame as a keyframe (IDR / I-frame random access point).
    pub fn is_keyframe(&self) -> bool {
        self.0.value.keyframe
    }

    /// False when the codec exports no motion vectors at all (the list is then meaningless).
    pub fn vectors_available(&self) -> bool {
        self.0.value.vectors_available
    }

    /// The vectors exactly as FFmpeg exported them, in its order.
    pub fn vectors(&self) -> &[MotionVector] {
        &self.0.value.vectors
    }

    pub fn info(&self) -> &MotionInfo {
        &self.0.value
    }
}

// SAFETY: MotionMeta is repr(transparent) over RawMeta, which starts with GstMeta.
unsafe impl MetaAPI for MotionMeta {
    type GstType = RawMeta<MotionInfo>;

    fn meta_api() -> glib::Type {
        stored::api_type::<MotionInfo>()
    }
}

impl fmt::Debug for MotionMeta {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("MotionMeta")
            .field("picture_type", &self.picture_type())
            .field("keyframe", &self.is_keyframe())
            .field("vectors_available", &self.vectors_available())
            .field("vectors", &self.vectors().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_roundtrips_and_survives_buffer_copy() {
        gst::init().unwrap();
        let mv = MotionVector {
            source: -1,
            w: 16,
            h: 16,
            src_x: 10,
            src_y: 12,
            dst_x: 8,
            dst_y: 8,
            motion_x: 8,
            motion_y: 16,
            motion_scale: 4,
        };
        let info = MotionInfo {
            picture_type: PictureType::P,
            keyframe: false,
            vectors_available: true,
            vectors: vec![mv],
        };
        let mut buffer = gst::Buffer::with_size(16).unwrap();
        MotionMeta::add(buffer.get_mut().unwrap(), info.clone());
        let copy = buffer.copy();
        for b in [&buffer, &copy] {
            let meta = b.meta::<MotionMeta>().expect("meta present");
            assert_eq!(meta.info(), &info);
        }
    }
}
