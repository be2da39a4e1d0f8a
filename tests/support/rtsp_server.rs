//! A real RTSP server on loopback (gst-rtsp-server) standing in for a camera: each mount serves a
//! gst-launch description whose payloader is `pay0`, on a free port, from its own main loop.
//!
//! Shared by the RTSP tests, the `rtsp_segment` example and `scripts/soak.sh` (through the
//! example), so that all three exercise the same server.
#![allow(dead_code)]

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst_rtsp_server::prelude::*;

/// The mount path every helper below serves.
pub const MOUNT: &str = "/x";

/// An H.264 file (MP4, MKV, TS, ...) served at its own pace, parameter sets before every IDR as
/// a camera sends them.
pub fn file_launch(path: &Path) -> String {
    format!(
        "( filesrc location=\"{}\" ! parsebin ! rtph264pay name=pay0 pt=96 config-interval=-1 )",
        path.display()
    )
}

/// A live camera: a moving test pattern at `fps`, 8-bit 4:2:0 like a camera's, x264
/// zero-latency, P-only, an IDR every `gop` frames. One encoder thread at a constant quantizer
/// makes the encode deterministic: two clients of the same mount get the same pictures. The capsfilter is named `size` so that a test can change the resolution.
pub fn live_launch(width: u32, height: u32, fps: u32, gop: u32) -> String {
    format!(
        "( videotestsrc is-live=true pattern=pinwheel horizontal-speed=3 \
           ! capsfilter name=size caps=video/x-raw,format=I420,width={width},height={height},framerate={fps}/1 \
           ! x264enc name=enc tune=zerolatency speed-preset=ultrafast bframes=0 key-int-max={gop} \
             threads=1 pass=quant quantizer=26 \
           ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
    )
}

/// A running loopback server; stops (closing its clients) when dropped.
pub struct LoopbackServer {
    server: gst_rtsp_server::RTSPServer,
    context: glib::MainContext,
    main_loop: glib::MainLoop,
    source: Option<glib::SourceId>,
    thread: Option<JoinHandle<()>>,
    port: u16,
    /// The media, in the order clients made the server build them.
    media: Mutex<mpsc::Receiver<Media>>,
}

/// One client's camera pipeline, reached before any data flows.
pub struct Media {
    /// The media's bin: its elements by name (`pay0`, and `size` from [`live_launch`]).
    pub bin: gst::Bin,
    /// Access units that have entered the payloader so far.
    pub access_units: Arc<AtomicU64>,
}

/// What the server does with a TCP client that reads slower than the camera sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backlog {
    /// Drop what the client cannot take, as a camera does (gst-rtsp-server's default).
    Drop,
    /// Hold the camera back until the client reads: nothing is lost, however slow the client
    /// (a busy test machine); the live source then sends late, not less.
    Keep,
}

impl LoopbackServer {
    /// Serves `launch` (see [`file_launch`], [`live_launch`]) at [`MOUNT`] on 127.0.0.1,
    /// dropping what slow TCP clients cannot take, as a camera does.
    pub fn start(launch: &str) -> Result<LoopbackServer, glib::BoolError> {
        LoopbackServer::start_with(launch, Backlog::Drop)
    }

    pub fn start_with(launch: &str, backlog: Backlog) -> Result<LoopbackServer, glib::BoolError> {
        let server = gst_rtsp_server::RTSPServer::new();
        if backlog == Backlog::Keep {
            server.connect_client_connected(|_, client| client.set_drop_backlog(false));
        }
        server.set_address("127.0.0.1");
        // Port 0: the kernel picks a free one, read back as `bound-port` once attached.
        server.set_service("0");
        let factory = gst_rtsp_server::RTSPMediaFactory::new();
        factory.set_launch(launch);
        // One media per client: a test that stalls or reconfigures "its" camera owns it.
        factory.set_shared(false);
        let (sender, media) = mpsc::channel();
        let sender = Mutex::new(sender);
        factory.connect_media_configure(move |_, media| {
            let Ok(bin) = media.element().downcast::<gst::Bin>() else {
                return;
            };
            let access_units = Arc::new(AtomicU64::new(0));
            let counter = access_units.clone();
            if let Some(sink) = bin.by_name("pay0").and_then(|p| p.static_pad("sink")) {
                sink.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    gst::PadProbeReturn::Ok
                });
            }
            let _ = sender.lock().unwrap().send(Media { bin, access_units });
        });
        server
            .mount_points()
            .ok_or_else(|| glib::bool_error!("RTSP server without mount points"))?
            .add_factory(MOUNT, factory);

        let context = glib::MainContext::new();
        let main_loop = glib::MainLoop::new(Some(&context), false);
        let source = server.attach(Some(&context))?;
        let port = u16::try_from(server.bound_port())
            .map_err(|_| glib::bool_error!("RTSP server bound no port"))?;
        let thread = {
            let (context, main_loop) = (context.clone(), main_loop.clone());
            std::thread::Builder::new()
                .name("rtsp-server".into())
                .spawn(move || {
                    context
                        .with_thread_default(|| main_loop.run())
                        .expect("RTSP server context owned by another thread");
                })
                .map_err(|e| glib::bool_error!("starting the RTSP server thread: {e}"))?
        };
        // Return once the loop dispatches, so that a quick drop cannot quit it before it runs.
        let (running, started) = mpsc::channel();
        context.invoke(move || {
            let _ = running.send(());
        });
        started
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| glib::bool_error!("the RTSP server main loop did not start"))?;
        Ok(LoopbackServer {
            server,
            context,
            main_loop,
            source: Some(source),
            thread: Some(thread),
            port,
            media: Mutex::new(media),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of the served stream.
    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}{MOUNT}", self.port)
    }

    /// The next media the server builds for a client (in the order they connect); `None` if
    /// no client asked within `timeout`.
    pub fn next_media(&self, timeout: Duration) -> Option<Media> {
        self.media.lock().unwrap().recv_timeout(timeout).ok()
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        // Closing the clients tears down their sessions, which stops the media pipelines.
        self.server
            .client_filter(Some(&mut |_, _| gst_rtsp_server::RTSPFilterResult::Remove));
        if let Some(source) = self
            .source
            .take()
            .and_then(|id| self.context.find_source_by_id(&id))
        {
            source.destroy();
        }
        self.main_loop.quit();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
