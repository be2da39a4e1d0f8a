/* vss.h - what a C application needs to read vss's results through plain GStreamer.
 *
 * vss's own metas (VssMotionMeta, VssSegmentationMeta) are Rust values with no C API. A C
 * application reads instead:
 *
 *  1. vssmask's output: a video stream of masks, one buffer per input frame with the frame's
 *     PTS, DTS, duration and flags.
 *       output=class-ids  GRAY8, each byte the class id of its pixel (VSS_CLASS_NONE where the
 *                         frame had no segmentation)
 *       output=matte      GRAY8, VSS_MATTE_ON where the class is vssmask's `class`, else 0
 *       output=color      RGBA, the bundle's class colours, alpha from vssmask's `alpha`
 *     resolution=frame gives the input frame's width and height, resolution=model the class
 *     map's own (the bundle's native size). Rows are GStreamer's default strides
 *     (VSS_MASK_STRIDE_*). The caps carry the class names in the field VSS_MASK_FIELD_CLASSES,
 *     a GstValueArray of strings whose index is the class id (vss_mask_class_name()).
 *
 *  2. vsssegment's element message VSS_SEGMENT_MESSAGE, posted per frame with stats=true
 *     before the frame is pushed downstream: provenance (keyframe, branch, ...) and class
 *     shares. Its fields are the VSS_SEGMENT_FIELD_* below, each with its GType.
 *
 * Header-only: it needs gstreamer-1.0 and nothing from vss at link time; the plugins are found
 * through GST_PLUGIN_PATH (the folder holding libgstvss.so, with vsssegment and vssmask, and
 * libgstvsscodec.so, with vssdec). Example: examples/c/shares.c.
 */
#ifndef VSS_VSS_H
#define VSS_VSS_H

#include <gst/gst.h>

G_BEGIN_DECLS

/* Element factory names. */
#define VSS_ELEMENT_DECODER "vssdec"
#define VSS_ELEMENT_SEGMENT "vsssegment"
#define VSS_ELEMENT_MASK "vssmask"

/* vssmask's src caps: GRAY8 for output=class-ids and output=matte, RGBA for output=color. */
#define VSS_MASK_CAPS_GRAY8 "video/x-raw, format=(string)GRAY8"
#define VSS_MASK_CAPS_RGBA "video/x-raw, format=(string)RGBA"
/* Caps field: the class names, a GstValueArray of G_TYPE_STRING, index = class id. */
#define VSS_MASK_FIELD_CLASSES "classes"
/* output=class-ids: the id of pixels of a frame that had no segmentation meta. Bundles have at
 * most 255 classes, so no class has this id. */
#define VSS_CLASS_NONE 255
/* output=matte: the value of pixels of the chosen class; all others are VSS_MATTE_OFF. */
#define VSS_MATTE_ON 255
#define VSS_MATTE_OFF 0
/* Row strides of mask buffers, in bytes. */
#define VSS_MASK_STRIDE_GRAY8(width) GST_ROUND_UP_4 (width)
#define VSS_MASK_STRIDE_RGBA(width) ((width) * 4)

/* vsssegment's per-frame element message (property stats=true). */
#define VSS_SEGMENT_MESSAGE "vss-segment"
#define VSS_SEGMENT_FIELD_FRAME "frame"                     /* guint64: frame index since start */
#define VSS_SEGMENT_FIELD_PTS "pts"                         /* guint64: the frame's GstClockTime */
#define VSS_SEGMENT_FIELD_KEYFRAME "keyframe"               /* gboolean: the model ran on this frame */
#define VSS_SEGMENT_FIELD_REASON "reason"                   /* gchararray: why a keyframe; "" otherwise */
#define VSS_SEGMENT_FIELD_DISTANCE "distance"               /* guint: frames since the keyframe */
#define VSS_SEGMENT_FIELD_BRANCH "branch"                   /* gchararray: full, lowres, fusion, warp, distributed */
#define VSS_SEGMENT_FIELD_MODEL "model"                     /* gchararray: the bundle's name */
#define VSS_SEGMENT_FIELD_COMPUTE_TIME "compute-time"       /* guint64: nanoseconds spent on the frame */
#define VSS_SEGMENT_FIELD_UNCOVERED_SHARE "uncovered-share" /* gdouble: optional, where motion was tracked */
#define VSS_SEGMENT_FIELD_MEAN_MOTION "mean-motion"         /* gdouble: optional, where motion was tracked */
/* Followed by the class name in lower case (e.g. "share-car"): gdouble, the share of the class
 * map's pixels of that class; one field per class, summing to 1. */
#define VSS_SEGMENT_FIELD_SHARE_PREFIX "share-"

/* The number of classes named in mask caps (0 when the field is missing). */
static inline guint
vss_mask_n_classes (const GstStructure * caps_structure)
{
  const GValue *classes =
      gst_structure_get_value (caps_structure, VSS_MASK_FIELD_CLASSES);
  if (classes == NULL || !GST_VALUE_HOLDS_ARRAY (classes))
    return 0;
  return gst_value_array_get_size (classes);
}

/* The name of class `id` from mask caps, or NULL; owned by the caps. */
static inline const gchar *
vss_mask_class_name (const GstStructure * caps_structure, guint id)
{
  const GValue *classes, *name;
  if (id >= vss_mask_n_classes (caps_structure))
    return NULL;
  classes = gst_structure_get_value (caps_structure, VSS_MASK_FIELD_CLASSES);
  name = gst_value_array_get_value (classes, id);
  return G_VALUE_HOLDS_STRING (name) ? g_value_get_string (name) : NULL;
}

/* The structure of a vss-segment message, or NULL for any other message. */
static inline const GstStructure *
vss_segment_message_structure (GstMessage * message)
{
  const GstStructure *s;
  if (GST_MESSAGE_TYPE (message) != GST_MESSAGE_ELEMENT)
    return NULL;
  s = gst_message_get_structure (message);
  return s != NULL && gst_structure_has_name (s, VSS_SEGMENT_MESSAGE) ? s : NULL;
}

G_END_DECLS

#endif /* VSS_VSS_H */
