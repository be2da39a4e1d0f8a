//! libavcodec video decoding with motion-vector export: packets in, pictures and vectors out.
//!
//! No GStreamer here: the `vssdec` element feeds packets tagged with its frame numbers and copies
//! the pictures it gets back. The whole motion-vector path follows FFmpeg's `extract_mvs.c`:
//! open with `flags2=+export_mvs`, decode, read `AV_FRAME_DATA_MOTION_VECTORS`.

use std::fmt;

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

#[derive(Debug)]
pub enum CodecError {
    NotFound(CodecKind),
    Open(CodecKind, ffmpeg::Error),
    Decode(ffmpeg::Error),
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::NotFound(c) => write!(f, "libavcodec has no {} decoder", c.name()),
            CodecError::Open(c, e) => write!(f, "opening the {} decoder failed: {e}", c.name()),
            CodecError::Decode(e) => write!(f, "decoding failed: {e}"),
        }
    }
}

impl std::error::Error for CodecError {}

/// Pixel layouts vssdec can hand downstream without conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelLayout {
    I420,
    /// I420 with full-range (JPEG) levels.
    I420Full,
    Nv12,
    Y42b,
    Y444,
    Gray8,
    I420_10le,
    I422_10le,
    Y444_10le,
}

impl PixelLayout {
    fn from_av(format: ffmpeg::format::Pixel) -> Option<Self> {
        use ffmpeg::format::Pixel;
        Some(match format {
            Pixel::YUV420P => PixelLayout::I420,
            Pixel::YUVJ420P => PixelLayout::I420Full,
            Pixel::NV12 => PixelLayout::Nv12,
            Pixel::YUV422P | Pixel::YUVJ422P => PixelLayout::Y42b,
            Pixel::YUV444P | Pixel::YUVJ444P => PixelLayout::Y444,
            Pixel::GRAY8 => PixelLayout::Gray8,
            Pixel::YUV420P10LE => PixelLayout::I420_10le,
            Pixel::YUV422P10LE => PixelLayout::I422_10le,
            Pixel::YUV444P10LE => PixelLayout::Y444_10le,
            _ => return None,
        })
    }
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

    /// Appends this picture's motion vectors to `out` (cleared first). Empty for intra pictures.
    pub fn motion_vectors_into(&self, out: &mut Vec<MotionVector>) {
        out.clear();
        let Some(data) = self.frame.side_data(side_data::Type::MotionVectors) else {
            return;
        };
        let bytes = data.data();
        let size = std::mem::size_of::<ffi::AVMotionVector>();
        out.reserve(bytes.len() / size);
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
    /// The tag travels in `reordered_opaque`, as gst-libav does: frame threads copy it per
    /// picture, while packet pts can shift by one after a packet that yields no picture.
    pub fn send(&mut self, data: &[u8], tag: i64) -> Result<(), CodecError> {
        let mut packet = ffmpeg::Packet::copy(data);
        packet.set_pts(Some(tag));
        packet.set_dts(None);
        // SAFETY: plain field write on our opened context, read back by libavcodec on send.
        unsafe {
            (*self.inner.as_mut_ptr()).reordered_opaque = tag;
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
        // SAFETY: plain field reads on a frame that receive_frame just filled.
        let (pict_type, key_frame, flags, sar, tag) = unsafe {
            let f = frame.as_ptr();
            (
                (*f).pict_type,
                (*f).key_frame != 0,
                (*f).flags,
                (*f).sample_aspect_ratio,
                (*f).reordered_opaque,
            )
        };
        let picture_type = match pict_type {
            ffi::AVPictureType::AV_PICTURE_TYPE_I => PictureType::I,
            ffi::AVPictureType::AV_PICTURE_TYPE_P => PictureType::P,
            ffi::AVPictureType::AV_PICTURE_TYPE_B => PictureType::B,
            ffi::AVPictureType::AV_PICTURE_TYPE_NONE => PictureType::Unknown,
            _ => PictureType::Other,
        };
        Ok(Some(Picture {
            frame,
            tag: Some(tag),
            picture_type,
            keyframe: key_frame,
            corrupt: flags & ffi::AV_FRAME_FLAG_CORRUPT != 0,
            layout: PixelLayout::from_av(frame.format()),
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
