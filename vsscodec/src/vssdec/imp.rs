//! vssdec: libavcodec decoding that keeps the codec's motion vectors as a `MotionMeta`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::subclass::prelude::*;
use once_cell::sync::Lazy;

use crate::codec::{
    CodecKind, Colorimetry, Decoder, DecoderConfig, Picture, PixelLayout, SharedPlane, ThreadType,
};
use crate::meta::{MotionInfo, MotionMeta};

static CAT: Lazy<gst::DebugCategory> = Lazy::new(|| {
    gst::DebugCategory::new(
        "vssdec",
        gst::DebugColorFlags::empty(),
        Some("libavcodec decoder exporting motion vectors"),
    )
});

const DEFAULT_MAX_THREADS: u32 = 0;
const DEFAULT_THREAD_TYPE: DecThreadType = DecThreadType::Auto;
const DEFAULT_OUTPUT_CORRUPT: bool = false;
const DEFAULT_EXPORT_MVS: bool = true;
/// Off: with it on, frames 16-23 of a 30-frame test clip once came out different from the
/// copies (tests/vssdec.rs, shared_planes_...): a picture libavcodec reuses while downstream
/// still holds it. Opt-in until that is understood.
const DEFAULT_DIRECT_RENDERING: bool = false;
/// Pending frames older than the decoder's delay by this many frames never come out (the codec
/// dropped them, e.g. P-frames before the first keyframe) and are released.
const STALE_FRAME_SLACK: u32 = 16;

#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstVssDecThreadType")]
pub enum DecThreadType {
    #[enum_value(name = "Auto: frame and slice threading", nick = "auto")]
    Auto = 0,
    #[enum_value(
        name = "Frame threading (adds one frame of latency per thread)",
        nick = "frame"
    )]
    Frame = 1,
    #[enum_value(name = "Slice threading (no added latency)", nick = "slice")]
    Slice = 2,
}

impl From<DecThreadType> for ThreadType {
    fn from(t: DecThreadType) -> Self {
        match t {
            DecThreadType::Auto => ThreadType::Auto,
            DecThreadType::Frame => ThreadType::Frame,
            DecThreadType::Slice => ThreadType::Slice,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Settings {
    max_threads: u32,
    thread_type: DecThreadType,
    output_corrupt: bool,
    export_mvs: bool,
    direct_rendering: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_threads: DEFAULT_MAX_THREADS,
            thread_type: DEFAULT_THREAD_TYPE,
            output_corrupt: DEFAULT_OUTPUT_CORRUPT,
            export_mvs: DEFAULT_EXPORT_MVS,
            direct_rendering: DEFAULT_DIRECT_RENDERING,
        }
    }
}

struct State {
    decoder: Decoder,
    input_state: gst_video::VideoCodecState<'static, gst_video::video_codec_state::Readable>,
    /// Negotiated output: what the pictures looked like.
    output: Option<OutputFormat>,
    latency_frames: u32,
}

/// What the output caps are made from: a change renegotiates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OutputFormat {
    layout: PixelLayout,
    width: u32,
    height: u32,
    colorimetry: Colorimetry,
}

#[derive(Default)]
pub struct VssDec {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    /// Downstream reads GstVideoMeta (strides and offsets of its own): pictures then go out
    /// as libavcodec's own planes, uncopied. Set while negotiating, with `state` locked.
    downstream_video_meta: AtomicBool,
}

#[glib::object_subclass]
impl ObjectSubclass for VssDec {
    const NAME: &'static str = "GstVssDec";
    type Type = super::VssDec;
    type ParentType = gst_video::VideoDecoder;
}

