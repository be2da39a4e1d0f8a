//! One adapter per bundle scheme: which module methods it calls and how a bundle of it is
//! warmed up and checked at load. A scheme is its file here, one line in `schemes!` below and
//! its entry in models/manifest.schema.json (the manifest rules, such as its required methods).

mod arseg;
mod image;
mod tdnet;

use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::bundle::Bundle;
use super::error::ModelError;

/// How [`Bundle`] drives the module of one scheme.
pub(crate) trait SchemeAdapter: Sync {
    /// The module methods the adapter calls. The schema requires each of them in the manifest
    /// of this scheme (a test checks the two lists are the same).
    fn methods(&self) -> &'static [&'static str];

    /// The method behind [`Bundle::forward`]: the full network on one image, `(logits,
    /// features)` out.
    fn forward_method(&self) -> &'static str;

    /// Runs the module `passes` times (at least once) at load and checks its outputs against
    /// the manifest, so that a module that breaks its manifest fails at load, naming the file
    /// and the method.
    fn warm_up(&self, bundle: &Bundle, passes: usize) -> Result<(), ModelError>;
}

macro_rules! schemes {
    ($($(#[$doc:meta])* $variant:ident = $name:literal => $adapter:expr,)+) => {
        /// Which methods a bundle's module exports and how the element calls them (manifest
        /// field `scheme`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Scheme {
            $($(#[$doc])* $variant,)+
        }

        impl Scheme {
            /// Every scheme, in the order of models/manifest.schema.json.
            pub const ALL: &'static [Scheme] = &[$(Scheme::$variant),+];
            const NAMES: &'static [&'static str] = &[$($name),+];

            /// The name in manifest.json.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Scheme::$variant => $name,)+
                }
            }

            pub(crate) fn adapter(self) -> &'static dyn SchemeAdapter {
                match self {
                    $(Scheme::$variant => &$adapter,)+
                }
            }
        }
    };
}

schemes! {
    /// `forward(img) -> (logits, features)`: one network on whole frames.
    Image = "image" => image::Image,
    /// AR-Seg: keyframe network plus low-resolution branch fused with warped features.
    Arseg = "arseg" => arseg::Arseg,
    /// TDNet: shallow sub-networks run round-robin with attention propagation.
    Tdnet = "tdnet" => tdnet::Tdnet,
}

impl Scheme {
    /// The scheme called `name` in manifest.json.
    pub fn from_name(name: &str) -> Option<Scheme> {
        Scheme::ALL.iter().copied().find(|s| s.as_str() == name)
    }

    /// The module methods the element calls on a bundle of this scheme (the manifest names
    /// each of them).
    pub fn methods(self) -> &'static [&'static str] {
        self.adapter().methods()
    }

    /// The method behind [`Bundle::forward`] (`keyframe` for `arseg`, else `forward`).
    pub fn forward_method(self) -> &'static str {
        self.adapter().forward_method()
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Scheme {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Scheme {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Scheme, D::Error> {
        let name = String::deserialize(deserializer)?;
        Scheme::from_name(&name).ok_or_else(|| D::Error::unknown_variant(&name, Scheme::NAMES))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::schema;

    #[test]
    fn the_schemes_are_the_schemas() {
        let names: Vec<&str> = Scheme::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, schema::scheme_names());
        for &scheme in Scheme::ALL {
            assert_eq!(Scheme::from_name(scheme.as_str()), Some(scheme));
            let json = serde_json::to_string(&scheme).unwrap();
            assert_eq!(serde_json::from_str::<Scheme>(&json).unwrap(), scheme);
        }
        let e = serde_json::from_str::<Scheme>("\"video\"").unwrap_err();
        assert!(e.to_string().contains("image"), "{e}");
    }

    #[test]
    fn adapters_call_exactly_the_methods_the_schema_requires() {
        for &scheme in Scheme::ALL {
            let mut called = scheme.methods().to_vec();
            let mut required = schema::required_methods(scheme.as_str());
            called.sort();
            required.sort();
            assert_eq!(called, required, "scheme {scheme}");
            assert!(
                scheme.methods().contains(&scheme.forward_method()),
                "scheme {scheme}"
            );
        }
    }
}
