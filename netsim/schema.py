"""The scenario file reference, generated from the pydantic models of ``netsim.scenario``.

``scenario_reference()`` is the Markdown that ``netsim schema`` prints and docs/SCENARIOS.md
holds: one section per model (``Scenario`` and every spec below it, in breadth-first order),
each with the model's docstring, where it appears in a scenario file, and a table of its fields
with type, unit (read from the field name's suffix), default, limits (``ge``/``le``/``gt``/``lt``,
lengths and patterns from the field metadata) and description (the field's ``description``,
where a model gives one). Nothing here is written by hand per field: a new field or limit in
the models appears in the reference, and the test of docs/SCENARIOS.md fails until it is
regenerated.
"""

from __future__ import annotations

import enum
import inspect
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

UNIT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_ms", "ms"),
    ("_s", "s"),
    ("_px", "pixels"),
    ("_bytes", "bytes"),
    ("_kbps", "kbit/s"),
    ("_frames", "frames"),
    ("_frame", "frame index"),
    ("_packets", "packets"),
    ("_scales", "scales"),
)
"""Field-name suffix -> unit (STYLE 3: units are in the names)."""
UNIT_NAMES: dict[str, str] = {"fps": "frames/s", "frames": "frames", "frame": "frame index"}
"""Whole field names that are units."""

SCHEMA_COMMAND = "netsim schema"
REGENERATE = "UPDATE_DOCS=1 .venv/bin/python -m pytest tests/netsim/test_schema.py"


def unit_of(name: str) -> str:
    """The unit a field name states (``delay_ms`` -> ``ms``), or ``""``."""
    if name in UNIT_NAMES:
        return UNIT_NAMES[name]
    return next((unit for suffix, unit in UNIT_SUFFIXES if name.endswith(suffix)), "")


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)


def _strip_annotated(annotation: Any) -> tuple[Any, list[Any]]:
    """``Annotated[T, m1, Field(...)]`` -> ``(T, [m1, constraints of the Field...])``."""
    metadata: list[Any] = []
    while typing.get_origin(annotation) is Annotated:
        annotation, *extra = typing.get_args(annotation)
        for item in extra:
            if isinstance(item, FieldInfo):
                metadata.extend(item.metadata)
            else:
                metadata.append(item)
    return annotation, metadata


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _optional_inner(annotation: Any) -> Any | None:
    """``X`` of ``X | None``; None for anything else."""
    if not _is_union(annotation):
        return None
    members = [a for a in typing.get_args(annotation) if a is not type(None)]
    if len(members) == 1 and len(typing.get_args(annotation)) == 2:
        return members[0]
    return None


def _plural(items: str, count: int) -> str:
    singular = {"entries": "entry", "characters": "character"}
    return singular.get(items, items) if count == 1 else items


def limits_text(metadata: list[Any], items: str = "entries") -> str:
    """Constraints as text: ``0 to 1``, ``>= 1``, ``< 1``, ``at most 100 characters``...;
    ``items`` names what a length counts."""
    bounds: dict[str, Any] = {}
    other: list[str] = []
    for item in metadata:
        if isinstance(item, annotated_types.Ge):
            bounds[">="] = item.ge
        elif isinstance(item, annotated_types.Gt):
            bounds[">"] = item.gt
        elif isinstance(item, annotated_types.Le):
            bounds["<="] = item.le
        elif isinstance(item, annotated_types.Lt):
            bounds["<"] = item.lt
        elif isinstance(item, annotated_types.MinLen):
            other.append(f"at least {item.min_length} {_plural(items, item.min_length)}")
        elif isinstance(item, annotated_types.MaxLen):
            other.append(f"at most {item.max_length} {_plural(items, item.max_length)}")
        elif getattr(item, "pattern", None):
            other.append(f"matches `{item.pattern}`")
    parts: list[str] = []
    if ">=" in bounds and "<=" in bounds:
        parts.append(f"{_number(bounds.pop('>='))} to {_number(bounds.pop('<='))}")
    parts.extend(f"{op} {_number(value)}" for op, value in bounds.items())
    return ", ".join(parts + other)