impl ObjectImpl for VssDec {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: Lazy<Vec<glib::ParamSpec>> = Lazy::new(|| {
            vec![
                // gint like avdec_*'s, so the same pipeline strings work with both.
                glib::ParamSpecInt::builder("max-threads")
                    .nick("Maximum decode threads")
                    .blurb("Maximum number of decoding threads (0 = one per core)")
                    .minimum(0)
                    .default_value(DEFAULT_MAX_THREADS as i32)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("thread-type", DEFAULT_THREAD_TYPE)
                    .nick("Thread type")
                    .blurb("How libavcodec spreads decoding over threads; frame threading adds latency")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("output-corrupt")
                    .nick("Output corrupt frames")
                    .blurb("Output pictures the codec flags as corrupt (their motion vectors are unreliable)")
                    .default_value(DEFAULT_OUTPUT_CORRUPT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("export-mvs")
                    .nick("Export motion vectors")
                    .blurb("Ask libavcodec for motion vectors and attach them as VssMotionMeta; off decodes like avdec_*")
                    .default_value(DEFAULT_EXPORT_MVS)
                    .mutable_ready()
                    .build(),
                // avdec_*'s name for the same choice.
                glib::ParamSpecBoolean::builder("direct-rendering")
                    .nick("Direct rendering")
                    .blurb("Experimental: hand out libavcodec's pictures uncopied (read-only) when downstream reads GstVideoMeta")
                    .default_value(DEFAULT_DIRECT_RENDERING)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = self.settings.lock().unwrap();
        match pspec.name() {
            "max-threads" => {
                settings.max_threads =
                    value.get::<i32>().expect("type checked upstream").max(0) as u32
            }
            "thread-type" => settings.thread_type = value.get().expect("type checked upstream"),
            "output-corrupt" => {
                settings.output_corrupt = value.get().expect("type checked upstream")
            }
            "export-mvs" => settings.export_mvs = value.get().expect("type checked upstream"),
            "direct-rendering" => {
                settings.direct_rendering = value.get().expect("type checked upstream")
            }
            _ => unimplemented!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = self.settings.lock().unwrap();
        match pspec.name() {
            "max-threads" => (settings.max_threads as i32).to_value(),
            "thread-type" => settings.thread_type.to_value(),
            "output-corrupt" => settings.output_corrupt.to_value(),
            "export-mvs" => settings.export_mvs.to_value(),
            "direct-rendering" => settings.direct_rendering.to_value(),
            _ => unimplemented!(),
        }
    }
}

impl GstObjectImpl for VssDec {}

impl ElementImpl for VssDec {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: Lazy<gst::subclass::ElementMetadata> = Lazy::new(|| {
            gst::subclass::ElementMetadata::new(
                "VSS motion-vector decoder",
                "Codec/Decoder/Video",
                "Decodes H.264, H.265, MPEG-4 Part 2 and MPEG-2 with libavcodec and attaches the \
                 codec's motion vectors and picture type (VssMotionMeta) to every frame. \
                 FFmpeg exports no vectors for H.265: its frames say none are available.",
                "vss developers",
            )
        });
        Some(&*ELEMENT_METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: Lazy<Vec<gst::PadTemplate>> = Lazy::new(|| {
            let sink_caps = gst::Caps::builder_full()
                .structure(
                    gst::Structure::builder("video/x-h264")
                        .field(
                            "stream-format",
                            gst::List::new(["avc", "avc3", "byte-stream"]),
                        )
                        .field("alignment", "au")
                        .build(),
                )
                .structure(
                    gst::Structure::builder("video/x-h265")
                        .field(
                            "stream-format",
                            gst::List::new(["hvc1", "hev1", "byte-stream"]),
                        )
                        .field("alignment", "au")
                        .build(),
                )
                .structure(
                    gst::Structure::builder("video/mpeg")
                        .field("mpegversion", 4i32)
                        .field("systemstream", false)
                        .field("parsed", true)
                        .build(),
                )
                .structure(
                    gst::Structure::builder("video/x-divx")
                        .field("divxversion", gst::IntRange::new(4i32, 5))
                        .build(),
                )
                .structure(gst::Structure::builder("video/x-xvid").build())
                .structure(
                    gst::Structure::builder("video/mpeg")
                        .field("mpegversion", 2i32)
                        .field("systemstream", false)
                        .field("parsed", true)
                        .build(),
                )
                .build();
            // Formats only, as avdec's template: size and frame-rate ranges here would be
            // proxied upstream and refuse the odd rates a damaged SPS announces (a negative
            // frame rate, say), which libavcodec decodes fine.
            let src_caps = gst::Caps::builder("video/x-raw")
                .field(
                    "format",
                    gst::List::new(
                        [
                            gst_video::VideoFormat::I420,
                            gst_video::VideoFormat::Nv12,
                            gst_video::VideoFormat::Y42b,
                            gst_video::VideoFormat::Y444,
                            gst_video::VideoFormat::Gray8,
                            gst_video::VideoFormat::I42010le,
                            gst_video::VideoFormat::I42210le,
                            gst_video::VideoFormat::Y44410le,
                        ]
                        .map(|f| f.to_str()),
                    ),
                )
                .build();
            vec![
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &sink_caps,
                )
                .expect("valid sink template"),
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &src_caps,
                )
                .expect("valid src template"),
            ]
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl VideoDecoderImpl for VssDec {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        // Input comes whole-picture aligned from the parsers.
        self.obj().set_packetized(true);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock().unwrap() = None;
        Ok(())
    }

    fn set_format(
        &self,
        input_state: &gst_video::VideoCodecState<'static, gst_video::video_codec_state::Readable>,
    ) -> Result<(), gst::LoggableError> {
        let caps = input_state
            .caps()
            .ok_or_else(|| gst::loggable_error!(CAT, "input state has no caps"))?;
        let s = caps
            .structure(0)
            .ok_or_else(|| gst::loggable_error!(CAT, "empty input caps"))?;
        let codec = match s.name().as_str() {
            "video/x-h264" => CodecKind::H264,
            "video/x-h265" => CodecKind::Hevc,
            "video/x-divx" | "video/x-xvid" => CodecKind::Mpeg4Part2,
            "video/mpeg" => match s.get::<i32>("mpegversion") {
                Ok(4) => CodecKind::Mpeg4Part2,
                Ok(2) => CodecKind::Mpeg2,
                _ => return Err(gst::loggable_error!(CAT, "unsupported MPEG caps {s}")),
            },
            other => return Err(gst::loggable_error!(CAT, "unsupported caps {other}")),
        };
        let extradata = input_state
            .codec_data()
            .and_then(|b| b.map_readable().ok().map(|m| m.as_slice().to_vec()));

        // Hand out what the old decoder still holds before replacing it.
        if self.state.lock().unwrap().is_some() {
            let _ = self.drain_decoder();
        }

        let settings = *self.settings.lock().unwrap();
        let config = DecoderConfig {
            codec,
            extradata,
            threads: settings.max_threads as usize,
            thread_type: settings.thread_type.into(),
            export_mvs: settings.export_mvs,
            output_corrupt: settings.output_corrupt,
        };
        let decoder = Decoder::new(&config).map_err(|e| gst::loggable_error!(CAT, "{}", e))?;
        gst::debug!(
            CAT,
            imp = self,
            "opened {} decoder for {caps}",
            codec.name()
        );
        *self.state.lock().unwrap() = Some(State {
            decoder,
            input_state: input_state.clone(),
            output: None,
            latency_frames: u32::MAX,
        });
        Ok(())
    }

    fn handle_frame(
        &self,
        frame: gst_video::VideoCodecFrame,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let number = frame.system_frame_number();
        let sent = {
            let input = frame.input_buffer().ok_or(gst::FlowError::Error)?;
            let map = input.map_readable().map_err(|_| gst::FlowError::Error)?;
            let mut guard = self.state.lock().unwrap();
            let state = guard.as_mut().ok_or(gst::FlowError::NotNegotiated)?;
            state.decoder.send(map.as_slice(), i64::from(number))
        };
        drop(frame);
        if let Err(err) = sent {
            // Corrupt input: warn and keep going; the codec resynchronises at the next keyframe.
            // With frame threads the error may belong to an earlier packet, so no frame is
            // dropped here: frames that yield no picture are released as stale, with a warning.
            gst::element_imp_warning!(
                self,
                gst::StreamError::Decode,
                ("corrupt data near frame {}", number),
                ["{err}"]
            );
            // The base class counts errors against max-errors (-1, the default, ignores them).
            gst_video::video_decoder_error!(
                self.obj(),
                1,
                gst::StreamError::Decode,
                ["frame {number}: {err}"]
            )?;
        }
        self.push_decoded()?;
        self.release_stale_frames(Some(number));
        Ok(gst::FlowSuccess::Ok)
    }

    fn flush(&self) -> bool {
        if let Some(state) = self.state.lock().unwrap().as_mut() {
            state.decoder.flush();
        }
        true
    }

    fn drain(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.drain_decoder()
    }

    fn decide_allocation(
        &self,
        query: &mut gst::query::Allocation,
    ) -> Result<(), gst::LoggableError> {
        let video_meta = query
            .find_allocation_meta::<gst_video::VideoMeta>()
            .is_some();
        gst::debug!(CAT, imp = self, "downstream video meta: {video_meta}");
        self.downstream_video_meta
            .store(video_meta, Ordering::Relaxed);
        self.parent_decide_allocation(query)
    }

    fn finish(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.drain_decoder()
    }
}

impl VssDec {
    /// Pushes every picture held back in the decoder and readies it for more input.
    fn drain_decoder(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
        {
            let mut guard = self.state.lock().unwrap();
            let Some(state) = guard.as_mut() else {
                return Ok(gst::FlowSuccess::Ok);
            };
            if let Err(err) = state.decoder.send_eof() {
                gst::warning!(CAT, imp = self, "draining: {err}");
            }
        }
        let result = self.push_decoded();
        // Whatever is still pending after a full drain will never come out.
        self.release_stale_frames(None);
        if let Some(state) = self.state.lock().unwrap().as_mut() {
            // After EOF libavcodec accepts input again only once flushed.
            state.decoder.flush();
        }
        result.map(|_| gst::FlowSuccess::Ok)
    }

    /// Takes every picture the decoder has ready and finishes its frame.
    fn push_decoded(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
        let obj = self.obj();
        let (export, direct) = {
            let settings = self.settings.lock().unwrap();
            (settings.export_mvs, settings.direct_rendering)
        };
        // libavcodec consumes an error when it reports it; the bound only guards against a
        // decoder that would repeat one forever.
        let mut errors = 0;
        loop {
            let mut guard = self.state.lock().unwrap();
            let Some(state) = guard.as_mut() else {
                return Ok(gst::FlowSuccess::Ok);
            };
            let kind = state.decoder.kind();
            let delay = state.decoder.delay_frames();
            if delay != state.latency_frames {
                state.latency_frames = delay;
                self.update_latency(&state.input_state, delay);
            }
            let picture = match state.decoder.receive() {
                Ok(Some(picture)) => picture,
                Ok(None) => return Ok(gst::FlowSuccess::Ok),
                Err(err) => {
                    drop(guard);
                    gst_video::video_decoder_error!(obj, 1, gst::StreamError::Decode, ["{err}"])?;
                    errors += 1;
                    if errors > 16 {
                        return Ok(gst::FlowSuccess::Ok);
                    }
                    continue;
                }
            };
            let Some(number) = picture.tag.and_then(|t| i32::try_from(t).ok()) else {
                gst::warning!(
                    CAT,
                    imp = self,
                    "decoded picture without a frame tag: skipped"
                );
                continue;
            };
            let Some(mut frame) = obj.frame(number) else {
                gst::debug!(
                    CAT,
                    imp = self,
                    "frame {number} already gone: picture skipped"
                );
                continue;
            };
            if let Err(flow) = self.ensure_output(&mut state.output, &state.input_state, &picture) {
                drop(guard);
                obj.drop_frame(frame)?;
                return Err(flow);
            }

            if picture.corrupt {
                frame.set_flags(gst_video::VideoCodecFrameFlags::CORRUPTED);
            }
            let output_info = obj
                .output_state()
                .map(|s| s.info().clone())
                .ok_or(gst::FlowError::NotNegotiated)?;
            let shared = if direct && self.downstream_video_meta.load(Ordering::Relaxed) {
                picture.share_planes()
            } else {
                None
            };
            if let Some(planes) = shared {
                frame.set_output_buffer(shared_buffer(planes, &output_info)?);
            } else {
                if let Err(flow) = obj.allocate_output_frame(&mut frame, None) {
                    drop(guard);
                    obj.drop_frame(frame)?;
                    return Err(flow);
                }
                let buffer = frame.output_buffer_mut().ok_or(gst::FlowError::Error)?;
                copy_picture(&picture, buffer, &output_info)?;
            }
            let buffer = frame.output_buffer_mut().ok_or(gst::FlowError::Error)?;

            let info = MotionInfo {
                picture_type: picture.picture_type,
                keyframe: picture.keyframe,
                vectors_available: export && kind.exports_motion_vectors(),
                vectors: picture.motion_vectors(),
            };
            MotionMeta::add(buffer, info);
            drop(guard);
            obj.finish_frame(frame)?;
        }
    }

    /// (Re)negotiates the output caps when the picture's format, size or colorimetry changes.
    fn ensure_output(
        &self,
        output: &mut Option<OutputFormat>,
        input_state: &gst_video::VideoCodecState<'static, gst_video::video_codec_state::Readable>,
        picture: &Picture,
    ) -> Result<(), gst::FlowError> {
        let Some(layout) = picture.layout else {
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                ["libavcodec produced a pixel format vssdec cannot output"]
            );
            return Err(gst::FlowError::NotNegotiated);
        };
        let wanted = OutputFormat {
            layout,
            width: picture.width,
            height: picture.height,
            colorimetry: picture.colorimetry,
        };
        if *output == Some(wanted) && !self.obj().src_pad().check_reconfigure() {
            return Ok(());
        }
        let format = match layout {
            PixelLayout::I420 => gst_video::VideoFormat::I420,
            PixelLayout::Nv12 => gst_video::VideoFormat::Nv12,
            PixelLayout::Y42b => gst_video::VideoFormat::Y42b,
            PixelLayout::Y444 => gst_video::VideoFormat::Y444,
            PixelLayout::Gray8 => gst_video::VideoFormat::Gray8,
            PixelLayout::I420_10le => gst_video::VideoFormat::I42010le,
            PixelLayout::I422_10le => gst_video::VideoFormat::I42210le,
            PixelLayout::Y444_10le => gst_video::VideoFormat::Y44410le,
        };
        let obj = self.obj();
        let mut output_state =
            obj.set_output_state(format, picture.width, picture.height, Some(input_state))?;
        // The base class took the parser's colorimetry (or the format's defaults); what the
        // codec says about the pictures themselves wins, as in avdec_*.
        let info = output_state.info().clone();
        let colorimetry = merged_colorimetry(info.colorimetry(), &picture.colorimetry);
        if colorimetry != info.colorimetry() {
            let info = gst_video::VideoInfo::builder_from_info(&info)
                .colorimetry(&colorimetry)
                .build()
                .map_err(|_| gst::FlowError::NotNegotiated)?;
            output_state.set_info(info);
        }
        gst::debug!(
            CAT,
            imp = self,
            "output {format:?} {}x{} colorimetry {colorimetry} (codec says {:?})",
            picture.width,
            picture.height,
            picture.colorimetry
        );
        if obj.negotiate(output_state).is_err() {
            // Going down (PAUSED->READY) while negotiating fails the caps query too: that is
            // flushing, as avdec_h264 reports it, not a stream error upstream should post.
            return Err(
                if obj.src_pad().pad_flags().contains(gst::PadFlags::FLUSHING) {
                    gst::FlowError::Flushing
                } else {
                    gst::FlowError::NotNegotiated
                },
            );
        }
        *output = Some(wanted);
        Ok(())
    }

    fn update_latency(
        &self,
        input_state: &gst_video::VideoCodecState<'static, gst_video::video_codec_state::Readable>,
        delay_frames: u32,
    ) {
        let fps = input_state.info().fps();
        // Unknown rate: assume 25 fps, as the base classes do for live sources.
        let (num, den) = if fps.numer() > 0 && fps.denom() > 0 {
            (fps.numer() as u64, fps.denom() as u64)
        } else {
            (25, 1)
        };
        let latency = gst::ClockTime::SECOND
            .mul_div_floor(u64::from(delay_frames) * den, num)
            .unwrap_or(gst::ClockTime::ZERO);
        gst::debug!(CAT, imp = self, "latency {delay_frames} frames = {latency}");
        self.obj().set_latency(latency, latency);
    }

    /// Releases frames the codec will never output (dropped inside libavcodec: undecodable data,
    /// or pictures before the first keyframe), with one warning per batch.
    fn release_stale_frames(&self, newest: Option<u32>) {
        let delay = self
            .state
            .lock()
            .unwrap()
            .as_ref()
            .map_or(0, |s| s.decoder.delay_frames());
        let obj = self.obj();
        let mut skipped = Vec::new();
        for frame in obj.frames() {
            let number = frame.system_frame_number();
            let stale = match newest {
                Some(newest) => number < newest.saturating_sub(delay + STALE_FRAME_SLACK),
                None => true,
            };
            if stale {
                skipped.push(number);
                obj.release_frame(frame);
            }
        }
        if !skipped.is_empty() {
            gst::element_imp_warning!(
                self,
                gst::StreamError::Decode,
                (
                    "{} frame(s) produced no picture (corrupt data or no keyframe yet): skipped",
                    skipped.len()
                ),
                ["frames {skipped:?}"]
            );
        }
    }
}

/// `base` with every field the codec specifies replaced by the codec's value.
fn merged_colorimetry(
    base: gst_video::VideoColorimetry,
    codec: &Colorimetry,
) -> gst_video::VideoColorimetry {
    let range = match codec.full_range {
        Some(true) => gst_video::VideoColorRange::Range0_255,
        Some(false) => gst_video::VideoColorRange::Range16_235,
        None => base.range(),
    };
    // An RGB "matrix" cannot describe the YUV formats vssdec outputs.
    let matrix = match gst_video::VideoColorMatrix::from_iso(codec.matrix) {
        gst_video::VideoColorMatrix::Unknown | gst_video::VideoColorMatrix::Rgb => base.matrix(),
        m => m,
    };
    let transfer = match gst_video::VideoTransferFunction::from_iso(codec.transfer) {
        gst_video::VideoTransferFunction::Unknown => base.transfer(),
        t => t,
    };
    let primaries = match gst_video::VideoColorPrimaries::from_iso(codec.primaries) {
        gst_video::VideoColorPrimaries::Unknown => base.primaries(),
        p => p,
    };
    gst_video::VideoColorimetry::new(range, matrix, transfer, primaries)
}

/// An output buffer made of libavcodec's own planes (read-only memory: a writer downstream
/// gets a copy), described by a GstVideoMeta.
fn shared_buffer(
    planes: Vec<SharedPlane>,
    info: &gst_video::VideoInfo,
) -> Result<gst::Buffer, gst::FlowError> {
    let mut buffer = gst::Buffer::new();
    let b = buffer.get_mut().ok_or(gst::FlowError::Error)?;
    let mut offsets = Vec::with_capacity(planes.len());
    let mut strides = Vec::with_capacity(planes.len());
    let mut offset = 0;
    for plane in planes {
        offsets.push(offset);
        strides.push(i32::try_from(plane.stride()).map_err(|_| gst::FlowError::Error)?);
        offset += plane.as_ref().len();
        b.append_memory(gst::Memory::from_slice(plane));
    }
    gst_video::VideoMeta::add_full(
        b,
        gst_video::VideoFrameFlags::empty(),
        info.format(),
        info.width(),
        info.height(),
        &offsets,
        &strides,
    )
    .map_err(|_| gst::FlowError::Error)?;
    Ok(buffer)
}

/// Copies a decoded picture into a negotiated output buffer, plane by plane.
fn copy_picture(
    picture: &Picture,
    buffer: &mut gst::BufferRef,
    info: &gst_video::VideoInfo,
) -> Result<(), gst::FlowError> {
    let mut vframe = gst_video::VideoFrameRef::from_buffer_ref_writable(buffer, info)
        .map_err(|_| gst::FlowError::Error)?;
    let planes = (vframe.n_planes() as usize).min(picture.planes());
    for plane in 0..planes {
        let src_stride = picture.stride(plane);
        let dst_stride = vframe.plane_stride()[plane] as usize;
        let rows = picture.plane_height(plane) as usize;
        let src = picture.plane_data(plane);
        let dst = vframe
            .plane_data_mut(plane as u32)
            .map_err(|_| gst::FlowError::Error)?;
        if src_stride == dst_stride {
            let n = (src_stride * rows).min(src.len()).min(dst.len());
            dst[..n].copy_from_slice(&src[..n]);
        } else {
            let row = src_stride.min(dst_stride);
            for (d, s) in dst
                .chunks_mut(dst_stride)
                .zip(src.chunks(src_stride))
                .take(rows)
            {
                let n = row.min(d.len()).min(s.len());
                d[..n].copy_from_slice(&s[..n]);
            }
        }
    }
    Ok(())
}
