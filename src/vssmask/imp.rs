//! vssmask: the element glue around `render` (properties, caps from the first meta, held-back
//! events, buffers in and out).

use std::sync::{Arc, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use once_cell::sync::Lazy;

use super::render::{self, ClassLut, MaskError, NearestGrid, Paint};
use crate::meta::{Segmentation, SegmentationMeta};
use crate::model::ClassInfo;

static CAT: Lazy<gst::DebugCategory> = Lazy::new(|| {
    gst::DebugCategory::new(
        "vssmask",
        gst::DebugColorFlags::empty(),
        Some("segmentation meta to mask video"),
    )
});

const DEFAULT_OUTPUT: Output = Output::ClassIds;
const DEFAULT_RESOLUTION: Resolution = Resolution::Frame;
const DEFAULT_ALPHA: f64 = 1.0;
/// The caps field listing the class names, index = class id.
const CLASSES_FIELD: &str = "classes";

#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstVssMaskOutput")]
pub enum Output {
    #[enum_value(
        name = "GRAY8 class ids (255 = no segmentation on this frame)",
        nick = "class-ids"
    )]
    ClassIds = 0,
    #[enum_value(
        name = "RGBA in the bundle's class colours, alpha from the alpha property",
        nick = "color"
    )]
    Color = 1,
    #[enum_value(
        name = "GRAY8 matte: 255 where the class is the class property, 0 elsewhere",
        nick = "matte"
    )]
    Matte = 2,
}

#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstVssMaskResolution")]
pub enum Resolution {
    #[enum_value(
        name = "The input frame's size (nearest scaling of the class map)",
        nick = "frame"
    )]
    Frame = 0,
    #[enum_value(name = "The class map's own size (the model's)", nick = "model")]
    Model = 1,
}

#[derive(Debug, Clone)]
struct Settings {
    output: Output,
    resolution: Resolution,
    /// Shared, so that copying the settings for each frame allocates nothing.
    class: Option<Arc<str>>,
    alpha: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            output: DEFAULT_OUTPUT,
            resolution: DEFAULT_RESOLUTION,
            class: None,
            alpha: DEFAULT_ALPHA,
        }
    }
}

impl Settings {
    /// What each mask pixel says, given the frame's class table.
    fn paint(&self, classes: &[ClassInfo]) -> Result<Paint, MaskError> {
        Ok(match self.output {
            Output::ClassIds => {
                render::check_classes(classes)?;
                Paint::ClassIds
            }
            Output::Color => Paint::Color {
                alpha: (self.alpha.clamp(0.0, 1.0) * 255.0).round() as u8,
            },
            Output::Matte => Paint::Matte {
                class: render::resolve_class(self.matte_class()?, classes)?,
            },
        })
    }

    fn matte_class(&self) -> Result<&str, MaskError> {
        self.class
            .as_deref()
            .filter(|c| !c.trim().is_empty())
            .ok_or(MaskError::NoMatteClass)
    }

    fn format(&self) -> gst_video::VideoFormat {
        match self.output {
            Output::Color => gst_video::VideoFormat::Rgba,
            Output::ClassIds | Output::Matte => gst_video::VideoFormat::Gray8,
        }
    }
}

/// What the src pad carries; new caps go out when a frame needs a different one.
#[derive(Debug, Clone, PartialEq)]
struct MaskFormat {
    format: gst_video::VideoFormat,
    width: u32,
    height: u32,
    fps: gst::Fraction,
    par: gst::Fraction,
    classes: Arc<[ClassInfo]>,
}

impl MaskFormat {
    fn caps(&self) -> Result<(gst::Caps, gst_video::VideoInfo), glib::BoolError> {
        let info = gst_video::VideoInfo::builder(self.format, self.width, self.height)
            .fps(self.fps)
            .par(self.par)
            .build()?;
        let mut caps = info.to_caps()?;
        caps.make_mut()
            .structure_mut(0)
            .ok_or_else(|| glib::bool_error!("caps without structure"))?
            .set(
                CLASSES_FIELD,
                gst::Array::new(self.classes.iter().map(|c| c.name.clone())),
            );
        Ok((caps, info))
    }
}

/// The negotiated output: its format, layout and the pool its buffers come from.
struct Negotiated {
    format: MaskFormat,
    info: gst_video::VideoInfo,
    pool: gst::BufferPool,
}

