//! libavcodec video decoding with motion-vector export: packets in, pictures and vectors out.
//!
//! No GStreamer here: the `vssdec` element feeds packets tagged with its frame numbers and copies
//! the pictures it gets back. The whole motion-vector path follows FFmpeg's `extract_mvs.c`:
//! open with `flags2=+export_mvs`, decode, read `AV_FRAME_DATA_MOTION_VECTORS`.

use std::sync::Arc;

use ffmpeg::ffi;
use ffmpeg::util::frame::side_data;

use crate::motion::{MotionVector, PictureType};

/// The codecs `vssdec` accepts, by their GStreamer caps name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecKind {
    H264,
    Hevc,
    Mpeg4Part2,
    Mpeg2,
}

impl CodecKind {
    fn id(self) -> ffmpeg::codec::Id {
        match self {
            CodecKind::H264 => ffmpeg::codec::Id::H264,
            CodecKind::Hevc => ffmpeg::codec::Id::HEVC,
            CodecKind::Mpeg4Part2 => ffmpeg::codec::Id::MPEG4,
            CodecKind::Mpeg2 => ffmpeg::codec::Id::MPEG2VIDEO,
        }
    }

    /// Whether FFmpeg 5.1 fills `AV_FRAME_DATA_MOTION_VECTORS` for this codec. Its HEVC decoder
    /// has no export_mvs support, so HEVC frames say "none available" instead of an empty list
    /// that would read as "no motion".
    pub fn exports_motion_vectors(self) -> bool {
        !matches!(self, CodecKind::Hevc)
    }

    pub fn name(self) -> &'static str {
        match self {
            CodecKind::H264 => "H.264",
            CodecKind::Hevc => "H.265",
            CodecKind::Mpeg4Part2 => "MPEG-4 Part 2",
            CodecKind::Mpeg2 => "MPEG-2",
        }
    }
}

/// How libavcodec spreads decoding over threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ThreadType {
    /// Frame and slice threading, as libavcodec picks.
    #[default]
    Auto,
    /// Frame threading: highest throughput, adds one frame of latency per thread.
    Frame,
    /// Slice threading: no added latency, helps only streams with several slices.
    Slice,
}

#[derive(Debug, Clone)]
pub struct DecoderConfig {
    pub codec: CodecKind,
    /// Out-of-band codec setup (avcC / hvcC / MPEG-4 VOL), as in caps' `codec_data`.
    pub extradata: Option<Vec<u8>>,
    /// 0 = one per core.
    pub threads: usize,
    pub thread_type: ThreadType,
    pub export_mvs: bool,
    /// Output pictures the codec flags as corrupt (e.g. decoded without their reference).
    pub output_corrupt: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("libavcodec has no {} decoder", .0.name())]
    NotFound(CodecKind),
    #[error("opening the {name} decoder failed: {err}", name = .0.name(), err = .1)]
    Open(CodecKind, #[source] ffmpeg::Error),
    #[error("decoding failed: {0}")]
    Decode(#[source] ffmpeg::Error),
}

/// Pixel layouts vssdec can hand downstream without conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelLayout {
    I420,
    Nv12,
    Y42b,
    Y444,
    Gray8,
    I420_10le,
    I422_10le,
    Y444_10le,
}

impl PixelLayout {
    /// The layout of `format`, and whether the format itself says full range (FFmpeg's
    /// deprecated `yuvj*` formats, which its H.264 and MJPEG decoders still give).
    fn from_av(format: ffmpeg::format::Pixel) -> Option<(Self, bool)> {
        use ffmpeg::format::Pixel;
        Some(match format {
            Pixel::YUV420P => (PixelLayout::I420, false),
            Pixel::YUVJ420P => (PixelLayout::I420, true),
            Pixel::NV12 => (PixelLayout::Nv12, false),
            Pixel::YUV422P => (PixelLayout::Y42b, false),
            Pixel::YUVJ422P => (PixelLayout::Y42b, true),
            Pixel::YUV444P => (PixelLayout::Y444, false),
            Pixel::YUVJ444P => (PixelLayout::Y444, true),
            Pixel::GRAY8 => (PixelLayout::Gray8, false),
            Pixel::YUV420P10LE => (PixelLayout::I420_10le, false),
            Pixel::YUV422P10LE => (PixelLayout::I422_10le, false),
            Pixel::YUV444P10LE => (PixelLayout::Y444_10le, false),
            _ => return None,
        })
    }
}

/// How a picture's samples map to colour, as far as the stream says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Colorimetry {
    /// Full (JPEG, 0..255) or limited (video, 16..235) range; None when the stream does not say.
    pub full_range: Option<bool>,
    /// ITU-T H.273 code points, which FFmpeg's AVColorSpace, AVColorTransferCharacteristic
    /// and AVColorPrimaries use too; 2 when the stream does not say.
    pub matrix: u32,
    pub transfer: u32,
    pub primaries: u32,
}

