//! `GstVssSegmentMode`: the `mode` property's enum type, registered from the segmenter's list of
//! modes ([`Mode::ALL`]) so that a new mode needs no change here.

use std::ffi::CString;
use std::sync::OnceLock;

use gst::glib;
use gst::glib::Type;
use gst::glib::translate::{FromGlib, IntoGlib};
use gst::glib::types::StaticType;
use gst::glib::value::{FromValue, ToValue, ValueType};

use crate::segmenter::Mode;

/// The GType's name, as `gst-inspect-1.0` shows it.
pub const TYPE_NAME: &str = "GstVssSegmentMode";

/// A [`Mode`] as a GLib enum value: its position in [`Mode::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeValue(pub Mode);

impl StaticType for ModeValue {
    fn static_type() -> Type {
        static TYPE: OnceLock<Type> = OnceLock::new();
        *TYPE.get_or_init(register)
    }
}

/// Registers the enum once per process; a second copy of the plugin in the process (loaded
/// from GST_PLUGIN_PATH and linked into an application) reuses the first's type.
fn register() -> Type {
    if let Some(t) = Type::from_name(TYPE_NAME) {
        return t;
    }
    let cstr = |s: &str| -> *const std::os::raw::c_char {
        // Names come from the static mode list: no interior NUL. Leaked: GLib keeps the
        // pointers for the life of the process.
        CString::new(s).expect("mode names have no NUL").into_raw()
    };
    let mut values: Vec<glib::gobject_ffi::GEnumValue> = Mode::ALL
        .iter()
        .map(|m| glib::gobject_ffi::GEnumValue {
            value: m.index() as i32,
            value_name: cstr(m.spec().description),
            value_nick: cstr(m.as_str()),
        })
        .collect();
    values.push(glib::gobject_ffi::GEnumValue {
        value: 0,
        value_name: std::ptr::null(),
        value_nick: std::ptr::null(),
    });
    let values = values.leak();
    let name = cstr(TYPE_NAME);
    // SAFETY: a static, NULL-terminated value table and name, both leaked above.
    unsafe {
        glib::translate::from_glib(glib::gobject_ffi::g_enum_register_static(
            name,
            values.as_ptr(),
        ))
    }
}

impl IntoGlib for ModeValue {
    type GlibType = i32;

    fn into_glib(self) -> i32 {
        self.0.index() as i32
    }
}

impl FromGlib<i32> for ModeValue {
    /// Out-of-range values (GLib checks them against the enum first) give the default mode.
    unsafe fn from_glib(value: i32) -> Self {
        ModeValue(
            usize::try_from(value)
                .ok()
                .and_then(|i| Mode::ALL.get(i).copied())
                .unwrap_or_default(),
        )
    }
}

impl ValueType for ModeValue {
    type Type = ModeValue;
}

unsafe impl<'a> FromValue<'a> for ModeValue {
    type Checker = glib::value::GenericValueTypeChecker<Self>;

    unsafe fn from_value(value: &'a glib::Value) -> Self {
        // SAFETY: the checker made sure the value holds this enum type.
        unsafe {
            Self::from_glib(glib::gobject_ffi::g_value_get_enum(
                glib::translate::ToGlibPtr::to_glib_none(value).0,
            ))
        }
    }
}

impl ToValue for ModeValue {
    fn to_value(&self) -> glib::Value {
        let mut value = glib::Value::from_type(Self::static_type());
        // SAFETY: the value was created with this enum type.
        unsafe {
            glib::gobject_ffi::g_value_set_enum(
                glib::translate::ToGlibPtrMut::to_glib_none_mut(&mut value).0,
                self.into_glib(),
            );
        }
        value
    }

    fn value_type(&self) -> Type {
        Self::static_type()
    }
}

impl From<ModeValue> for glib::Value {
    fn from(v: ModeValue) -> Self {
        v.to_value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_enum_lists_every_mode_by_its_name() {
        let class = glib::EnumClass::with_type(ModeValue::static_type()).expect("an enum type");
        assert_eq!(class.values().len(), Mode::ALL.len());
        for &mode in Mode::ALL {
            let value = class.value_by_nick(mode.as_str()).expect("listed");
            assert_eq!(value.value(), mode.index() as i32);
            let v = ModeValue(mode).to_value();
            assert_eq!(v.get::<ModeValue>().unwrap(), ModeValue(mode));
        }
    }
}