def type_text(annotation: Any, *, top: bool = True) -> str:
    """A field type in words; nested constraints (list items, mapping keys) are given inline,
    a field's own constraints are left to :func:`limits_text` (``top``)."""
    inner, metadata = _strip_annotated(annotation)
    text = _bare_type_text(inner, top)
    limits = limits_text(metadata, _items(inner))
    if limits and not top:
        text += f" ({limits})"
    return text


def _items(annotation: Any) -> str:
    """What a length limit of this type counts."""
    return "characters" if annotation is str else "entries"


def _bare_type_text(annotation: Any, top: bool) -> str:
    inner = _optional_inner(annotation)
    if inner is not None:
        return f"{type_text(inner, top=top)} or null"
    if _is_union(annotation):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if all(inspect.isclass(m) and issubclass(m, BaseModel) for m in members):
            links = ", ".join(_link(m) for m in members)
            return f"one of {links}, chosen by its `kind`"
        return " or ".join(type_text(m, top=False) for m in members)
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "constant " + " or ".join(f"`{v}`" for v in typing.get_args(annotation))
    if origin in (list, tuple, set, frozenset):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return "list of " + (type_text(args[0], top=False) if args else "values")
    if origin is dict:
        key, value = typing.get_args(annotation)
        return f"mapping of {type_text(key, top=False)} to {type_text(value, top=False)}"
    if inspect.isclass(annotation):
        if issubclass(annotation, BaseModel):
            return _link(annotation)
        if issubclass(annotation, enum.Enum):
            return "one of " + ", ".join(f"`{member.value}`" for member in annotation)
        names = {bool: "boolean", int: "integer", float: "number", str: "string", Path: "path"}
        for kind, name in names.items():
            if issubclass(annotation, kind):
                return name
    return str(annotation)


def _anchor(model: type[BaseModel]) -> str:
    return model.__name__.lower()


def _link(model: type[BaseModel]) -> str:
    return f"[{model.__name__}](#{_anchor(model)})"


def default_text(info: FieldInfo) -> str:
    """A field's default as YAML would spell it; ``required`` when it has none."""
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return "required"
    else:
        value = info.default
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        kind = getattr(value, "kind", None)
        return f"`kind: {kind}`" if kind is not None else "its defaults"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple | list):
        return "`[]`" if not value else f"`{list(value)}`"
    if isinstance(value, dict):
        return "`{}`" if not value else f"`{value}`"
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    return f"`{_number(value)}`"


@dataclass(frozen=True)
class FieldRow:
    """One field of a model, as the reference shows it."""

    name: str
    type: str
    unit: str
    default: str
    limits: str
    description: str


def field_rows(model: type[BaseModel]) -> list[FieldRow]:
    """The fields of ``model`` in declaration order (inherited ones first)."""
    rows = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        base, nested = _strip_annotated(annotation)
        inner = _optional_inner(base)
        if inner is not None:
            base, more = _strip_annotated(inner)
            nested = nested + more
        rows.append(
            FieldRow(
                name=info.alias or name,
                type=type_text(annotation),
                unit=unit_of(name),
                default=default_text(info),
                limits=limits_text([*info.metadata, *nested], _items(base)),
                description=" ".join((info.description or "").split()),
            )
        )
    return rows


def _models_in(annotation: Any) -> Iterator[tuple[type[BaseModel], str]]:
    """Models inside a field type, each with the path suffix leading to it (``[]`` for a list
    item, ``.<key>`` for a mapping value)."""
    annotation, _ = _strip_annotated(annotation)
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        yield annotation, ""
        return
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
    if origin is dict:
        for model, suffix in _models_in(args[1]):
            yield model, ".<key>" + suffix
    elif origin in (list, tuple, set, frozenset):
        for arg in args:
            for model, suffix in _models_in(arg):
                yield model, "[]" + suffix
    elif _is_union(annotation):
        for arg in args:
            yield from _models_in(arg)


