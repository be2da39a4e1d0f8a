"""The manifest contract: shipped bundles validate; malformed ones are refused by field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from vss_models import bundle, manifest_schema
from vss_models.classes import CAMVID_CLASSES, CITYSCAPES_CLASSES, CITYSCAPES_TO_CAMVID

SHIPPED = [
    "camvid-espnet",
    "camvid-cgnet",
    "cityscapes-espnetv2",
    "camvid-espnet-arseg",
    "camvid-espnet-arseg35",
    "camvid-tdnet",
    "camvid-bisenet",
    "camvid-bisenet-arseg",
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
    # A clone stays small: the largest, camvid-bisenet-arseg (two BiSeNets of 3.53M float32
    # parameters: the frozen keyframe copy and the fine-tuned low-res branch), is 27.3 MB.
    assert b.module_path.stat().st_size < 30_000_000
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


CASES_PATH = Path(__file__).parent / "data" / "manifest_cases.json"
CASES = json.loads(CASES_PATH.read_text())["cases"]


def case_text(case) -> str:
    """The manifest text a case describes (tests in src/model/manifest.rs build the same)."""
    if "text" in case:
        return case["text"]
    manifest = json.loads((bundle.resolve(case["base"]) / bundle.MANIFEST).read_text())
    for edit in case["edits"]:
        op, pointer = edit[0], edit[1]
        *parents, last = pointer.split("/")[1:]
        target = manifest
        for key in parents:
            target = target[int(key) if isinstance(target, list) else key]
        key = int(last) if isinstance(target, list) else last
        if op == "set":
            target[key] = edit[2]
        elif op == "remove":
            del target[key]
        else:
            raise ValueError(f"{case['name']}: unknown edit {op!r}")
    return json.dumps(manifest)


def test_case_names_are_unique():
    names = [c["name"] for c in CASES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_manifest_case(tmp_path, case):
    text = case_text(case)
    if case.get("valid"):
        write_bundle(tmp_path / "b", text)
        assert bundle.read(tmp_path / "b").manifest == json.loads(text)
        return
    message = refused(tmp_path, text)
    source = tmp_path / "b" / bundle.MANIFEST
    where = f"field '{case['field']}'" if case["field"] else "the manifest"
    assert message == f"{source}: {where} {case['problem']}"


def test_schema_is_standard_json_schema_and_agrees_on_every_case():
    """The schema file is a valid draft 2020-12 schema, and a standard validator agrees with
    the interpreter wherever the verdict rests on standard keywords (x-vss-* are ours)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(manifest_schema.SCHEMA)
    jsonschema.Draft202012Validator.check_schema(manifest_schema.SCHEMA)
    shipped = [(n, (bundle.resolve(n) / bundle.MANIFEST).read_text()) for n in SHIPPED]
    cases = [(c["name"], case_text(c)) for c in CASES if "standard_differs" not in c]
    checked = 0
    for name, text in shipped + cases:
        instance = json.loads(text)
        ours = manifest_schema.validate(instance)
        standard = validator.is_valid(instance)
        if ours is None:
            assert standard, f"{name}: jsonschema refuses what the interpreter accepts"
        elif not ours.keyword.startswith("x-vss-"):
            assert not standard, f"{name}: jsonschema accepts what breaks {ours.keyword}: {ours}"
            checked += 1
    assert checked > 40


def test_schema_keywords_outside_the_interpreter_are_refused():
    schema = json.loads(manifest_schema.SCHEMA_PATH.read_text())
    schema["properties"]["name"]["pattern"] = "^[a-z]"
    assert manifest_schema.check_schema(schema) == ["#/properties/name: unknown keyword 'pattern'"]


def test_schemes_and_their_methods_come_from_the_schema():
    assert bundle.SCHEMES == ("image", "arseg", "tdnet")
    assert bundle.FORMAT_VERSION == 1
    assert manifest_schema.required_methods("arseg") == ["keyframe", "nonkeyframe", "warp"]
    assert manifest_schema.required_methods("tdnet") == ["forward", "step"]
    assert manifest_schema.required_methods("image") == ["forward"]


def test_long_values_are_cut_in_messages(tmp_path, good_manifest):
    good_manifest["classes"] = {"names": ["x" * 200]}
    message = refused(tmp_path, good_manifest)
    assert message.endswith('must be a list, got {"names": ["' + "x" * 65 + "...")


def test_missing_module_file_is_named(tmp_path, good_manifest):
    folder = write_bundle(tmp_path / "b", good_manifest)
    (folder / "model.pt").unlink()
    with pytest.raises(bundle.BundleError, match=r"'files.module'.*model.pt"):
        bundle.read(folder)


def test_invalid_json_names_the_file(tmp_path):
    assert "not valid JSON" in refused(tmp_path, "{ not json")


def test_unknown_bundle_name_lists_shipped():
    with pytest.raises(bundle.BundleError, match="camvid-espnet"):
        bundle.read("no-such-bundle")


def test_validate_manifest_accepts_a_copy(good_manifest):
    assert bundle.validate_manifest(copy.deepcopy(good_manifest)) == good_manifest
