/* shares.c - per-frame class shares from vssmask's class-id masks, in C.
 *
 *   cc -Iinclude -o shares examples/c/shares.c \
 *       $(pkg-config --cflags --libs gstreamer-1.0 gstreamer-app-1.0)
 *   ./shares INPUT [--frames N] [--model M]
 *
 * with the plugin installed (scripts/install.sh), or from the build with
 * GST_PLUGIN_PATH=target/release VSS_MODEL_PATH=models/bundles.
 *
 * Pipeline: filesrc ! qtdemux ! h264parse ! vssdec ! vsssegment overlay=none stats=true
 *           ! vssmask output=class-ids resolution=model ! appsink
 * Each mask is a GRAY8 frame of class ids at the model's size; the class names come from its
 * caps, whether the frame was a keyframe and which branch made it from vsssegment's
 * vss-segment message for the same PTS (see include/vss/vss.h). One tab-separated line per
 * frame, as the Rust example `shares` prints: frame index, PTS in seconds, `key` or `-`, the
 * branch, then `Class=share` for every class, and `none=share` when some pixels had no
 * segmentation. Shares are of the mask's pixels and sum to 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gst/gst.h>
#include <gst/app/gstappsink.h>

#include "vss/vss.h"

#define PIPELINE                                                              \
  "filesrc name=src ! qtdemux ! h264parse ! vssdec "                          \
  "! vsssegment name=seg overlay=none stats=true "                            \
  "! vssmask output=class-ids resolution=model ! appsink name=sink sync=false"

typedef struct
{
  gboolean keyframe;
  gchar *branch;
} Provenance;

static void
die (const gchar * what, GstBus * bus, GstMessage * error)
{
  GError *err = NULL;
  gchar *debug = NULL;

  if (error == NULL && bus != NULL)
    error = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  if (error != NULL) {
    gst_message_parse_error (error, &err, &debug);
    fprintf (stderr, "%s: %s (%s)\n", what, err->message, debug ? debug : "");
  } else {
    fprintf (stderr, "%s\n", what);
  }
  exit (1);
}

/* Fails on an error; keeps the provenance of each vss-segment message by PTS. vsssegment posts
 * the message before pushing the frame, so it is on the bus by the time the mask reaches the
 * appsink. Popping discards the message types not asked for. */
static void
drain_bus (GstBus * bus, GHashTable * pending)
{
  GstMessage *msg;

  while ((msg = gst_bus_pop_filtered (bus,
              GST_MESSAGE_ELEMENT | GST_MESSAGE_ERROR)) != NULL) {
    const GstStructure *s;
    guint64 pts;

    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR)
      die ("pipeline error", bus, msg);
    s = vss_segment_message_structure (msg);
    if (s != NULL && gst_structure_get_uint64 (s, VSS_SEGMENT_FIELD_PTS, &pts)) {
      Provenance *p = g_new0 (Provenance, 1);
      const gchar *branch = gst_structure_get_string (s, VSS_SEGMENT_FIELD_BRANCH);
      guint64 *key = g_new (guint64, 1);

      if (!gst_structure_get_boolean (s, VSS_SEGMENT_FIELD_KEYFRAME, &p->keyframe)
          || branch == NULL) {
        fprintf (stderr, "%s message without %s or %s\n", VSS_SEGMENT_MESSAGE,
            VSS_SEGMENT_FIELD_KEYFRAME, VSS_SEGMENT_FIELD_BRANCH);
        exit (1);
      }
      p->branch = g_strdup (branch);
      *key = pts;
      g_hash_table_insert (pending, key, p);
    }
    gst_message_unref (msg);
  }
}

static void
provenance_free (gpointer data)
{
  Provenance *p = data;
  g_free (p->branch);
  g_free (p);
}