impl Drop for Negotiated {
    fn drop(&mut self) {
        let _ = self.pool.set_active(false);
    }
}

struct State {
    input: Option<gst_video::VideoInfo>,
    output: Option<Negotiated>,
    lut: Option<(Paint, Arc<[ClassInfo]>, ClassLut)>,
    grid: Option<NearestGrid>,
    /// The class table and map size of the last meta, for the blank masks of frames without.
    last: Option<(Arc<[ClassInfo]>, u32, u32)>,
    /// Serialized events that must follow the caps, held until the first buffer decides them.
    held_events: Vec<gst::Event>,
    frames: u64,
    missing: u64,
}

impl State {
    fn new() -> State {
        State {
            input: None,
            output: None,
            lut: None,
            grid: None,
            last: None,
            held_events: Vec::new(),
            frames: 0,
            missing: 0,
        }
    }

    /// The lookup table and scaling grid for this frame, rebuilt only when something changed.
    fn painter(
        &mut self,
        paint: Paint,
        classes: &Arc<[ClassInfo]>,
        map: (u32, u32),
        size: (u32, u32),
    ) -> (&ClassLut, &NearestGrid) {
        let lut_stale = self
            .lut
            .as_ref()
            .is_none_or(|(p, c, _)| *p != paint || !same_classes(c, classes));
        if lut_stale {
            self.lut = Some((paint, classes.clone(), ClassLut::new(paint, classes)));
        }
        let grid_stale = !self
            .grid
            .as_ref()
            .is_some_and(|g| g.fits(map.0, map.1, size.0, size.1));
        if grid_stale {
            self.grid = Some(NearestGrid::new(map.0, map.1, size.0, size.1));
        }
        (
            &self.lut.as_ref().expect("set above").2,
            self.grid.as_ref().expect("set above"),
        )
    }
}

fn same_classes(a: &Arc<[ClassInfo]>, b: &Arc<[ClassInfo]>) -> bool {
    Arc::ptr_eq(a, b) || a[..] == b[..]
}

/// What one input buffer becomes: new caps to send first (with the events held back for
/// them), then the mask.
struct MaskFrame {
    caps: Option<gst::Caps>,
    events: Vec<gst::Event>,
    buffer: gst::Buffer,
}

pub struct VssMask {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

#[glib::object_subclass]
impl ObjectSubclass for VssMask {
    const NAME: &'static str = "GstVssMask";
    type Type = super::VssMask;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let templ = klass.pad_template("sink").expect("sink template");
        let sinkpad = gst::Pad::builder_from_template(&templ)
            .chain_function(|pad, parent, buffer| {
                VssMask::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |mask| mask.sink_chain(pad, buffer),
                )
            })
            .event_function(|pad, parent, event| {
                VssMask::catch_panic_pad_function(
                    parent,
                    || false,
                    |mask| mask.sink_event(pad, event),
                )
            })
            .query_function(|pad, parent, query| {
                VssMask::catch_panic_pad_function(
                    parent,
                    || false,
                    |mask| mask.sink_query(pad, query),
                )
            })
            .flags(gst::PadFlags::ACCEPT_TEMPLATE)
            .build();
        let templ = klass.pad_template("src").expect("src template");
        let srcpad = gst::Pad::builder_from_template(&templ)
            .query_function(|pad, parent, query| {
                VssMask::catch_panic_pad_function(
                    parent,
                    || false,
                    |mask| mask.src_query(pad, query),
                )
            })
            .build();
        VssMask {
            sinkpad,
            srcpad,
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(None),
        }
    }
}