/// One decoded picture, borrowed from the decoder until the next `receive`.
pub struct Picture<'a> {
    frame: &'a ffmpeg::frame::Video,
    /// The tag given to `send` with the packet this picture came from.
    pub tag: Option<i64>,
    pub picture_type: PictureType,
    pub keyframe: bool,
    pub corrupt: bool,
    pub layout: Option<PixelLayout>,
    pub colorimetry: Colorimetry,
    pub width: u32,
    pub height: u32,
    /// Sample aspect ratio (num, den); (0, 1) if unknown.
    pub pixel_aspect: (i32, i32),
}

impl Picture<'_> {
    pub fn planes(&self) -> usize {
        self.frame.planes()
    }

    pub fn stride(&self, plane: usize) -> usize {
        self.frame.stride(plane)
    }

    /// The bytes of one plane, `stride * plane_height` long.
    pub fn plane_data(&self, plane: usize) -> &[u8] {
        self.frame.data(plane)
    }

    pub fn plane_height(&self, plane: usize) -> u32 {
        self.frame.plane_height(plane)
    }

    /// This picture's planes, shared rather than copied: each keeps the picture's buffers
    /// allocated (libavcodec counts the references) until dropped, whatever the decoder does
    /// next. None if the picture's memory is not reference counted or a plane runs bottom-up.
    pub fn share_planes(&self) -> Option<Vec<SharedPlane>> {
        let frame = FrameRef::new(self.frame)?;
        let frame = Arc::new(frame);
        (0..self.planes())
            .map(|plane| {
                // SAFETY: plain field reads of a frame we hold a reference to.
                let (data, linesize) = unsafe {
                    let f = frame.0;
                    ((*f).data[plane], (*f).linesize[plane])
                };
                let stride = usize::try_from(linesize).ok().filter(|&s| s > 0)?;
                (!data.is_null()).then(|| SharedPlane {
                    _frame: frame.clone(),
                    data,
                    len: stride * self.plane_height(plane) as usize,
                    stride,
                })
            })
            .collect()
    }

    /// This picture's motion vectors, in a vector allocated for their number. Empty for intra
    /// pictures.
    pub fn motion_vectors(&self) -> Vec<MotionVector> {
        let mut out = Vec::new();
        self.motion_vectors_into(&mut out);
        out
    }

    /// Appends this picture's motion vectors to `out` (cleared first). Empty for intra pictures.
    pub fn motion_vectors_into(&self, out: &mut Vec<MotionVector>) {
        out.clear();
        let Some(data) = self.frame.side_data(side_data::Type::MotionVectors) else {
            return;
        };
        let bytes = data.data();
        let size = std::mem::size_of::<ffi::AVMotionVector>();
        out.reserve_exact(bytes.len() / size);
        for chunk in bytes.chunks_exact(size) {
            // SAFETY: FFmpeg stores a packed array of AVMotionVector; read_unaligned copes with
            // the byte slice having no alignment guarantee.
            let mv: ffi::AVMotionVector =
                unsafe { std::ptr::read_unaligned(chunk.as_ptr() as *const ffi::AVMotionVector) };
            out.push(MotionVector {
                source: mv.source,
                w: mv.w,
                h: mv.h,
                src_x: mv.src_x,
                src_y: mv.src_y,
                dst_x: mv.dst_x,
                dst_y: mv.dst_y,
                motion_x: mv.motion_x,
                motion_y: mv.motion_y,
                motion_scale: mv.motion_scale,
            });
        }
    }
}

/// A reference of our own to a decoded frame's buffers.
struct FrameRef(*mut ffi::AVFrame);

impl FrameRef {
    fn new(frame: &ffmpeg::frame::Video) -> Option<Self> {
        // SAFETY: av_frame_ref on a fresh frame adds references to the source's buffers (or
        // fails); av_frame_free releases them and the frame.
        unsafe {
            if (*frame.as_ptr()).buf[0].is_null() {
                return None;
            }
            let mut own = ffi::av_frame_alloc();
            if own.is_null() {
                return None;
            }
            if ffi::av_frame_ref(own, frame.as_ptr()) < 0 {
                ffi::av_frame_free(&mut own);
                return None;
            }
            Some(FrameRef(own))
        }
    }
}

impl Drop for FrameRef {
    fn drop(&mut self) {
        // SAFETY: we own this frame and its references.
        unsafe { ffi::av_frame_free(&mut self.0) }
    }
}

// SAFETY: the frame is only read after creation, and libavcodec's buffer references may be
// released from any thread (its buffer pools lock).
unsafe impl Send for FrameRef {}
unsafe impl Sync for FrameRef {}

