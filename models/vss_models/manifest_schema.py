"""The manifest rules as data: models/manifest.schema.json and the interpreter that applies it.

src/model/schema.rs is the same interpreter in Rust. Both read the same file, walk it in the
same order and word the first violation the same way; models/tests/data/manifest_cases.json
holds the cases both test suites run. models/README.md ("The schema") lists the keywords.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Union

from . import paths

SCHEMA_PATH = paths.MODELS_DIR / "manifest.schema.json"

# Keywords that only document; the interpreter skips them.
ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description"})
# Keywords the interpreter applies. A schema using any other is refused, so that a rule cannot
# be added that one side would silently skip.
KEYWORDS = ANNOTATIONS | frozenset(
    {
        "type",
        "const",
        "enum",
        "minimum",
        "exclusiveMinimum",
        "maximum",
        "minItems",
        "maxItems",
        "required",
        "properties",
        "additionalProperties",
        "items",
        "allOf",
        "if",
        "then",
        "x-vss-problem",
        "x-vss-not-blank",
        "x-vss-equals-index",
        "x-vss-multiple-of",
    }
)
TYPES = {
    "object": "an object",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
}
# Values in messages are cut to this many characters.
RENDER_LIMIT = 80

JsonPath = List[Union[str, int]]


@dataclass(frozen=True)
class Violation:
    """The first rule a manifest breaks: `field` as `classes[2].color` ('' for the whole
    manifest), `problem` as the words after the field name, `keyword` the schema keyword."""

    field: str
    problem: str
    keyword: str


def render(value: Any) -> str:
    """`value` as compact JSON with sorted keys, cut to RENDER_LIMIT characters (schema.rs
    `render` writes the same text)."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= RENDER_LIMIT else text[: RENDER_LIMIT - 3] + "..."


