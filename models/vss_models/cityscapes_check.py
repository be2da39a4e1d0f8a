"""Cross-check of our CamVid metric with cityscapesscripts' pixel-level evaluator.

The evaluator reads Cityscapes label-id PNGs from its own folder layout, so the CamVid labels and
predictions are written as gtFine/<split>/camvid/camvid_000000_NNNNNN_gtFine_labelIds.png and
results/camvid_000000_NNNNNN_pred.png, each CamVid class as a distinct Cityscapes evaluation
label and void as 'unlabeled' (ignored in evaluation). Its class IoUs average only classes with a
defined score, so the 8 unused Cityscapes classes drop out and its mIoU is comparable to ours.
"""

from __future__ import annotations

import glob
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from .classes import CAMVID_VOID

# CamVid id -> Cityscapes label id (not train id); void -> 0 'unlabeled'.
CAMVID_TO_CITYSCAPES_LABEL_ID = {
    0: 23,  # Sky -> sky
    1: 11,  # Building -> building
    2: 17,  # Pole -> pole
    3: 7,  # Road -> road
    4: 8,  # Sidewalk -> sidewalk
    5: 21,  # Tree -> vegetation
    6: 20,  # SignSymbol -> traffic sign
    7: 13,  # Fence -> fence
    8: 26,  # Car -> car
    9: 24,  # Pedestrian -> person
    10: 33,  # Bicyclist -> bicycle
    CAMVID_VOID: 0,
}


def _lookup() -> np.ndarray:
    table = np.zeros(256, np.uint8)  # unknown ids -> unlabeled
    for camvid_id, label_id in CAMVID_TO_CITYSCAPES_LABEL_ID.items():
        table[camvid_id] = label_id
    return table


class CityscapesLayout:
    """Collects (label, prediction) pairs as PNGs under `root`, then runs the evaluator."""

    def __init__(self, root: Path, split: str):
        self.root = Path(root)
        self.split = split
        if self.root.exists():
            shutil.rmtree(self.root)
        (self.root / "gtFine" / split / "camvid").mkdir(parents=True)
        (self.root / "results").mkdir(parents=True)
        self.table = _lookup()

    def add(self, index: int, image_path: Path, label: np.ndarray, pred: np.ndarray) -> None:
        stem = f"camvid_000000_{index:06d}"
        gt = self.root / "gtFine" / self.split / "camvid" / f"{stem}_gtFine_labelIds.png"
        Image.fromarray(self.table[label]).save(gt)
        Image.fromarray(self.table[pred]).save(self.root / "results" / f"{stem}_pred.png")

    def evaluate(self) -> dict:
        """cityscapesscripts' result dict (classScores, averageScoreClasses, ...)."""
        from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs

        args = cs.args
        args.cityscapesPath = str(self.root)
        args.groundTruthSearch = str(self.root / "gtFine" / self.split / "*" / "*_gtFine_labelIds.png")
        args.predictionPath = str(self.root / "results")
        args.predictionWalk = None
        args.evalInstLevelScore = False
        args.evalPixelAccuracy = False
        args.JSONOutput = False
        args.quiet = True
        gts = sorted(glob.glob(args.groundTruthSearch))
        preds = [cs.getPrediction(args, gt) for gt in gts]
        return cs.evaluateImgLists(preds, gts, args)