/// One plane of a decoded picture, shared with libavcodec, which may still predict other
/// pictures from it: read-only.
pub struct SharedPlane {
    /// Held for its references only.
    _frame: Arc<FrameRef>,
    data: *const u8,
    len: usize,
    stride: usize,
}

impl SharedPlane {
    /// Bytes from one row to the next.
    pub fn stride(&self) -> usize {
        self.stride
    }
}

impl AsRef<[u8]> for SharedPlane {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `data` points at `len` bytes of a buffer `frame` keeps referenced.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

// SAFETY: see FrameRef; the pointer is into memory the Arc keeps alive.
unsafe impl Send for SharedPlane {}

/// A libavcodec video decoder.
pub struct Decoder {
    inner: ffmpeg::decoder::Video,
    frame: ffmpeg::frame::Video,
    kind: CodecKind,
}

// SAFETY: the AVCodecContext is used from one thread at a time (the element holds it in a Mutex).
unsafe impl Send for Decoder {}

impl Decoder {
    pub fn new(config: &DecoderConfig) -> Result<Self, CodecError> {
        ffmpeg::init().map_err(|e| CodecError::Open(config.codec, e))?;
        let codec =
            ffmpeg::decoder::find(config.codec.id()).ok_or(CodecError::NotFound(config.codec))?;
        let mut context = ffmpeg::codec::Context::new_with_codec(codec);
        if let Some(extradata) = config.extradata.as_deref().filter(|d| !d.is_empty()) {
            set_extradata(&mut context, extradata);
        }
        let mut flags = ffmpeg::codec::Flags::empty();
        if config.output_corrupt {
            flags |= ffmpeg::codec::Flags::OUTPUT_CORRUPT;
        }
        context.set_flags(flags);
        #[cfg(ffmpeg_6_0)]
        // SAFETY: plain field write on a context we own, before opening it.
        unsafe {
            (*context.as_mut_ptr()).flags |= ffi::AV_CODEC_FLAG_COPY_OPAQUE as i32;
        }
        // 0 = one thread per core, as avdec_* counts them (libavcodec's own "auto" takes one
        // more, and with frame threads FFmpeg 5.1 then exported B-frame vectors that varied
        // from run to run in our tests).
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        context.set_threading(ffmpeg::codec::threading::Config {
            kind: match config.thread_type {
                ThreadType::Auto | ThreadType::Frame => ffmpeg::codec::threading::Type::Frame,
                ThreadType::Slice => ffmpeg::codec::threading::Type::Slice,
            },
            count: threads,
            ..Default::default()
        });
        if config.thread_type == ThreadType::Auto {
            // SAFETY: plain field write on a context we own, before opening it.
            unsafe {
                (*context.as_mut_ptr()).thread_type = ffi::FF_THREAD_FRAME | ffi::FF_THREAD_SLICE;
            }
        }
        let mut options = ffmpeg::Dictionary::new();
        if config.export_mvs {
            options.set("flags2", "+export_mvs");
        }
        let opened = context
            .decoder()
            .open_as_with(codec, options)
            .and_then(|o| o.video())
            .map_err(|e| CodecError::Open(config.codec, e))?;
        Ok(Decoder {
            inner: opened,
            frame: ffmpeg::frame::Video::empty(),
            kind: config.codec,
        })
    }

    pub fn kind(&self) -> CodecKind {
        self.kind
    }

    /// Frames the decoder holds back before output: reordering plus frame-thread pipelining.
    pub fn delay_frames(&self) -> u32 {
        // SAFETY: reads of plain fields of an opened context.
        unsafe {
            let ctx = self.inner.as_ptr();
            let reorder = (*ctx).has_b_frames.max(0) as u32;
            let threads = if (*ctx).active_thread_type & ffi::FF_THREAD_FRAME != 0 {
                ((*ctx).thread_count.max(1) - 1) as u32
            } else {
                0
            };
            reorder + threads
        }
    }

    /// Sends one compressed picture. `tag` comes back on the picture decoded from it.
    ///
    /// The tag travels as gst-libav sends its frame numbers: in `reordered_opaque` before
    /// FFmpeg 6 (frame threads copy it per picture, while packet pts can shift by one after a
    /// packet that yields no picture), in the packet's `opaque` with `AV_CODEC_FLAG_COPY_OPAQUE`
    /// from FFmpeg 6 on (`reordered_opaque` is gone in FFmpeg 7).
    pub fn send(&mut self, data: &[u8], tag: i64) -> Result<(), CodecError> {
        let mut packet = ffmpeg::Packet::copy(data);
        packet.set_pts(Some(tag));
        packet.set_dts(None);
        #[cfg(not(ffmpeg_6_0))]
        // SAFETY: plain field write on our opened context, read back by libavcodec on send.
        unsafe {
            (*self.inner.as_mut_ptr()).reordered_opaque = tag;
        }
        #[cfg(ffmpeg_6_0)]
        // SAFETY: plain field write on a packet we own; libavcodec copies it to the frame.
        unsafe {
            (*packet.as_mut_ptr()).opaque = tag as usize as *mut libc::c_void;
        }
        self.inner.send_packet(&packet).map_err(CodecError::Decode)
    }