static void
print_frame (GstSample * sample, guint64 frame, const Provenance * p)
{
  const GstStructure *s = gst_caps_get_structure (gst_sample_get_caps (sample), 0);
  GstBuffer *buffer = gst_sample_get_buffer (sample);
  guint64 counts[256] = { 0 };
  guint n_classes = vss_mask_n_classes (s);
  gint width = 0, height = 0;
  gsize stride;
  GstMapInfo map;
  double total;

  if (g_strcmp0 (gst_structure_get_string (s, "format"), "GRAY8") != 0
      || !gst_structure_get_int (s, "width", &width)
      || !gst_structure_get_int (s, "height", &height) || n_classes == 0) {
    gchar *str = gst_structure_to_string (s);
    fprintf (stderr, "expected GRAY8 masks with %s, got %s\n",
        VSS_MASK_FIELD_CLASSES, str);
    exit (1);
  }
  stride = VSS_MASK_STRIDE_GRAY8 (width);
  if (!gst_buffer_map (buffer, &map, GST_MAP_READ)
      || map.size < stride * (gsize) (height - 1) + (gsize) width) {
    fprintf (stderr, "mask buffer too small for %dx%d\n", width, height);
    exit (1);
  }
  for (gint y = 0; y < height; y++) {
    const guint8 *row = map.data + (gsize) y * stride;
    for (gint x = 0; x < width; x++)
      counts[row[x]]++;
  }
  gst_buffer_unmap (buffer, &map);

  total = (double) width * height;
  printf ("%" G_GUINT64_FORMAT "\t%.3f\t%s\t%s", frame,
      GST_BUFFER_PTS_IS_VALID (buffer) ?
      (double) GST_BUFFER_PTS (buffer) / GST_SECOND : 0.0 / 0.0,
      p->keyframe ? "key" : "-", p->branch);
  for (guint id = 0; id < n_classes; id++)
    printf ("\t%s=%.6f", vss_mask_class_name (s, id), counts[id] / total);
  if (counts[VSS_CLASS_NONE] > 0)
    printf ("\tnone=%.6f", counts[VSS_CLASS_NONE] / total);
  printf ("\n");
  fflush (stdout);
}

int
main (int argc, char **argv)
{
  const gchar *input = NULL, *model = NULL;
  guint64 limit = 0, frame = 0;
  GstElement *pipeline, *sink;
  GError *err = NULL;
  GHashTable *pending;
  GstBus *bus;

  for (int i = 1; i < argc; i++) {
    if (strcmp (argv[i], "--frames") == 0 && i + 1 < argc)
      limit = g_ascii_strtoull (argv[++i], NULL, 10);
    else if (strcmp (argv[i], "--model") == 0 && i + 1 < argc)
      model = argv[++i];
    else if (argv[i][0] != '-' && input == NULL)
      input = argv[i];
    else {
      input = NULL;
      break;
    }
  }
  if (input == NULL) {
    fprintf (stderr, "usage: %s INPUT [--frames N] [--model M]\n", argv[0]);
    return 2;
  }

  gst_init (&argc, &argv);
  if (!g_file_test (input, G_FILE_TEST_IS_REGULAR)) {
    fprintf (stderr, "%s: no such file\n", input);
    return 1;
  }
  pipeline = gst_parse_launch (PIPELINE, &err);
  if (pipeline == NULL) {
    fprintf (stderr, "%s\n(is GST_PLUGIN_PATH the folder with libgstvss.so?)\n",
        err->message);
    return 1;
  }
  {
    GstElement *src = gst_bin_get_by_name (GST_BIN (pipeline), "src");
    g_object_set (src, "location", input, NULL);
    gst_object_unref (src);
  }
  if (model != NULL) {
    GstElement *seg = gst_bin_get_by_name (GST_BIN (pipeline), "seg");
    g_object_set (seg, "model", model, NULL);
    gst_object_unref (seg);
  }
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  bus = gst_element_get_bus (pipeline);

  if (gst_element_set_state (pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
    die ("cannot start the pipeline", bus, NULL);
  pending = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free,
      provenance_free);
  while (limit == 0 || frame < limit) {
    GstSample *sample =
        gst_app_sink_try_pull_sample (GST_APP_SINK (sink), 100 * GST_MSECOND);
    guint64 pts;
    const Provenance *p;

    drain_bus (bus, pending);
    if (sample == NULL) {
      if (gst_app_sink_is_eos (GST_APP_SINK (sink)))
        break;
      continue;
    }
    pts = GST_BUFFER_PTS (gst_sample_get_buffer (sample));
    p = g_hash_table_lookup (pending, &pts);
    if (p == NULL) {
      fprintf (stderr, "frame %" G_GUINT64_FORMAT ": no %s message for its PTS\n",
          frame, VSS_SEGMENT_MESSAGE);
      return 1;
    }
    print_frame (sample, frame, p);
    g_hash_table_remove (pending, &pts);
    gst_sample_unref (sample);
    frame++;
  }

  gst_element_set_state (pipeline, GST_STATE_NULL);
  g_hash_table_destroy (pending);
  gst_object_unref (bus);
  gst_object_unref (sink);
  gst_object_unref (pipeline);
  return 0;
}
