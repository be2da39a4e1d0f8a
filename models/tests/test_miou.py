"""CamVid accuracy regression on a small fixed subset, and the metric itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vss_models import bundle, evaluation, metrics
from vss_models.cityscapes_check import CityscapesLayout

# Full test split (233 images) of camvid-espnet: 57.25 mIoU (published weights measured 57.17,
# issue 3 accepts 57.2 +- 1.0). The first 20 images score 58.40 with the same bundle, so the
# subset's band is that figure with the same +-1.0 width: a drift that would take the full-set
# figure out of its band also takes the subset out of this one.
FULL_SET_MIOU = 57.25
FULL_SET_BAND = 1.0
SUBSET = 20
SUBSET_MIOU = 58.40
SUBSET_PIXEL_ACCURACY = 87.90


def test_espnet_miou_on_first_20_test_images(camvid_test_pairs):
    result = evaluation.evaluate(bundle.read("camvid-espnet"), "test", limit=SUBSET)
    assert result.images == SUBSET
    miou = 100 * result.scores.miou
    assert abs(miou - SUBSET_MIOU) <= FULL_SET_BAND, f"mIoU {miou:.2f} on the first {SUBSET} images"
    assert abs(100 * result.scores.pixel_accuracy - SUBSET_PIXEL_ACCURACY) <= FULL_SET_BAND


def test_cityscapes_bundle_scores_through_class_map(camvid_test_pairs):
    b = bundle.read("cityscapes-espnetv2")
    assert evaluation.class_map_for(b) == "cityscapes-to-camvid"
    with pytest.raises(ValueError, match="class map"):
        evaluation.evaluate(b, "test", limit=1, class_map="none")


def test_predict_gives_argmax_ids_ties_to_the_first():
    class Logits(torch.nn.Module):
        def forward(self, x):
            logits = torch.randint(0, 3, (1, 11, 6, 8)).float()  # many ties
            return logits, logits

    torch.manual_seed(0)
    module = Logits()
    torch.manual_seed(1)
    ids = evaluation.predict(module, torch.zeros(1, 3, 6, 8, dtype=torch.uint8), (6, 8))
    torch.manual_seed(1)
    logits, _ = module(None)
    assert ids.dtype == np.uint8
    np.testing.assert_array_equal(ids, logits[0].argmax(0).numpy())


def test_confusion_ignores_void_and_scores():
    label = np.array([[0, 0, 1, 11], [1, 2, 2, 11]], np.uint8)
    pred = np.array([[0, 1, 1, 0], [1, 2, 0, 2]], np.uint8)
    m = metrics.confusion(label, pred, 3)
    assert m.sum() == 6  # the two void pixels are not counted
    assert m.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    s = metrics.scores(m)
    assert s.iou == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert s.miou == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert s.pixel_accuracy == pytest.approx(4 / 6)


def test_absent_class_does_not_count():
    m = np.array([[5, 0, 0], [0, 0, 0], [0, 0, 3]])
    s = metrics.scores(m)
    assert np.isnan(s.iou[1]) and s.miou == 1.0


def test_cityscapesscripts_agrees_on_synthetic_maps(tmp_path):
    rng = np.random.default_rng(1)
    layout = CityscapesLayout(tmp_path / "cs", "test")
    matrix = np.zeros((11, 11), np.int64)
    for i in range(3):
        label = rng.integers(0, 12, (40, 60)).astype(np.uint8)  # includes void (11)
        pred = np.where(rng.random((40, 60)) < 0.6, label % 11, rng.integers(0, 11, (40, 60))).astype(
            np.uint8
        )
        layout.add(i, tmp_path / f"{i}.png", label, pred)
        matrix += metrics.confusion(label, pred, 11)
    ours = metrics.scores(matrix).miou
    theirs = layout.evaluate()["averageScoreClasses"]
    assert abs(ours - theirs) < 1e-9
