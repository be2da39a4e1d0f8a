"""Model bundles: read and validate manifest.json (format_version 1), load the TorchScript module.

A bundle is a folder holding manifest.json and the TorchScript file it names; models/README.md
is the contract. The Rust element applies the same rules; keep the two in step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Union

from . import paths

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SCHEMES = ("image", "arseg", "tdnet")
TDNET_METHODS = ("forward", "step")


class BundleError(ValueError):
    """A bundle that cannot be used; the message names the file and the field."""


ARSEG_METHODS = ("keyframe", "nonkeyframe", "warp")  # beside forward (= keyframe)


def _fail(source: Path, field: str, problem: str) -> BundleError:
    return BundleError(f"{source}: field '{field}' {problem}")


def _get(obj: Dict, key: str, kind, source: Path, prefix: str = "") -> Any:
    field = prefix + key
    if key not in obj:
        raise _fail(source, field, "is missing")
    value = obj[key]
    # bool is an int in Python; never accept it where a number is meant.
    if isinstance(value, bool) and kind is not bool:
        raise _fail(source, field, f"must be {_kind_name(kind)}, got {value!r}")
    if not isinstance(value, kind):
        raise _fail(source, field, f"must be {_kind_name(kind)}, got {type(value).__name__}")
    return value


def _kind_name(kind) -> str:
    names = {str: "a string", int: "an integer", list: "a list", dict: "an object"}
    return names.get(kind, kind.__name__)


def _positive_int(obj: Dict, key: str, source: Path, prefix: str = "") -> int:
    value = _get(obj, key, int, source, prefix)
    if value <= 0:
        raise _fail(source, prefix + key, f"must be a positive integer, got {value}")
    return value


def _text(obj: Dict, key: str, source: Path, prefix: str = "") -> str:
    value = _get(obj, key, str, source, prefix)
    if not value.strip():
        raise _fail(source, prefix + key, "must not be empty")
    return value


def _one_of(obj: Dict, key: str, allowed, source: Path, prefix: str = "") -> str:
    value = _get(obj, key, str, source, prefix)
    if value not in allowed:
        raise _fail(source, prefix + key, f"must be one of {list(allowed)}, got {value!r}")
    return value


def validate_manifest(manifest: Any, source: Union[str, Path] = MANIFEST) -> Dict:
    """Checks a parsed manifest against format_version 1; returns it, or raises BundleError."""
    source = Path(source)
    if not isinstance(manifest, dict):
        raise BundleError(f"{source}: the manifest must be a JSON object")
    version = _get(manifest, "format_version", int, source)
    if version != FORMAT_VERSION:
        raise _fail(
            source,
            "format_version",
            f"is {version}; this reader supports format_version {FORMAT_VERSION} only "
            "(re-export the bundle with a matching models/export.py)",
        )
    _text(manifest, "name", source)
    _get(manifest, "description", str, source)
    _text(manifest, "dataset", source)
    scheme = _one_of(manifest, "scheme", SCHEMES, source)

    classes = _get(manifest, "classes", list, source)
    if not classes:
        raise _fail(source, "classes", "must list at least one class")
    for i, cls in enumerate(classes):
        prefix = f"classes[{i}]."
        if not isinstance(cls, dict):
            raise _fail(source, f"classes[{i}]", "must be an object with id, name, color")
        cid = _get(cls, "id", int, source, prefix)
        if cid != i:
            raise _fail(
                source, prefix + "id", f"must be {i} (ids are the logits channels, in order), got {cid}"
            )
        _text(cls, "name", source, prefix)
        color = _get(cls, "color", list, source, prefix)
        if len(color) != 3 or not all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in color
        ):
            raise _fail(source, prefix + "color", f"must be [r, g, b] with 0..255 integers, got {color!r}")

    inp = _get(manifest, "input", dict, source)
    _one_of(inp, "format", ("RGB",), source, "input.")
    _one_of(inp, "layout", ("NCHW",), source, "input.")
    _one_of(inp, "dtype", ("uint8",), source, "input.")
    multiple = _positive_int(inp, "size_multiple", source, "input.")
    native = _get(inp, "native_size", list, source, "input.")
    if len(native) != 2 or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 and v % multiple == 0 for v in native
    ):
        raise _fail(
            source,
            "input.native_size",
            f"must be [height, width], positive multiples of input.size_multiple ({multiple}), "
            f"got {native!r}",
        )
    _text(inp, "normalization", source, "input.")

    methods = _get(manifest, "methods", dict, source)
    if scheme == "image" and "forward" not in methods:
        raise _fail(source, "methods.forward", "is missing (required by scheme 'image')")
    if scheme == "arseg":
        for required in ARSEG_METHODS:
            if required not in methods:
                raise _fail(source, f"methods.{required}", "is missing (required by scheme 'arseg')")
        scale = manifest.get("lowres_scale")
        if scale is None:
            raise _fail(source, "lowres_scale", "is missing (required by scheme 'arseg')")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 1:
            raise _fail(source, "lowres_scale", f"must be in (0, 1], got {scale!r}")
    if scheme == "tdnet":
        for required in TDNET_METHODS:
            if required not in methods:
                raise _fail(source, f"methods.{required}", "is missing (required by scheme 'tdnet')")
        n = manifest.get("subnetworks")
        if n is None:
            raise _fail(source, "subnetworks", "is missing (required by scheme 'tdnet')")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise _fail(source, "subnetworks", f"must be at least 1, got {n!r}")
    for mname, method in methods.items():
        if not isinstance(method, dict):
            raise _fail(source, f"methods.{mname}", "must be an object with inputs and outputs")
        for key in ("inputs", "outputs"):
            value = _get(method, key, list, source, f"methods.{mname}.")
            if not value or not all(isinstance(v, str) for v in value):
                raise _fail(source, f"methods.{mname}.{key}", "must be a non-empty list of strings")

    _positive_int(manifest, "logits_stride", source)
    features = _get(manifest, "features", dict, source)
    _positive_int(features, "channels", source, "features.")
    _positive_int(features, "stride", source, "features.")
    files = _get(manifest, "files", dict, source)
    _text(files, "module", source, "files.")
    _get(manifest, "source", str, source)
    _get(manifest, "license", str, source)
    return manifest


@dataclass
class Bundle:
    folder: Path
    manifest: Dict

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def classes(self) -> List[Dict]:
        return self.manifest["classes"]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def native_size(self) -> List[int]:
        return list(self.manifest["input"]["native_size"])

    @property
    def size_multiple(self) -> int:
        return self.manifest["input"]["size_multiple"]

    @property
    def logits_stride(self) -> int:
        return self.manifest["logits_stride"]

    @property
    def module_path(self) -> Path:
        return self.folder / self.manifest["files"]["module"]

    def load_module(self):
        """The TorchScript module on the CPU, in eval mode."""
        import torch

        module = torch.jit.load(str(self.module_path), map_location="cpu")
        module.eval()
        return module


def resolve(path_or_name: Union[str, Path]) -> Path:
    """A bundle folder from a folder path, a manifest.json path or the name of a bundle in the
    search path (`paths.bundle_dirs()`, the plugin's order)."""
    p = Path(path_or_name)
    if p.is_file() and p.name == MANIFEST:
        return p.parent
    if p.is_dir():
        return p
    name = str(path_or_name)
    searched = [p]
    if name and "/" not in name and name not in (".", ".."):
        for folder in paths.bundle_dirs():
            if (folder / name).is_dir():
                return folder / name
            searched.append(folder / name)
    raise BundleError(
        f"no model bundle {name!r}: not a folder or manifest.json, and no bundle of that name in the "
        f"model search path (${paths.MODEL_PATH_ENV}, then vss/models in the XDG data folders); "
        f"looked in {', '.join(map(str, searched))}; bundles there: {', '.join(available_names()) or 'none'}"
    )


def read(path_or_name: Union[str, Path]) -> Bundle:
    """Reads and validates a bundle's manifest, and checks the files it names exist."""
    folder = resolve(path_or_name)
    source = folder / MANIFEST
    if not source.is_file():
        raise BundleError(f"{folder}: no {MANIFEST} in the bundle folder")
    try:
        manifest = json.loads(source.read_text())
    except json.JSONDecodeError as e:
        raise BundleError(f"{source}: not valid JSON ({e})") from None
    validate_manifest(manifest, source)
    module = folder / manifest["files"]["module"]
    if not module.is_file():
        raise _fail(source, "files.module", f"names {module.name}, which is not in {folder}")
    return Bundle(folder, manifest)


def manifest_head(spec: Any, name: str, description: str, scheme: str) -> Dict:
    """The fields every exported manifest opens with, from a `zoo.BundleSpec` (dataset, class
    table, input): the exporters add methods, features, files and provenance after them."""
    return {
        "format_version": FORMAT_VERSION,
        "name": name,
        "description": description,
        "dataset": spec.dataset,
        "scheme": scheme,
        "classes": [dict(c) for c in spec.classes],
        "input": {
            "format": "RGB",
            "layout": "NCHW",
            "dtype": "uint8",
            "native_size": list(spec.native_size),
            "size_multiple": spec.size_multiple,
            "normalization": spec.preprocessing.description,
        },
    }


def format_json(value: Any, indent: int = 0, width: int = 100) -> str:
    """JSON with 2-space indentation where a value does not fit on one line (so each class of
    a manifest is one line), keys in insertion order."""
    flat = json.dumps(value)
    if len(flat) + indent <= width or not isinstance(value, (dict, list)) or not value:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, dict):
        items = [f"{pad}{json.dumps(k)}: {format_json(v, indent + 2, width)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [pad + format_json(v, indent + 2, width) for v in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def write_manifest(folder: Path, manifest: Dict) -> Path:
    """Validates then writes manifest.json."""
    path = Path(folder) / MANIFEST
    validate_manifest(manifest, path)
    path.write_text(format_json(manifest) + "\n")
    return path


def shipped_names() -> List[str]:
    """The bundles shipped in the checkout (models/bundles)."""
    if not paths.BUNDLES_DIR.is_dir():
        return []
    return sorted(d.name for d in paths.BUNDLES_DIR.iterdir() if (d / MANIFEST).is_file())


def available_names() -> List[str]:
    """The bundles in the search path (`paths.bundle_dirs()`), each once."""
    folders = [f for f in paths.bundle_dirs() if f.is_dir()]
    return sorted({d.name for f in folders for d in f.iterdir() if (d / MANIFEST).is_file()})
