//! One codec motion vector, exactly as FFmpeg exports it (`AVMotionVector`), and the picture type.

/// A block's motion as libavcodec reports it with `flags2=+export_mvs`.
///
/// `dst_x`/`dst_y` is the centre of the `w`x`h` block in the current frame; the block's content
/// came from `src = dst + motion / motion_scale` in the reference frame. `source` is only the
/// direction of the reference (-1 past, +1 future), not which reference picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MotionVector {
    pub source: i32,
    pub w: u8,
    pub h: u8,
    pub src_x: i16,
    pub src_y: i16,
    pub dst_x: i16,
    pub dst_y: i16,
    pub motion_x: i32,
    pub motion_y: i32,
    pub motion_scale: u16,
}

impl MotionVector {
    /// Displacement from the block in this frame to its match in the reference, in pixels.
    pub fn displacement(&self) -> (f32, f32) {
        let scale = f32::from(self.motion_scale.max(1));
        (self.motion_x as f32 / scale, self.motion_y as f32 / scale)
    }
}

/// Coding type of a picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PictureType {
    #[default]
    Unknown,
    I,
    P,
    B,
    /// Switching and other rare types (S, SI, SP, BI).
    Other,
}

impl PictureType {
    pub fn as_char(self) -> char {
        match self {
            PictureType::Unknown => '?',
            PictureType::I => 'I',
            PictureType::P => 'P',
            PictureType::B => 'B',
            PictureType::Other => 'S',
        }
    }
}
