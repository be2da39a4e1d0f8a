"""Model bundles: read and validate manifest.json (format_version 1), load the TorchScript module.

A bundle is a folder holding manifest.json and the TorchScript file it names; models/README.md
is the prose of the contract and models/manifest.schema.json its rules, which the Rust element
applies with the same interpreter (manifest_schema.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Union

from . import manifest_schema, paths

FORMAT_VERSION = manifest_schema.format_version()
MANIFEST = "manifest.json"
SCHEMES = tuple(manifest_schema.schemes())


class BundleError(ValueError):
    """A bundle that cannot be used; the message names the file and the field."""


def _fail(source: Path, field: str, problem: str) -> BundleError:
    if not field:
        return BundleError(f"{source}: the manifest {problem}")
    return BundleError(f"{source}: field '{field}' {problem}")


def validate_manifest(manifest: Any, source: Union[str, Path] = MANIFEST) -> Dict:
    """Checks a parsed manifest against models/manifest.schema.json; returns it, or raises
    BundleError naming `source` and the field."""
    violation = manifest_schema.validate(manifest)
    if violation is not None:
        raise _fail(Path(source), violation.field, violation.problem)
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
