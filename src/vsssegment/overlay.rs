//! The coloured class map as a GstVideoOverlayComposition, to attach or to blend.

use crate::meta::Segmentation;
use crate::model::ClassInfo;

/// Why the overlay could not be built.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("the bundle has no classes")]
    NoClasses,
    #[error("fresh buffer not writable")]
    NotWritable,
    #[error(transparent)]
    Gst(#[from] gst::glib::BoolError),
}

/// The bundle's class colours, as a lookup table.
pub struct Palette {
    /// B, G, R per class (the overlay format is BGRA in memory on little endian).
    bgr: Vec<[u8; 3]>,
}

impl Palette {
    pub fn new(classes: &[ClassInfo]) -> Self {
        Palette {
            bgr: classes
                .iter()
                .map(|c| [c.color[2], c.color[1], c.color[0]])
                .collect(),
        }
    }

    /// One rectangle covering the whole `frame_w x frame_h` frame, at the class map's own
    /// resolution: the compositor (or `blend`) scales it.
    pub fn composition(
        &self,
        seg: &Segmentation,
        frame_w: u32,
        frame_h: u32,
        alpha: f64,
    ) -> Result<gst_video::VideoOverlayComposition, OverlayError> {
        let a = (alpha.clamp(0.0, 1.0) * 255.0).round() as u8;
        let lut: Vec<[u8; 4]> = self.bgr.iter().map(|&[b, g, r]| [b, g, r, a]).collect();
        let last = lut.len().checked_sub(1).ok_or(OverlayError::NoClasses)?;
        let mut bytes = vec![0u8; seg.class_map.len() * 4];
        for (px, &id) in bytes.chunks_exact_mut(4).zip(seg.class_map.iter()) {
            // Ids past the table (none from a valid bundle) take the last colour.
            px.copy_from_slice(&lut[usize::from(id).min(last)]);
        }
        let mut buffer = gst::Buffer::from_mut_slice(bytes);
        gst_video::VideoMeta::add(
            buffer.get_mut().ok_or(OverlayError::NotWritable)?,
            gst_video::VideoFrameFlags::empty(),
            gst_video::VideoFormat::Bgra,
            seg.width,
            seg.height,
        )?;
        let rect = gst_video::VideoOverlayRectangle::new_raw(
            &buffer,
            0,
            0,
            frame_w,
            frame_h,
            gst_video::VideoOverlayFormatFlags::empty(),
        );
        Ok(gst_video::VideoOverlayComposition::new(Some(&rect))?)
    }
}
