"""The manifest contract: shipped bundles validate; malformed ones are refused by field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from vss_models import bundle
from vss_models.classes import CAMVID_CLASSES, CITYSCAPES_CLASSES, CITYSCAPES_TO_CAMVID

SHIPPED = [
    "camvid-espnet",
    "camvid-cgnet",
    "cityscapes-espnetv2",
    "camvid-espnet-arseg",
    "camvid-espnet-arseg35",
    "camvid-tdnet",
    "camvid-bisenet",
    "camvid-icnet",
    "camvid-dynroute",
]


@pytest.fixture
def good_manifest():
    return json.loads((bundle.resolve("camvid-espnet") / bundle.MANIFEST).read_text())


def write_bundle(folder: Path, manifest) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    (folder / bundle.MANIFEST).write_text(text)
    (folder / "model.pt").write_bytes(b"")  # read() checks presence only
    return folder


def refused(tmp_path: Path, manifest) -> str:
    folder = write_bundle(tmp_path / "b", manifest)
    with pytest.raises(bundle.BundleError) as err:
        bundle.read(folder)
    message = str(err.value)
    assert str(folder / bundle.MANIFEST) in message or str(folder) in message, message
    return message


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_bundles_validate(name):
    b = bundle.read(name)
    assert b.name == name
    assert b.manifest["format_version"] == bundle.FORMAT_VERSION
    # A clone stays small: the largest, camvid-icnet (4.30M float32 parameters), is 17.2 MB.
    assert b.module_path.stat().st_size < 20_000_000
    expected = CAMVID_CLASSES if b.manifest["dataset"] == "camvid" else CITYSCAPES_CLASSES
    assert b.classes == expected


def test_shipped_names():
    assert bundle.shipped_names() == sorted(SHIPPED)


def test_cityscapes_table_matches_cityscapesscripts():
    from cityscapesscripts.helpers.labels import trainId2label

    for cls in CITYSCAPES_CLASSES:
        label = trainId2label[cls["id"]]
        assert (label.name, list(label.color)) == (cls["name"], cls["color"])


def test_cityscapes_to_camvid_covers_every_camvid_class():
    assert len(CITYSCAPES_TO_CAMVID) == len(CITYSCAPES_CLASSES)
    assert sorted(set(CITYSCAPES_TO_CAMVID)) == list(range(len(CAMVID_CLASSES)))


@pytest.mark.parametrize("version", [0, 2, 17])
def test_other_format_version_is_refused(tmp_path, good_manifest, version):
    good_manifest["format_version"] = version
    message = refused(tmp_path, good_manifest)
    assert "format_version" in message and str(version) in message


def test_format_version_must_be_an_integer(tmp_path, good_manifest):
    good_manifest["format_version"] = "1"
    assert "format_version" in refused(tmp_path, good_manifest)


REQUIRED = [
    "format_version",
    "name",
    "description",
    "dataset",
    "scheme",
    "classes",
    "input",
    "methods",
    "logits_stride",
    "features",
    "files",
    "source",
    "license",
]


@pytest.mark.parametrize("field", REQUIRED)
def test_missing_field_is_named(tmp_path, good_manifest, field):
    del good_manifest[field]
    message = refused(tmp_path, good_manifest)
    assert f"'{field}'" in message and "missing" in message


@pytest.mark.parametrize(
    "path, value, field",
    [
        (["scheme"], "video", "scheme"),
        (["classes"], [], "classes"),
        (["classes", 3, "id"], 7, "classes[3].id"),
        (["classes", 2, "color"], [1, 2], "classes[2].color"),
        (["classes", 2, "color"], [0, 0, 256], "classes[2].color"),
        (["classes", 0, "name"], "", "classes[0].name"),
        (["input", "dtype"], "float32", "input.dtype"),
        (["input", "format"], "BGR", "input.format"),
        (["input", "layout"], "NHWC", "input.layout"),
        (["input", "native_size"], [360], "input.native_size"),
        (["input", "native_size"], [361, 480], "input.native_size"),
        (["input", "size_multiple"], 0, "input.size_multiple"),
        (["input", "size_multiple"], True, "input.size_multiple"),
        (["methods"], {}, "methods.forward"),
        (["methods", "forward", "outputs"], [], "methods.forward.outputs"),
        (["logits_stride"], -1, "logits_stride"),
        (["features", "channels"], "12", "features.channels"),
        (["features", "stride"], 0, "features.stride"),
        (["files", "module"], "", "files.module"),
    ],
)
def test_bad_field_is_named(tmp_path, good_manifest, path, value, field):
    target = good_manifest
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert f"'{field}'" in refused(tmp_path, good_manifest)


def test_missing_nested_field_is_named(tmp_path, good_manifest):
    del good_manifest["input"]["native_size"]
    assert "'input.native_size' is missing" in refused(tmp_path, good_manifest)


def test_missing_module_file_is_named(tmp_path, good_manifest):
    folder = write_bundle(tmp_path / "b", good_manifest)
    (folder / "model.pt").unlink()
    with pytest.raises(bundle.BundleError, match=r"'files.module'.*model.pt"):
        bundle.read(folder)


def test_invalid_json_names_the_file(tmp_path):
    assert "not valid JSON" in refused(tmp_path, "{ not json")


def test_non_object_manifest(tmp_path):
    assert "JSON object" in refused(tmp_path, "[1, 2]")


def test_unknown_bundle_name_lists_shipped():
    with pytest.raises(bundle.BundleError, match="camvid-espnet"):
        bundle.read("no-such-bundle")


def test_validate_manifest_accepts_a_copy(good_manifest):
    assert bundle.validate_manifest(copy.deepcopy(good_manifest)) == good_manifest
