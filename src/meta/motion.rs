//! `VssMotionMeta`: the codec's motion vectors and picture type, attached to every frame by vssdec.

use std::fmt;
use std::mem;
use std::ptr;

use gst::glib;
use gst::glib::translate::{IntoGlib, from_glib};
use gst::prelude::*;

use crate::motion::{MotionVector, PictureType};

/// What the decoder knows about a frame's motion.
///
/// A keyframe carries an empty list; so does a frame whose codec exports no vectors, which is
/// told apart by [`MotionMeta::vectors_available`] being false (e.g. HEVC on FFmpeg 5.1).
#[repr(transparent)]
pub struct MotionMeta(imp::MotionMeta);

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

impl MotionMeta {
    pub fn add(buffer: &mut gst::BufferRef, info: MotionInfo) -> gst::MetaRefMut<'_, Self, gst::meta::Standalone> {
        // SAFETY: gst_buffer_add_meta calls our init, which moves `info` into the meta; the meta
        // info pointer is the registered one for this type.
        unsafe {
            let mut params = mem::ManuallyDrop::new(info);
            let meta = gst::ffi::gst_buffer_add_meta(
                buffer.as_mut_ptr(),
                imp::motion_meta_get_info(),
                &mut *params as *mut MotionInfo as glib::ffi::gpointer,
            ) as *mut imp::MotionMeta;
            Self::from_mut_ptr(buffer, meta)
        }
    }

    pub fn picture_type(&self) -> PictureType {
        self.0.info.picture_type
    }

    /// Whether the codec marked this frame as a keyframe (IDR / I-frame random access point).
    pub fn is_keyframe(&self) -> bool {
        self.0.info.keyframe
    }

    /// False when the codec exports no motion vectors at all (the list is then meaningless).
    pub fn vectors_available(&self) -> bool {
        self.0.info.vectors_available
    }

    /// The vectors exactly as FFmpeg exported them, in its order.
    pub fn vectors(&self) -> &[MotionVector] {
        &self.0.info.vectors
    }

    pub fn info(&self) -> &MotionInfo {
        &self.0.info
    }
}

// SAFETY: MotionMeta is repr(transparent) over a struct starting with GstMeta.
unsafe impl MetaAPI for MotionMeta {
    type GstType = imp::MotionMeta;

    fn meta_api() -> glib::Type {
        imp::motion_meta_api_get_type()
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

mod imp {
    use super::*;
    use gst::meta::MetaTransform;
    use once_cell::sync::Lazy;

    #[repr(C)]
    pub struct MotionMeta {
        parent: gst::ffi::GstMeta,
        pub(super) info: MotionInfo,
    }

    pub(super) fn motion_meta_api_get_type() -> glib::Type {
        static TYPE: Lazy<glib::Type> = Lazy::new(|| unsafe {
            let t = from_glib(gst::ffi::gst_meta_api_type_register(
                c"VssMotionMetaAPI".as_ptr(),
                [ptr::null::<std::os::raw::c_char>()].as_ptr() as *mut *const _,
            ));
            assert_ne!(t, glib::Type::INVALID);
            t
        });
        *TYPE
    }

    unsafe extern "C" fn motion_meta_init(
        meta: *mut gst::ffi::GstMeta,
        params: glib::ffi::gpointer,
        _buffer: *mut gst::ffi::GstBuffer,
    ) -> glib::ffi::gboolean {
        unsafe {
            let meta = &mut *(meta as *mut MotionMeta);
            let info = if params.is_null() {
                MotionInfo::default()
            } else {
                ptr::read(params as *const MotionInfo)
            };
            ptr::write(&mut meta.info, info);
        }
        true.into_glib()
    }

    unsafe extern "C" fn motion_meta_free(
        meta: *mut gst::ffi::GstMeta,
        _buffer: *mut gst::ffi::GstBuffer,
    ) {
        unsafe {
            let meta = &mut *(meta as *mut MotionMeta);
            ptr::drop_in_place(&mut meta.info);
        }
    }

    unsafe extern "C" fn motion_meta_transform(
        dest: *mut gst::ffi::GstBuffer,
        meta: *mut gst::ffi::GstMeta,
        _buffer: *mut gst::ffi::GstBuffer,
        type_: glib::ffi::GQuark,
        _data: glib::ffi::gpointer,
    ) -> glib::ffi::gboolean {
        // Copies survive buffer copies only: a scale or crop would make the vectors wrong.
        unsafe {
            if type_ != gst::meta::MetaTransformCopy::quark().into_glib() {
                return false.into_glib();
            }
            let meta = &*(meta as *const MotionMeta);
            let dest = gst::BufferRef::from_mut_ptr(dest);
            super::MotionMeta::add(dest, meta.info.clone());
        }
        true.into_glib()
    }

    pub(super) fn motion_meta_get_info() -> *const gst::ffi::GstMetaInfo {
        struct MetaInfo(ptr::NonNull<gst::ffi::GstMetaInfo>);
        // SAFETY: the registered info is immutable and lives forever.
        unsafe impl Send for MetaInfo {}
        unsafe impl Sync for MetaInfo {}

        static INFO: Lazy<MetaInfo> = Lazy::new(|| unsafe {
            MetaInfo(
                ptr::NonNull::new(gst::ffi::gst_meta_register(
                    motion_meta_api_get_type().into_glib(),
                    c"VssMotionMeta".as_ptr(),
                    mem::size_of::<MotionMeta>(),
                    Some(motion_meta_init),
                    Some(motion_meta_free),
                    Some(motion_meta_transform),
                ) as *mut gst::ffi::GstMetaInfo)
                .expect("registering VssMotionMeta failed"),
            )
        });
        INFO.0.as_ptr()
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