impl ObjectImpl for VssMask {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: Lazy<Vec<glib::ParamSpec>> = Lazy::new(|| {
            vec![
                glib::ParamSpecEnum::builder_with_default("output", DEFAULT_OUTPUT)
                    .nick("Output")
                    .blurb("What the mask's pixels say: class-ids (GRAY8), color (RGBA palette) or matte (GRAY8, 255 where the class is `class`)")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("resolution", DEFAULT_RESOLUTION)
                    .nick("Resolution")
                    .blurb("Mask size: frame (the input frame's, nearest scaling) or model (the class map's own)")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("class")
                    .nick("Matte class")
                    .blurb("The class output=matte marks: a class name of the bundle (case-insensitive, e.g. Car) or a class id")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("alpha")
                    .nick("Alpha")
                    .blurb("Opacity of the classified pixels with output=color (frames without segmentation are transparent)")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_ALPHA)
                    .mutable_playing()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        match pspec.name() {
            "output" => s.output = value.get().expect("type checked upstream"),
            "resolution" => s.resolution = value.get().expect("type checked upstream"),
            "class" => {
                s.class = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .map(Arc::from)
            }
            "alpha" => s.alpha = value.get().expect("type checked upstream"),
            _ => unimplemented!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "output" => s.output.to_value(),
            "resolution" => s.resolution.to_value(),
            "class" => s.class.as_deref().to_value(),
            "alpha" => s.alpha.to_value(),
            _ => unimplemented!(),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.sinkpad).expect("adding sink pad");
        obj.add_pad(&self.srcpad).expect("adding src pad");
    }
}

impl GstObjectImpl for VssMask {}

impl ElementImpl for VssMask {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: Lazy<gst::subclass::ElementMetadata> = Lazy::new(|| {
            gst::subclass::ElementMetadata::new(
                "VSS segmentation mask",
                "Filter/Converter/Video",
                "Turns vsssegment's VssSegmentationMeta into mask video: GRAY8 class ids, an \
                 RGBA colour map or a GRAY8 matte of one class, at the frame's or the model's \
                 size; the src caps list the class names in the field 'classes'",
                "vss developers",
            )
        });
        Some(&*ELEMENT_METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: Lazy<Vec<gst::PadTemplate>> = Lazy::new(|| {
            // The input pixels are never read: any raw video with the meta will do.
            let sink = gst::Caps::builder("video/x-raw").build();
            let src = gst_video::VideoCapsBuilder::new()
                .format_list([gst_video::VideoFormat::Gray8, gst_video::VideoFormat::Rgba])
                .build();
            vec![
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &sink,
                )
                .expect("valid sink template"),
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &src,
                )
                .expect("valid src template"),
            ]
        });
        PAD_TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::ReadyToPaused {
            let settings = self.settings.lock().unwrap().clone();
            if settings.output == Output::Matte
                && let Err(e) = settings.matte_class()
            {
                gst::element_imp_error!(self, gst::LibraryError::Settings, ["{}", e]);
                return Err(gst::StateChangeError);
            }
            *self.state.lock().unwrap() = Some(State::new());
        }
        let result = self.parent_change_state(transition)?;
        if transition == gst::StateChange::PausedToReady {
            *self.state.lock().unwrap() = None;
        }
        Ok(result)
    }
}

