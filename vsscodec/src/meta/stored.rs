//! One GstMeta implementation for every vss meta: a plain Rust value stored after `GstMeta`.

use std::ffi::CStr;
use std::ptr;
use std::sync::OnceLock;

use gst::glib;
use gst::glib::translate::{IntoGlib, from_glib};
use gst::meta::MetaTransform;

/// A Rust value carried by a GstMeta. Each implementor owns its registration cells, because
/// statics inside generic functions would be shared by every type.
pub trait StoredMeta: Clone + Default + Send + Sync + 'static {
    const API_NAME: &'static CStr;
    const IMPL_NAME: &'static CStr;
    fn api_cell() -> &'static OnceLock<glib::Type>;
    fn info_cell() -> &'static OnceLock<MetaInfoPtr>;
    /// Whether the value stays true through a transform (copy, scale, ...) of the buffer.
    fn survives(transform: glib::Quark) -> bool {
        transform == gst::meta::MetaTransformCopy::quark()
    }
}

/// The registered GstMetaInfo; immutable and alive for the whole process.
pub struct MetaInfoPtr(ptr::NonNull<gst::ffi::GstMetaInfo>);
// SAFETY: GStreamer never mutates a registered GstMetaInfo.
unsafe impl Send for MetaInfoPtr {}
unsafe impl Sync for MetaInfoPtr {}

#[repr(C)]
pub struct RawMeta<T> {
    parent: gst::ffi::GstMeta,
    pub(crate) value: T,
}

impl<T> RawMeta<T> {
    /// The value this meta carries.
    pub fn value(&self) -> &T {
        &self.value
    }
}

/// The API type, registered once. This code can sit in a process several times (libgstvsscodec.so
/// and libgstvss.so, which links it too, loaded from GST_PLUGIN_PATH, and an application linking
/// the crates): every copy after the first reuses the first's types, found by name.
pub fn api_type<T: StoredMeta>() -> glib::Type {
    *T::api_cell().get_or_init(|| {
        if let Some(t) = glib::Type::from_name(T::API_NAME.to_str().unwrap_or_default()) {
            return t;
        }
        // SAFETY: a NULL-terminated (empty) tag list and a static name.
        let t: glib::Type = unsafe {
            from_glib(gst::ffi::gst_meta_api_type_register(
                T::API_NAME.as_ptr(),
                [ptr::null::<std::os::raw::c_char>()].as_ptr() as *mut *const _,
            ))
        };
        assert_ne!(
            t,
            glib::Type::INVALID,
            "registering {:?} failed",
            T::API_NAME
        );
        t
    })
}

fn meta_info<T: StoredMeta>() -> *const gst::ffi::GstMetaInfo {
    T::info_cell()
        .get_or_init(|| {
            // SAFETY: registration with callbacks matching RawMeta<T>'s layout.
            unsafe {
                let existing = gst::ffi::gst_meta_get_info(T::IMPL_NAME.as_ptr());
                let info = if existing.is_null() {
                    gst::ffi::gst_meta_register(
                        api_type::<T>().into_glib(),
                        T::IMPL_NAME.as_ptr(),
                        std::mem::size_of::<RawMeta<T>>(),
                        Some(init::<T>),
                        Some(free::<T>),
                        Some(transform::<T>),
                    )
                } else {
                    existing
                };
                MetaInfoPtr(
                    ptr::NonNull::new(info as *mut _)
                        .unwrap_or_else(|| panic!("registering {:?} failed", T::IMPL_NAME)),
                )
            }
        })
        .0
        .as_ptr()
}

/// Adds a meta holding `value` to `buffer` and returns it.
pub fn add<T: StoredMeta>(buffer: &mut gst::BufferRef, value: T) -> *mut RawMeta<T> {
    let mut value = std::mem::ManuallyDrop::new(value);
    // SAFETY: init moves the value out of `params` (read once), so it is not dropped here.
    unsafe {
        gst::ffi::gst_buffer_add_meta(
            buffer.as_mut_ptr(),
            meta_info::<T>(),
            &mut *value as *mut T as glib::ffi::gpointer,
        ) as *mut RawMeta<T>
    }
}

unsafe extern "C" fn init<T: StoredMeta>(
    meta: *mut gst::ffi::GstMeta,
    params: glib::ffi::gpointer,
    _buffer: *mut gst::ffi::GstBuffer,
) -> glib::ffi::gboolean {
    // SAFETY: `meta` has room for RawMeta<T>; `params` is a T handed over by `add` or NULL.
    unsafe {
        let meta = &mut *(meta as *mut RawMeta<T>);
        let value = if params.is_null() {
            T::default()
        } else {
            ptr::read(params as *const T)
        };
        ptr::write(&mut meta.value, value);
    }
    true.into_glib()
}

unsafe extern "C" fn free<T: StoredMeta>(
    meta: *mut gst::ffi::GstMeta,
    _buffer: *mut gst::ffi::GstBuffer,
) {
    // SAFETY: init wrote a T there.
    unsafe { ptr::drop_in_place(&mut (*(meta as *mut RawMeta<T>)).value) }
}

unsafe extern "C" fn transform<T: StoredMeta>(
    dest: *mut gst::ffi::GstBuffer,
    meta: *mut gst::ffi::GstMeta,
    _buffer: *mut gst::ffi::GstBuffer,
    type_: glib::ffi::GQuark,
    _data: glib::ffi::gpointer,
) -> glib::ffi::gboolean {
    // SAFETY: `meta` is a RawMeta<T> of ours; `dest` is a writable buffer.
    unsafe {
        if !T::survives(from_glib(type_)) {
            return false.into_glib();
        }
        let value = (*(meta as *const RawMeta<T>)).value.clone();
        add::<T>(gst::BufferRef::from_mut_ptr(dest), value);
    }
    true.into_glib()
}