def models_with_paths(root: type[BaseModel]) -> list[tuple[type[BaseModel], list[str]]]:
    """``root`` and every model below it, breadth first, each with the dotted paths at which
    it appears in a file (``""`` for the root)."""
    paths: dict[type[BaseModel], list[str]] = {root: [""]}
    queue = [root]
    while queue:
        model = queue.pop(0)
        for name, info in model.model_fields.items():
            for child, suffix in _models_in(info.annotation):
                for parent in paths[model]:
                    where = f"{parent}.{name}" if parent else name
                    known = paths.setdefault(child, [])
                    if f"{where}{suffix}" not in known:
                        known.append(f"{where}{suffix}")
                if child not in queue and child is not model and len(paths[child]) == 1:
                    queue.append(child)
    return list(paths.items())


def docstring_of(model: type[BaseModel]) -> str:
    """The model's docstring, after those of its private base classes (shared fields)."""
    parts = []
    for cls in reversed(model.__mro__):
        if cls is model or (cls.__name__.startswith("_") and issubclass(cls, BaseModel)):
            doc = cls.__dict__.get("__doc__")
            if doc:
                parts.append(" ".join(inspect.cleandoc(doc).split()))
    return " ".join(parts)


def _cell(text: str) -> str:
    return text.replace("|", "\\|") if text else ""


def model_section(model: type[BaseModel], paths: list[str], root: bool = False) -> str:
    """The Markdown section of one model."""
    lines = [f"## {model.__name__}", ""]
    if root:
        lines += ["The whole file.", ""]
    else:
        kind_field = model.model_fields.get("kind")
        kind = typing.get_args(kind_field.annotation) if kind_field is not None else ()
        where = ", ".join(f"`{p}`" for p in paths)
        tag = f" with `kind: {kind[0]}`" if kind else ""
        lines += [f"At {where}{tag}.", ""]
    doc = docstring_of(model)
    if doc:
        lines += [doc, ""]
    rows = field_rows(model)
    describe = any(row.description for row in rows)
    header = ["field", "type", "unit", "default", "limits"] + (["description"] if describe else [])
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + " --- |" * len(header))
    for row in rows:
        cells = [f"`{row.name}`", row.type, row.unit, row.default, row.limits]
        if describe:
            cells.append(row.description)
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def model_reference(root: type[BaseModel], title: str, preamble: str = "") -> str:
    """Markdown reference of ``root`` and every model below it."""
    sections = models_with_paths(root)
    contents = ", ".join(f"[{m.__name__}](#{_anchor(m)})" for m, _ in sections)
    parts = [f"# {title}\n", preamble] if preamble else [f"# {title}\n"]
    parts.append(f"Sections: {contents}.\n")
    parts += [model_section(m, p, root=m is root) for m, p in sections]
    return "\n".join(parts)


def _size(size_bytes: int) -> str:
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size_bytes >= factor and size_bytes % factor == 0:
            return f"{size_bytes // factor} {unit}"
    return f"{size_bytes} bytes"


def scenario_reference() -> str:
    """The reference of scenario files (docs/SCENARIOS.md; ``netsim schema``)."""
    from netsim.scenario import MAX_SCENARIO_FILE_BYTES, Scenario

    preamble = (
        f"Generated by `{SCHEMA_COMMAND}` from the pydantic models in `netsim/scenario.py`;\n"
        f"do not edit by hand (regenerate with `{REGENERATE}`).\n"
        "\n"
        "A scenario is one YAML mapping, a file of at most "
        f"{_size(MAX_SCENARIO_FILE_BYTES)}; `netsim validate FILE`\n"
        'checks it. Unknown fields are errors. Numbers are strict and finite: `true` or `"12"`\n'
        "is not a number, and an integer field refuses `1.0`. Units are in the field names.\n"
        "Variants (loss models, links) are chosen by their `kind` field. Paths (video,\n"
        "checkpoint, trace) are relative to the scenario file. Limits are inclusive unless\n"
        "written with `<` or `>`; checks across fields are described under each model.\n"
    )
    return model_reference(Scenario, "Scenario file reference", preamble)