def field_name(path: Sequence[Union[str, int]]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def is_type(kind: str, value: Any) -> bool:
    """JSON types; bool is never a number, and an integer is written without a fraction (1.0
    is a number only: the Rust side reads these fields as unsigned integers)."""
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    raise ValueError(f"unknown type {kind!r}")


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but true != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if is_type("number", a) and is_type("number", b):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def pointer(root: Any, ptr: str) -> Any:
    """The value at JSON pointer `ptr` ("/input/size_multiple"), or None."""
    value = root
    for part in ptr.split("/")[1:]:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def condition(schema: Dict) -> Optional[tuple]:
    """`(field, value)` of an `if` of the one supported form
    `{"required": [F], "properties": {F: {"const": V}}}`, else None."""
    props = schema.get("properties")
    if not isinstance(props, dict) or len(props) != 1:
        return None
    (name, sub), = props.items()
    if not isinstance(sub, dict) or set(sub) != {"const"}:
        return None
    if set(schema) - {"properties", "required"} or schema.get("required", [name]) != [name]:
        return None
    return name, sub["const"]


def check_schema(schema: Any, where: str = "#") -> List[str]:
    """What in `schema` the interpreter cannot apply (unknown keywords, wrong shapes)."""
    if not isinstance(schema, dict):
        return [f"{where}: a schema must be an object"]
    problems = [f"{where}: unknown keyword {k!r}" for k in schema if k not in KEYWORDS]
    if "type" in schema and schema["type"] not in TYPES:
        problems.append(f"{where}: unknown type {schema['type']!r}")
    for key in ("properties",):
        for name, sub in schema.get(key, {}).items():
            problems += check_schema(sub, f"{where}/{key}/{name}")
    for key in ("additionalProperties", "items"):
        if key in schema:
            problems += check_schema(schema[key], f"{where}/{key}")
    for i, part in enumerate(schema.get("allOf", [])):
        problems += check_schema(part, f"{where}/allOf/{i}")
    if ("if" in schema) != ("then" in schema):
        problems.append(f"{where}: 'if' and 'then' go together")
    if "if" in schema:
        if condition(schema["if"]) is None:
            problems.append(f"{where}/if: must be {{'required': [F], 'properties': {{F: {{'const': V}}}}}}")
        problems += check_schema(schema["then"], f"{where}/then")
    if not isinstance(schema.get("required", []), list):
        problems.append(f"{where}/required: must be a list")
    ptr = schema.get("x-vss-multiple-of")
    if ptr is not None and not (isinstance(ptr, str) and ptr.startswith("/")):
        problems.append(f"{where}/x-vss-multiple-of: must be a JSON pointer")
    return problems


def load(path=SCHEMA_PATH) -> Dict:
    schema = json.loads(path.read_text())
    problems = check_schema(schema)
    if problems:
        raise RuntimeError(f"{path}: " + "; ".join(problems))
    return schema


SCHEMA = load()


def validate(instance: Any, schema: Dict = SCHEMA) -> Optional[Violation]:
    """The first rule `instance` breaks, or None."""
    return _validate(schema, instance, [], instance, "")


def _validate(schema: Dict, value: Any, path: JsonPath, root: Any, why: str) -> Optional[Violation]:
    own = _own(schema, value, path, root)
    if own is not None:
        template = schema.get("x-vss-problem")
        if template is not None:
            own = Violation(own.field, template.replace("{value}", render(value)), own.keyword)
        return own
    if isinstance(value, dict):
        props = schema.get("properties", {})
        required = schema.get("required", [])
        # Required fields in the schema's order, then the optional ones and the others by name.
        for name in required:
            if name not in value:
                return Violation(field_name(path + [name]), "is missing" + why, "required")
            if name in props:
                found = _validate(props[name], value[name], path + [name], root, why)
                if found:
                    return found
        for name in sorted(props):
            if name not in required and name in value:
                found = _validate(props[name], value[name], path + [name], root, why)
                if found:
                    return found
        extra = schema.get("additionalProperties")
        if extra is not None:
            for name in sorted(value):
                if name not in props:
                    found = _validate(extra, value[name], path + [name], root, why)
                    if found:
                        return found
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found = _validate(schema["items"], item, path + [i], root, why)
            if found:
                return found
    for part in schema.get("allOf", []):
        if "if" in part:
            if _validate(part["if"], value, path, root, "") is not None:
                continue
            name, want = condition(part["if"])
            shown = f"'{want}'" if isinstance(want, str) else render(want)
            found = _validate(part["then"], value, path, root, f" (required by {name} {shown})")
        else:
            found = _validate(part, value, path, root, why)
        if found:
            return found
    return None


def _own(schema: Dict, value: Any, path: JsonPath, root: Any) -> Optional[Violation]:
    """The keywords that judge `value` itself, in a fixed order."""
    here = field_name(path)
    got = render(value)
    kind = schema.get("type")
    if kind is not None and not is_type(kind, value):
        return Violation(here, f"must be {TYPES[kind]}, got {got}", "type")
    if "const" in schema and not json_equal(value, schema["const"]):
        return Violation(here, f"must be {render(schema['const'])}, got {got}", "const")
    if "enum" in schema and not any(json_equal(value, e) for e in schema["enum"]):
        return Violation(here, f"must be one of {render(schema['enum'])}, got {got}", "enum")
    if is_type("number", value):
        if "minimum" in schema and value < schema["minimum"]:
            return Violation(here, f"must be at least {render(schema['minimum'])}, got {got}", "minimum")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            bound = render(schema["exclusiveMinimum"])
            return Violation(here, f"must be greater than {bound}, got {got}", "exclusiveMinimum")
        if "maximum" in schema and value > schema["maximum"]:
            return Violation(here, f"must be at most {render(schema['maximum'])}, got {got}", "maximum")
    if is_type("integer", value):
        ptr = schema.get("x-vss-multiple-of")
        if ptr is not None:
            multiple = pointer(root, ptr)
            # A bad multiple is its own field's error.
            if is_type("integer", multiple) and multiple > 0 and value % multiple != 0:
                name = field_name(ptr.split("/")[1:])
                return Violation(
                    here, f"must be a multiple of {name} ({multiple}), got {got}", "x-vss-multiple-of"
                )
        if schema.get("x-vss-equals-index") is True:
            index = next((p for p in reversed(path) if isinstance(p, int)), None)
            if index is not None and value != index:
                problem = f"must be {index} (its index in the list), got {got}"
                return Violation(here, problem, "x-vss-equals-index")
    if isinstance(value, list):
        low, high = schema.get("minItems"), schema.get("maxItems")
        short = low is not None and len(value) < low
        if short or (high is not None and len(value) > high):
            if low == high:
                need = f"exactly {low}"
            elif short:
                need = f"at least {low}"
            else:
                need = f"at most {high}"
            count = low if short else high
            noun = "item" if count == 1 else "items"
            return Violation(here, f"must have {need} {noun}, got {got}", "minItems" if short else "maxItems")
    if isinstance(value, str) and schema.get("x-vss-not-blank") is True and not value.strip():
        return Violation(here, "must not be empty", "x-vss-not-blank")
    return None


def format_version(schema: Dict = SCHEMA) -> int:
    return schema["properties"]["format_version"]["const"]


def schemes(schema: Dict = SCHEMA) -> List[str]:
    return list(schema["properties"]["scheme"]["enum"])


def required_methods(scheme: str, schema: Dict = SCHEMA) -> List[str]:
    """The methods a manifest of `scheme` must name (from the schema's allOf)."""
    for part in schema.get("allOf", []):
        if "if" in part and condition(part["if"]) == ("scheme", scheme):
            return list(part["then"].get("properties", {}).get("methods", {}).get("required", []))
    return []
