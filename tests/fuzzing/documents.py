"""Mutators of YAML and JSON documents: scenario and sweep files, and the JSON files of
loaders (pack manifests, run summaries). ``mutate_data`` changes the parsed document (a field
replaced by an odd value, deleted, wrapped, an extra field, a variant tag swapped);
``damage_yaml_text`` damages the text itself (bit flips, truncation, alias bombs, deep
nesting, ...)."""

from __future__ import annotations

import math
import random
from typing import Any

WEIRD_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    10**400,
    1e308,
    math.inf,
    -math.inf,
    math.nan,
    5e-324,
    "fuzz",
    "",
    "builtin:../../etc/passwd",
    "sample:nosuch",
    [],
    [1, "x", None],
    {},
    {"kind": "bernoulli"},
)
NUMERIC_EDGES: tuple[Any, ...] = (
    0,
    1,
    2,
    -1,
    0.5,
    5e-324,
    1e-9,
    1e308,
    1.7976931348623157e308,
    2**31,
    2**53 + 1,
    2**63,
    2**64,
    10**18,
    10**400,
)
KNOWN_FIELDS = (
    "kind",
    "loss",
    "loss_rate",
    "mean_burst_packets",
    "p",
    "r",
    "rate_kbps",
    "queue_bytes",
    "queue_discipline",
    "trace_file",
    "delay_ms",
    "delay_frames",
    "jitter_ms",
    "fec",
    "max_scales",
    "mtu_bytes",
    "echo_timeout_ms",
    "decode_time_ms",
    "encode_time_ms",
    "first_frame",
    "last_frame",
    "exempt_scales",
    "packets",
    "enabled",
    "preset",
    "start_frame",
    "base",
    "grid",
    "seeds",
    "frames",
    "device",
    "save_video",
    "out_dir",
)
KINDS = ("none", "bernoulli", "gilbert_elliott", "explicit", "unlimited", "rate", "trace", "x")
RUN_PATH_PREFIXES = ("network", "sender", "receiver", "seed")
"""Mutations there survive the run's codec/video patch and change what the run does."""


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((*prefix, key))
            out.extend(_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.append((*prefix, i))
            out.extend(_paths(value, (*prefix, i)))
    return out


def _containers(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if isinstance(node, dict) else []
    if isinstance(node, dict):
        for key, value in node.items():
            out.extend(_containers(value, (*prefix, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.extend(_containers(value, (*prefix, i)))
    return out


def field_paths(node: Any) -> list[str]:
    """The dotted paths of every field of a parsed document (list items not included)."""
    return [".".join(map(str, p)) for p in _paths(node) if all(isinstance(x, str) for x in p)]


def mutate_grid(rng: random.Random, sweep: dict, scenario_fields: list[str]) -> str:
    """Change a sweep's ``grid`` in place: a real or broken field path of the base scenario
    with odd values, many values, or values too large; returns a description."""
    grid = sweep.get("grid")
    if not isinstance(grid, dict):
        grid = sweep["grid"] = {}
    path = rng.choice(
        (
            rng.choice(scenario_fields),
            rng.choice(scenario_fields) + ".nosuch",
            "nosuch.field",
            "network..loss",
            "seed",
            "name",
            "network.forward.loss.kind",
        )
    )
    kind = rng.choice(("weird", "many", "large", "empty", "not_a_list"))
    if kind == "weird":
        values: Any = [_weird(rng, 1) for _ in range(rng.randint(1, 4))]
    elif kind == "many":
        values = list(range(rng.choice((50, 400, 20_000))))  # 20,000: past MAX_RUNS
    elif kind == "large":
        values = [rng.choice(("x" * 5000, list(range(2000)), {"a": "b" * 3000}))]
    elif kind == "empty":
        values = []
    else:
        values = _weird(rng, 1)
    grid[path] = values
    return f"grid {path}: {kind} {str(values)[:40]}"


def _get(node: Any, path: tuple) -> Any:
    for part in path:
        node = node[part]
    return node


def _dotted(path: tuple) -> str:
    return ".".join(str(p) for p in path) or "<root>"


def _weird(rng: random.Random, current: Any) -> Any:
    is_number = isinstance(current, int | float) and not isinstance(current, bool)
    if is_number and rng.random() < 0.5:
        value = rng.choice(NUMERIC_EDGES)
        return -value if rng.random() < 0.15 else value
    return rng.choice(WEIRD_VALUES)


def mutate_data(rng: random.Random, data: dict) -> tuple[str, list[tuple]]:
    """Mutate ``data`` in place; returns a description and the paths touched."""
    described, touched = [], []
    for _ in range(rng.choices((1, 2, 3), weights=(5, 3, 2))[0]):
        kind = rng.choices(("replace", "delete", "extra", "kind", "wrap"), weights=(6, 2, 2, 1, 1))[
            0
        ]
        paths = _paths(data)
        if kind == "extra" or not paths:
            where = rng.choice(_containers(data))
            key = rng.choice((*KNOWN_FIELDS, "zz_unknown", 7, None, True, rng.randint(-3, 6)))
            value = _weird(rng, 1)
            _get(data, where)[key] = value
            described.append(f"extra {_dotted((*where, key))}={value!r:.40}")
            touched.append((*where, key))
            continue
        if kind == "kind":
            kinds = [p for p in paths if p[-1] == "kind"]
            if kinds:
                path = rng.choice(kinds)
                value = rng.choice(KINDS)
                _get(data, path[:-1])[path[-1]] = value
                described.append(f"{_dotted(path)}={value}")
                touched.append(path)
                continue
            kind = "replace"
        path = rng.choice(paths)
        parent, last = _get(data, path[:-1]), path[-1]
        if kind == "delete":
            del parent[last]
            described.append(f"delete {_dotted(path)}")
        elif kind == "wrap":
            parent[last] = rng.choice(([parent[last]], {"value": parent[last]}))
            described.append(f"wrap {_dotted(path)} -> {type(parent[last]).__name__}")
        else:
            value = _weird(rng, parent[last])
            parent[last] = value
            described.append(f"{_dotted(path)}={value!r:.40}")
        touched.append(path)
    return "; ".join(described), touched


def damage_yaml_text(rng: random.Random, text: str) -> tuple[str, bytes]:
    raw = text.encode()
    kind = rng.choice(
        (
            "flip",
            "truncate",
            "tab",
            "invalid_utf8",
            "bom",
            "dup_key",
            "deep",
            "alias",
            "long",
            "complex_key",
            "root_scalar",
            "empty",
            "multi_doc",
        )
    )
    if kind == "flip":
        out = bytearray(raw)
        for _ in range(rng.randint(1, 6)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        return kind, bytes(out)
    if kind == "truncate":
        cut = rng.randrange(len(raw))
        return f"truncate at {cut}", raw[:cut]
    if kind == "tab":
        return kind, raw.replace(b"  ", b"\t", 1)
    if kind == "invalid_utf8":
        pos = rng.randrange(len(raw))
        return kind, raw[:pos] + b"\xff\xfe\xc3" + raw[pos:]
    if kind == "bom":
        return kind, b"\xef\xbb\xbf" + raw
    if kind == "dup_key":
        return kind, raw + b"\nseed: 3\nseed: 4\n"
    if kind == "deep":
        depth = rng.choice((100, 1000, 20000))
        return f"deep nesting {depth}", raw + b"\ndescription: " + b"[" * depth + b"]" * depth
    if kind == "alias":
        lines = [b"a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        for i in range(1, 9):
            refs = b", ".join([b"*a%d" % (i - 1)] * 10)
            lines.append(b"a%d: &a%d [%s]" % (i, i, refs))
        doc = b"\n".join(b"x_" + line for line in lines).replace(b"x_a", b"a")
        return "alias bomb (10**9 leaves)", raw + b"\n" + doc + b"\ndescription: *a8\n"
    if kind == "long":
        return "200 kB description", raw + b"\ndescription: " + b"x" * 200_000 + b"\n"
    if kind == "complex_key":
        return kind, raw + b"\n? [a, b]\n: 1\n"
    if kind == "root_scalar":
        return kind, rng.choice((b"42", b"- a\n- b\n", b"null", b"'x'", b"!!binary AAAA"))
    if kind == "empty":
        return kind, b""
    return kind, raw + b"\n---\nname: second\n"
