//! The coloured class map as a GstVideoOverlayComposition, to attach or to blend.

use tch::{Kind, Tensor};

use crate::meta::Segmentation;
use crate::model::ClassInfo;

/// The bundle's class colours, as a lookup table for tensor indexing.
pub struct Palette {
    /// [K, 3] u8, B, G, R order (the overlay format is BGRA in memory on little endian).
    bgr: Tensor,
}

impl Palette {
    pub fn new(classes: &[ClassInfo]) -> Self {
        let bgr: Vec<u8> = classes
            .iter()
            .flat_map(|c| [c.color[2], c.color[1], c.color[0]])
            .collect();
        Palette {
            bgr: Tensor::from_slice(&bgr).view([classes.len() as i64, 3]),
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
    ) -> Result<gst_video::VideoOverlayComposition, String> {
        let k = self.bgr.size()[0];
        let a = (alpha.clamp(0.0, 1.0) * 255.0).round() as u8;
        let bgra = Tensor::cat(
            &[
                &self.bgr,
                &Tensor::full([k, 1], i64::from(a), (Kind::Uint8, tch::Device::Cpu)),
            ],
            1,
        );
        let ids = Tensor::from_slice(&seg.class_map[..])
            .to_kind(Kind::Int64)
            .clamp(0, k - 1);
        let pixels = bgra.index_select(0, &ids).contiguous();
        let len = seg.class_map.len() * 4;
        let mut bytes = vec![0u8; len];
        pixels
            .f_copy_data_u8(&mut bytes, len)
            .map_err(|e| e.to_string())?;
        let mut buffer = gst::Buffer::from_mut_slice(bytes);
        gst_video::VideoMeta::add(
            buffer.get_mut().ok_or("fresh buffer not writable")?,
            gst_video::VideoFrameFlags::empty(),
            gst_video::VideoFormat::Bgra,
            seg.width,
            seg.height,
        )
        .map_err(|e| e.to_string())?;
        let rect = gst_video::VideoOverlayRectangle::new_raw(
            &buffer,
            0,
            0,
            frame_w,
            frame_h,
            gst_video::VideoOverlayFormatFlags::empty(),
        );
        gst_video::VideoOverlayComposition::new(Some(&rect)).map_err(|e| e.to_string())
    }
}