    /// Signals end of stream; `receive` then returns the held-back pictures.
    pub fn send_eof(&mut self) -> Result<(), CodecError> {
        match self.inner.send_eof() {
            Ok(()) | Err(ffmpeg::Error::Eof) => Ok(()),
            Err(e) => Err(CodecError::Decode(e)),
        }
    }

    /// The next decoded picture, or `None` when the decoder needs more input (or is drained).
    pub fn receive(&mut self) -> Result<Option<Picture<'_>>, CodecError> {
        match self.inner.receive_frame(&mut self.frame) {
            Ok(()) => {}
            Err(ffmpeg::Error::Eof) => return Ok(None),
            Err(ffmpeg::Error::Other { errno }) if errno == libc::EAGAIN => return Ok(None),
            Err(e) => return Err(CodecError::Decode(e)),
        }
        let frame = &self.frame;
        // SAFETY: plain field reads on a frame that receive_frame just filled; all of them
        // exist from FFmpeg 5.1 on.
        let (pict_type, flags, sar, range, matrix, transfer, primaries) = unsafe {
            let f = frame.as_ptr();
            (
                (*f).pict_type,
                (*f).flags,
                (*f).sample_aspect_ratio,
                (*f).color_range,
                (*f).colorspace as u32,
                (*f).color_trc as u32,
                (*f).color_primaries as u32,
            )
        };
        let picture_type = match pict_type {
            ffi::AVPictureType::AV_PICTURE_TYPE_I => PictureType::I,
            ffi::AVPictureType::AV_PICTURE_TYPE_P => PictureType::P,
            ffi::AVPictureType::AV_PICTURE_TYPE_B => PictureType::B,
            ffi::AVPictureType::AV_PICTURE_TYPE_NONE => PictureType::Unknown,
            _ => PictureType::Other,
        };
        let format = PixelLayout::from_av(frame.format());
        let full_range = match range {
            _ if format.is_some_and(|(_, full)| full) => Some(true),
            ffi::AVColorRange::AVCOL_RANGE_JPEG => Some(true),
            ffi::AVColorRange::AVCOL_RANGE_MPEG => Some(false),
            _ => None,
        };
        Ok(Some(Picture {
            frame,
            tag: Some(frame_tag(frame)),
            picture_type,
            keyframe: frame.is_key(),
            corrupt: flags & ffi::AV_FRAME_FLAG_CORRUPT != 0,
            layout: format.map(|(layout, _)| layout),
            colorimetry: Colorimetry {
                full_range,
                matrix,
                transfer,
                primaries,
            },
            width: frame.width(),
            height: frame.height(),
            pixel_aspect: (sar.num, sar.den),
        }))
    }

    /// Drops every held-back picture and reference (seek/flush).
    pub fn flush(&mut self) {
        self.inner.flush();
    }
}

/// The tag [`Decoder::send`] gave the packet `frame` was decoded from.
#[cfg(not(ffmpeg_6_0))]
fn frame_tag(frame: &ffmpeg::frame::Video) -> i64 {
    // SAFETY: a plain field read on a frame receive_frame just filled.
    unsafe { (*frame.as_ptr()).reordered_opaque }
}

/// The tag [`Decoder::send`] gave the packet `frame` was decoded from.
#[cfg(ffmpeg_6_0)]
fn frame_tag(frame: &ffmpeg::frame::Video) -> i64 {
    // SAFETY: a plain field read on a frame receive_frame just filled.
    unsafe { (*frame.as_ptr()).opaque as usize as i64 }
}

fn set_extradata(context: &mut ffmpeg::codec::Context, data: &[u8]) {
    let padding = ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;
    // SAFETY: libavcodec owns `extradata` and frees it with av_free; it must be allocated with
    // av_malloc and padded with zeroes.
    unsafe {
        let buf = ffi::av_mallocz(data.len() + padding) as *mut u8;
        if buf.is_null() {
            return;
        }
        std::ptr::copy_nonoverlapping(data.as_ptr(), buf, data.len());
        let ctx = context.as_mut_ptr();
        if !(*ctx).extradata.is_null() {
            ffi::av_free((*ctx).extradata as *mut _);
        }
        (*ctx).extradata = buf;
        (*ctx).extradata_size = data.len() as i32;
    }
}
