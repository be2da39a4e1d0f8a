//! The class map as GStreamer's standard analytics metadata (GStreamer >= 1.26).
//!
//! Built only with the `analytics-v1_26` cargo feature. On each frame vsssegment then also
//! attaches a `GstAnalyticsRelationMeta` (reusing one already on the buffer) holding:
//! - a `GstAnalyticsSegmentationMtd` of type `GST_SEGMENTATION_TYPE_SEMANTIC`: the class map as
//!   a GRAY8 mask buffer at the model's resolution (with a `GstVideoMeta`, stride = width),
//!   placed over the whole frame (x = 0, y = 0, w and h = the frame's size), whose region ids
//!   are the class ids present in the map, ascending;
//! - a `GstAnalyticsClsMtd` with one entry per region index: the class name as a quark and
//!   confidence -1.0 (undefined, as the C documentation asks of semantic segmentation);
//! - the relation `GST_ANALYTICS_REL_TYPE_RELATE_TO` from the segmentation to the
//!   classification, as in the C documentation's example.
//!
//! A reader maps a mask value to a name with `gst_analytics_segmentation_mtd_get_region_index`
//! and `gst_analytics_cls_mtd_get_quark` at that index.
//!
//! Untested: this project builds on Debian 12 (GStreamer 1.22, which has no analytics library
//! at all), where `scripts/check-analytics.sh` only type-checks this module against the
//! 0.25 bindings; it has never been linked or run.

use gst::glib;
use gst::glib::translate::IntoGlibPtr;
use gst_analytics::prelude::*;
use gst_analytics::{AnalyticsRelationMeta, RelTypes, ffi};

use crate::meta::Segmentation;
use crate::model::ClassInfo;

/// Why the analytics metadata could not be attached to a frame.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error("class map of {len} bytes is not {width}x{height}")]
    MapSize { len: usize, width: u32, height: u32 },
    #[error("class id {id} outside the class table ({classes} classes)")]
    UnknownClass { id: u8, classes: usize },
    #[error("mask buffer: {0}")]
    Mask(glib::BoolError),
    #[error("gst_analytics_relation_meta_add_segmentation_mtd failed")]
    Segmentation,
    #[error("classification mtd: {0}")]
    Classification(glib::BoolError),
    #[error("segmentation -> classification relation: {0}")]
    Relation(glib::BoolError),
}

/// The class labels of one bundle, interned once, and the attach step.
pub struct AnalyticsLabels {
    /// Indexed by class id.
    quarks: Vec<glib::Quark>,
}

impl AnalyticsLabels {
    pub fn new(classes: &[ClassInfo]) -> Self {
        AnalyticsLabels {
            quarks: classes
                .iter()
                .map(|c| glib::Quark::from_str(c.name.as_str()))
                .collect(),
        }
    }

    /// Attaches the segmentation and classification mtds of `seg` to `buf`, a frame of
    /// `frame_width x frame_height`. Returns the ids of both mtds.
    pub fn attach(
        &self,
        buf: &mut gst::BufferRef,
        seg: &Segmentation,
        frame_width: u32,
        frame_height: u32,
    ) -> Result<(u32, u32), AnalyticsError> {
        let mut regions = present_classes(seg, self.quarks.len())?;
        let quarks: Vec<glib::Quark> = regions.iter().map(|&id| self.quarks[id as usize]).collect();
        let levels = vec![-1.0f32; regions.len()];

        // Zero-copy: the mask memory is the class map's own Arc.
        let mut mask = gst::Buffer::from_slice(seg.class_map.clone());
        {
            let mask = mask
                .get_mut()
                .ok_or_else(|| AnalyticsError::Mask(glib::bool_error!("buffer not writable")))?;
            gst_video::VideoMeta::add_full(
                mask,
                gst_video::VideoFrameFlags::empty(),
                gst_video::VideoFormat::Gray8,
                seg.width,
                seg.height,
                &[0],
                &[seg.width as i32],
            )
            .map_err(AnalyticsError::Mask)?;
        }

        if buf.meta::<AnalyticsRelationMeta>().is_none() {
            AnalyticsRelationMeta::add(buf);
        }
        let Some(mut meta) = buf.meta_mut::<AnalyticsRelationMeta>() else {
            return Err(AnalyticsError::Segmentation);
        };

        let mut seg_mtd = std::mem::MaybeUninit::<ffi::GstAnalyticsSegmentationMtd>::uninit();
        // SAFETY: `meta` is a relation meta on a writable buffer; the mask is passed with its
        // reference (transfer full) and has the GRAY8 GstVideoMeta the call requires;
        // `regions` is only read (copied) despite the `*mut`; `seg_mtd` is written on success.
        // On failure GStreamer 1.26 neither stores nor unrefs the mask: it leaks one buffer
        // rather than risking a double unref should a later version take it on failure.
        let seg_id = unsafe {
            let added = ffi::gst_analytics_relation_meta_add_segmentation_mtd(
                meta.as_mut_ptr(),
                mask.into_glib_ptr(),
                ffi::GST_SEGMENTATION_TYPE_SEMANTIC,
                regions.len(),
                regions.as_mut_ptr(),
                0,
                0,
                frame_width,
                frame_height,
                seg_mtd.as_mut_ptr(),
            );
            if added == glib::ffi::GFALSE {
                return Err(AnalyticsError::Segmentation);
            }
            seg_mtd.assume_init().id
        };
        let cls_id = meta
            .add_cls_mtd(&levels, &quarks)
            .map_err(AnalyticsError::Classification)?
            .id();
        meta.set_relation(RelTypes::RELATE_TO, seg_id, cls_id)
            .map_err(AnalyticsError::Relation)?;
        Ok((seg_id, cls_id))
    }
}

/// The class ids that occur in the map, ascending: the segmentation mtd's region ids.
fn present_classes(seg: &Segmentation, classes: usize) -> Result<Vec<u32>, AnalyticsError> {
    let expected = seg.width as usize * seg.height as usize;
    if seg.class_map.len() != expected {
        return Err(AnalyticsError::MapSize {
            len: seg.class_map.len(),
            width: seg.width,
            height: seg.height,
        });
    }
    let mut seen = [false; 256];
    for &id in seg.class_map.iter() {
        seen[usize::from(id)] = true;
    }
    let mut present = Vec::new();
    for (id, _) in seen.iter().enumerate().filter(|(_, s)| **s) {
        if id >= classes {
            return Err(AnalyticsError::UnknownClass {
                id: id as u8,
                classes,
            });
        }
        present.push(id as u32);
    }
    Ok(present)
}
