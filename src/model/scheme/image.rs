//! `image`: one network on whole frames, `forward(img) -> (logits, features)`.

use super::SchemeAdapter;
use crate::model::bundle::Bundle;
use crate::model::error::ModelError;

pub(crate) struct Image;

impl SchemeAdapter for Image {
    fn methods(&self) -> &'static [&'static str] {
        &["forward"]
    }

    fn forward_method(&self) -> &'static str {
        "forward"
    }

    /// `forward` at the native size.
    fn warm_up(&self, bundle: &Bundle, passes: usize) -> Result<(), ModelError> {
        let (h, w) = bundle.manifest().native_size();
        bundle.warm_up(h, w, passes)
    }
}