impl VssMask {
    fn sink_chain(
        &self,
        _pad: &gst::Pad,
        buffer: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let frame = self.mask_frame(&buffer)?;
        if let Some(caps) = frame.caps {
            gst::debug!(CAT, imp = self, "output caps {caps}");
            if !self.srcpad.push_event(gst::event::Caps::new(&caps)) {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    ["downstream refused the mask caps {}", caps]
                );
                return Err(gst::FlowError::NotNegotiated);
            }
        }
        for event in frame.events {
            self.srcpad.push_event(event);
        }
        self.srcpad.push(frame.buffer)
    }

    /// The mask of one input buffer, and the caps it needs if they are new.
    fn mask_frame(&self, buffer: &gst::BufferRef) -> Result<MaskFrame, gst::FlowError> {
        let settings = self.settings.lock().unwrap().clone();
        let mut guard = self.state.lock().unwrap();
        let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        let input = state.input.clone().ok_or_else(|| {
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ["buffer before caps"]);
            gst::FlowError::NotNegotiated
        })?;
        let meta = buffer.meta::<SegmentationMeta>();
        let seg: Option<&Segmentation> = meta.as_ref().map(|m| m.segmentation());
        let frame_no = state.frames;
        state.frames += 1;

        let (classes, map_w, map_h) = match (seg, &state.last) {
            (Some(s), _) => {
                let last = (s.classes.clone(), s.width, s.height);
                state.last = Some(last.clone());
                last
            }
            (None, Some(last)) => {
                state.missing += 1;
                if state.missing == 1 {
                    gst::element_imp_warning!(
                        self,
                        gst::StreamError::Format,
                        [
                            "frame {} has no VssSegmentationMeta: sending a blank mask (class id {}, transparent, matte 0) for it and any later frame without",
                            frame_no,
                            render::CLASS_NONE
                        ]
                    );
                }
                last.clone()
            }
            (None, None) => {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    [
                        "the first frame has no VssSegmentationMeta: vssmask reads what vsssegment attaches (... ! vsssegment ! vssmask)"
                    ]
                );
                return Err(gst::FlowError::Error);
            }
        };
        let paint = settings.paint(&classes).map_err(|e| {
            gst::element_imp_error!(self, gst::LibraryError::Settings, ["{}", e]);
            gst::FlowError::Error
        })?;
        let (width, height) = match settings.resolution {
            Resolution::Frame => (input.width(), input.height()),
            Resolution::Model => (map_w, map_h),
        };
        let format = MaskFormat {
            format: settings.format(),
            width,
            height,
            fps: input.fps(),
            par: mask_par(&input, width, height),
            classes: classes.clone(),
        };
        let caps = self.negotiate(state, format)?;
        let events = if caps.is_some() {
            std::mem::take(&mut state.held_events)
        } else {
            Vec::new()
        };

        let (pool, info) = {
            let out = state.output.as_ref().expect("negotiated above");
            (out.pool.clone(), out.info.clone())
        };
        let mut out = pool.acquire_buffer(None).inspect_err(|e| {
            gst::error!(CAT, imp = self, "no buffer from the mask pool: {e:?}");
        })?;
        {
            let out = out.get_mut().ok_or(gst::FlowError::Error)?;
            buffer
                .copy_into(
                    out,
                    gst::BufferCopyFlags::FLAGS | gst::BufferCopyFlags::TIMESTAMPS,
                    ..,
                )
                .map_err(|_| gst::FlowError::Error)?;
            let stride = info.stride()[0] as usize;
            let offset = info.offset()[0];
            let mut map = out.map_writable().map_err(|_| gst::FlowError::Error)?;
            let pixels = &mut map.as_mut_slice()[offset..];
            let (lut, grid) = state.painter(paint, &classes, (map_w, map_h), (width, height));
            let drawn = match seg {
                Some(s) => render::render(&s.class_map, grid, lut, pixels, stride),
                None => render::render_blank(lut, pixels, stride, width, height),
            };
            drawn.map_err(|e| {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Failed,
                    ["frame {}: {}", frame_no, e]
                );
                gst::FlowError::Error
            })?;
            drop(map);
            if let Some(s) = seg {
                SegmentationMeta::add(out, s.clone());
            }
        }
        Ok(MaskFrame {
            caps,
            events,
            buffer: out,
        })
    }

    /// Switches the output to `format` if it is new: caps and a pool for them.
    fn negotiate(
        &self,
        state: &mut State,
        format: MaskFormat,
    ) -> Result<Option<gst::Caps>, gst::FlowError> {
        if state.output.as_ref().is_some_and(|o| o.format == format) {
            return Ok(None);
        }
        let fail = |what: String| {
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ["{}", what]);
            gst::FlowError::NotNegotiated
        };
        let (caps, info) = format
            .caps()
            .map_err(|e| fail(format!("mask caps for {format:?}: {e}")))?;
        let pool = gst_video::VideoBufferPool::new().upcast::<gst::BufferPool>();
        let mut config = pool.config();
        config.set_params(Some(&caps), info.size() as u32, 2, 0);
        pool.set_config(config)
            .map_err(|e| fail(format!("mask buffer pool for {caps}: {e}")))?;
        pool.set_active(true)
            .map_err(|e| fail(format!("activating the mask buffer pool: {e}")))?;
        state.output = Some(Negotiated { format, info, pool });
        Ok(Some(caps))
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        use gst::EventView;
        gst::log!(CAT, obj = pad, "event {event:?}");
        match event.view() {
            EventView::Caps(c) => {
                let caps = c.caps();
                match gst_video::VideoInfo::from_caps(caps) {
                    Ok(info) => {
                        if let Some(state) = self.state.lock().unwrap().as_mut() {
                            state.input = Some(info);
                        }
                        // The mask caps go out with the next buffer.
                        true
                    }
                    Err(e) => {
                        gst::element_imp_error!(
                            self,
                            gst::CoreError::Negotiation,
                            ["input caps {}: {}", caps, e]
                        );
                        false
                    }
                }
            }
            EventView::StreamStart(_) | EventView::FlushStart(_) => {
                gst::Pad::event_default(pad, Some(&*self.obj()), event)
            }
            EventView::FlushStop(_) => {
                if let Some(state) = self.state.lock().unwrap().as_mut() {
                    state.held_events.retain(|e| e.is_sticky());
                }
                gst::Pad::event_default(pad, Some(&*self.obj()), event)
            }
            EventView::Eos(_) => {
                // No buffer came to decide the caps: the held events go out without them.
                let held = self
                    .state
                    .lock()
                    .unwrap()
                    .as_mut()
                    .map(|s| std::mem::take(&mut s.held_events))
                    .unwrap_or_default();
                for held in held {
                    self.srcpad.push_event(held);
                }
                gst::Pad::event_default(pad, Some(&*self.obj()), event)
            }
            _ if event.is_serialized() && !self.srcpad.has_current_caps() => {
                // Segment, tags, gaps, ...: downstream must see them after the caps.
                if let Some(state) = self.state.lock().unwrap().as_mut() {
                    state.held_events.push(event);
                    return true;
                }
                gst::Pad::event_default(pad, Some(&*self.obj()), event)
            }
            _ => gst::Pad::event_default(pad, Some(&*self.obj()), event),
        }
    }

    fn sink_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        use gst::QueryViewMut;
        match query.view_mut() {
            QueryViewMut::Caps(q) => {
                let templ = pad.pad_template_caps();
                let caps = match q.filter() {
                    Some(filter) => {
                        filter.intersect_with_mode(&templ, gst::CapsIntersectMode::First)
                    }
                    None => templ,
                };
                q.set_result(&caps);
                true
            }
            QueryViewMut::Allocation(q) => {
                // The input pixels are dropped, so an overlay meta is as good as blending
                // (vsssegment overlay=auto then skips the blend).
                q.add_allocation_meta::<gst_video::VideoOverlayCompositionMeta>(None);
                true
            }
            _ => gst::Pad::query_default(pad, Some(&*self.obj()), query),
        }
    }

    fn src_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        use gst::QueryViewMut;
        match query.view_mut() {
            QueryViewMut::Caps(q) => {
                let caps = pad
                    .current_caps()
                    .unwrap_or_else(|| self.possible_caps(pad));
                let caps = match q.filter() {
                    Some(filter) => {
                        filter.intersect_with_mode(&caps, gst::CapsIntersectMode::First)
                    }
                    None => caps,
                };
                q.set_result(&caps);
                true
            }
            _ => gst::Pad::query_default(pad, Some(&*self.obj()), query),
        }
    }

    /// The src caps before the first buffer: the format, and the size when it is the frame's.
    fn possible_caps(&self, pad: &gst::Pad) -> gst::Caps {
        let settings = self.settings.lock().unwrap().clone();
        let input = self
            .state
            .lock()
            .unwrap()
            .as_ref()
            .and_then(|s| s.input.clone());
        let mut caps = pad.pad_template_caps();
        {
            let caps = caps.make_mut();
            caps.set("format", settings.format().to_str());
            if let Some(input) = input {
                caps.set("framerate", input.fps());
                if settings.resolution == Resolution::Frame {
                    caps.set("width", input.width() as i32);
                    caps.set("height", input.height() as i32);
                    caps.set("pixel-aspect-ratio", input.par());
                }
            }
        }
        caps
    }
}

/// The pixel aspect ratio that shows a `width x height` mask with the frame's display aspect:
/// the mask always covers the whole frame.
fn mask_par(input: &gst_video::VideoInfo, width: u32, height: u32) -> gst::Fraction {
    let par = input.par();
    let n = i64::from(par.numer()) * i64::from(input.width()) * i64::from(height);
    let d = i64::from(par.denom()) * i64::from(input.height()) * i64::from(width);
    if n <= 0 || d <= 0 {
        return gst::Fraction::new(1, 1);
    }
    let g = gcd(n, d);
    match (i32::try_from(n / g), i32::try_from(d / g)) {
        (Ok(n), Ok(d)) => gst::Fraction::new(n, d),
        _ => par,
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}
