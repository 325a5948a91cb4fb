"""Reading files users hand HLTHZ: bounded, typed, and wrong in one line.

Every YAML and JSON file HLTHZ reads goes through here, so one set of limits protects every
command: a file larger than ``max_bytes`` is refused before it is read whole (``--config
/dev/zero``), text must be UTF-8, nesting deeper than ``max_depth`` is refused before the
parser recurses, YAML aliases may not expand beyond ``max_nodes`` values (an "alias bomb" of a
few hundred bytes otherwise expands to gigabytes) nor refer to themselves, duplicate keys are
refused (YAML keeps only the last one), and numbers must be finite and within ``MAX_NUMBER``
(``.inf``, ``1e300`` and 400-digit integers break arithmetic far from the file).

Problems are raised through ``error(path, line, message)``: :class:`hlthz.errors.InputError`
for data files, :func:`config_error` for configuration, so the CLI prints one line
``FILE:LINE: [key.path: ]problem; what to do``. Messages quote values only through
:func:`excerpt`: short, escaped, never a whole 50 MB value or a line break.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import yaml

from hlthz.errors import ConfigError, HlthzError, InputError

__all__ = [
    "MAX_NUMBER",
    "YamlDocument",
    "config_error",
    "encoding_problem",
    "excerpt",
    "json_field",
    "load_yaml",
    "parse_json",
    "parse_yaml",
    "read_limited",
]

#: The largest magnitude a number in a YAML or JSON input may have (JSON integers: 2**63).
MAX_NUMBER = 1e15
_MAX_INT = 2**63
_MAX_DIGITS = 40  # of a number's text; longer cannot be in range

ErrorFactory = Callable[[str, int, str], HlthzError]


def config_error(path: str, line: int, message: str) -> ConfigError:
    """A :class:`ConfigError` reading ``FILE:LINE: message`` (``FILE: message`` for line 0)."""
    return ConfigError(f"{path}:{line}: {message}" if line else f"{path}: {message}")


def excerpt(value: object, limit: int = 40) -> str:
    """A short, one-line quotation of ``value`` for an error message.

    Strings are quoted with control characters escaped (a newline would split the one-line
    error), and cut after ``limit`` characters with the full length said, so an error about a
    50 MB selector quotes 40 characters of it.
    """
    text = value if isinstance(value, str) else repr(value)
    cut = text[:limit]
    shown = repr(cut) if isinstance(value, str) else cut.encode("unicode_escape").decode()
    if len(text) > limit:
        return f"{shown}... ({len(text):,} characters)"
    return shown


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n:,} bytes"


def read_limited(
    path: str | os.PathLike[str],
    *,
    max_bytes: int,
    what: str = "file",
    error: ErrorFactory = InputError,
) -> bytes:
    """The bytes of ``path``, refusing more than ``max_bytes`` without reading further."""
    name = str(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise error(name, 0, f"no such file; pass an existing {what}") from None
    except IsADirectoryError:
        raise error(name, 0, f"is a directory; pass a {what}") from None
    except OSError as exc:
        raise error(name, 0, f"cannot read ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise error(name, 0, f"larger than {_size(max_bytes)}; is this really a {what}?")
    return data


_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


def encoding_problem(head: bytes) -> str | None:
    """What is wrong with a text file starting with ``head`` (its first bytes) for a reader of
    UTF-8, or ``None``: a UTF-16 or UTF-32 byte-order mark, or a NUL byte in the first four
    bytes (UTF-16 without a mark, or not text at all). One message for every reader."""
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return f"the file is {encoding}; save it as UTF-8"
    if len(head) > 1 and b"\0" in head[:4]:
        return "the file is UTF-16 or binary; save it as UTF-8"
    return None


def _decode(data: bytes, name: str, error: ErrorFactory) -> str:
    problem = encoding_problem(data)
    if problem is not None:
        raise error(name, 1, problem)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(
            name,
            line,
            f"not UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8",
        ) from None
    return text.removeprefix("\ufeff")


def _number_problem(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} is not a finite number; write a number"
    if abs(value) > MAX_NUMBER:
        return f"{excerpt(value, 24)} is out of range; numbers must be within +-{MAX_NUMBER:g}"
    return None


# --------------------------------------------------------------------------------------------
# YAML


@dataclass(frozen=True)
class YamlDocument:
    """A loaded YAML file: ``data``, and the line of each key path (``("alerts", "critical")``;
    list items by index as a string) for messages."""

    data: Any
    source: str
    lines: Mapping[tuple[str, ...], int] = field(default_factory=dict)

    def line(self, path: tuple[str, ...]) -> int:
        """The line of ``path``, or of its nearest ancestor in the file (0: none)."""
        for depth in range(len(path), -1, -1):
            found = self.lines.get(path[:depth])
            if found is not None:
                return found
        return 0


class _Problem(Exception):
    def __init__(self, mark: yaml.Mark | None, message: str) -> None:
        self.mark = mark
        self.message = message


class _Loader(yaml.SafeLoader):
    """The safe loader, refusing deep nesting while it composes (before Python recursion)."""

    max_depth = 64

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                raise _Problem(
                    self.peek_event().start_mark,
                    f"nested more than {self.max_depth} levels deep; flatten it",
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Walk:
    """Checks a composed node tree: its expanded size, keys, numbers; indexes its lines."""

    def __init__(self, loader: _Loader, max_nodes: int) -> None:
        self.loader = loader
        self.max_nodes = max_nodes
        self.sizes: dict[int, int] = {}
        self.lines: dict[tuple[str, ...], int] = {}

    def size(self, node: yaml.Node, active: set[int]) -> int:
        # Aliases share node objects: memoised, this is linear in the file, and it finds
        # cycles (an alias inside the node it names) before anything expands them.
        key = id(node)
        if key in self.sizes:
            return self.sizes[key]
        if key in active:
            raise _Problem(node.start_mark, "an alias refers to a node that contains it; remove it")
        active.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                total += self.size(k, active) + self.size(v, active)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                total += self.size(item, active)
        active.discard(key)
        self.sizes[key] = min(total, self.max_nodes + 1)
        if total > self.max_nodes:
            raise _Problem(
                node.start_mark,
                f"aliases expand this to more than {self.max_nodes:,} values; write it out "
                "without '*' aliases",
            )
        return total

    def walk(self, node: yaml.Node, path: tuple[str, ...]) -> None:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    self.walk(value_node, path)
                    continue
                if not isinstance(key_node, yaml.ScalarNode):
                    raise _Problem(
                        key_node.start_mark,
                        f"{_dotted(path)}a key must be a plain value, not a list or mapping",
                    )
                self.scalar(key_node, path)
                name = str(key_node.value)
                if name in seen:
                    raise _Problem(
                        key_node.start_mark,
                        f"{_dotted((*path, name))}defined twice (YAML keeps only the last one); "
                        "merge the two",
                    )
                seen.add(name)
                self.lines[(*path, name)] = key_node.start_mark.line + 1
                self.walk(value_node, (*path, name))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.walk(item, (*path, str(index)))
        else:
            self.scalar(node, path)

    def scalar(self, node: yaml.Node, path: tuple[str, ...]) -> None:
        if node.tag not in (_INT_TAG, _FLOAT_TAG):
            return
        text = str(node.value)
        if len(text.replace("_", "")) > _MAX_DIGITS:
            raise _Problem(
                node.start_mark,
                f"{_dotted(path)}{excerpt(text, 24)} is out of range; numbers must be within "
                f"+-{MAX_NUMBER:g}",
            )
        assert isinstance(node, yaml.ScalarNode)
        value: float = (
            self.loader.construct_yaml_int(node)
            if node.tag == _INT_TAG
            else self.loader.construct_yaml_float(node)
        )
        problem = _number_problem(value)
        if problem:
            raise _Problem(node.start_mark, f"{_dotted(path)}{problem}")


def _dotted(path: tuple[str, ...]) -> str:
    return f"{'.'.join(path)}: " if path else ""


def parse_yaml(
    text: str | bytes,
    *,
    source: str,
    max_depth: int = 64,
    max_nodes: int = 100_000,
    error: ErrorFactory = config_error,
) -> YamlDocument:
    """Parse one YAML document with the limits of this module (bytes must be UTF-8)."""
    if isinstance(text, bytes):
        text = _decode(text, source, error)
    try:
        loader = _Loader(text)  # the reader refuses control characters here already
        loader.max_depth = max_depth
        try:
            node = loader.get_single_node()
            if node is None:
                return YamlDocument(None, source, {})
            walk = _Walk(loader, max_nodes)
            walk.size(node, set())
            walk.walk(node, ())
            data = loader.construct_document(node)
        finally:
            loader.dispose()
    except _Problem as exc:
        line = exc.mark.line + 1 if exc.mark is not None else 0
        raise error(source, line, exc.message) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        line = mark.line + 1 if mark is not None else 0
        if "expected a single document" in str(exc):
            problem = "more than one document (a '---' line); keep one"
        raise error(source, line, f"not valid YAML: {excerpt(problem, 120)[1:-1]}") from None
    except (RecursionError, MemoryError):
        raise error(source, 0, "too deeply nested or too large to read") from None
    return YamlDocument(data, source, walk.lines)


def load_yaml(
    path: str | os.PathLike[str],
    *,
    what: str = "YAML file",
    max_bytes: int = 4 << 20,
    max_depth: int = 64,
    max_nodes: int = 100_000,
    error: ErrorFactory = config_error,
) -> YamlDocument:
    """Read and parse the YAML file ``path`` (see :func:`parse_yaml`; ``what`` names it in
    messages: ``no such file; pass an existing thresholds file``)."""
    data = read_limited(path, max_bytes=max_bytes, what=what, error=error)
    return parse_yaml(data, source=str(path), max_depth=max_depth, max_nodes=max_nodes, error=error)


# --------------------------------------------------------------------------------------------
# JSON


class _BadNumber(ValueError):
    pass


def _parse_int(text: str) -> int:
    if len(text) > 20 or abs(value := int(text)) >= _MAX_INT:
        raise _BadNumber(f"the integer {excerpt(text, 24)} is out of range (beyond 2**63)")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadNumber(f"the number {excerpt(text, 24)} is out of range")
    return value


def _parse_constant(text: str) -> NoReturn:
    raise _BadNumber(f"{text} is not JSON; write a finite number or null")


#: One decoder for every call: ``json.loads`` with hooks would build a new one each time, and a
#: capture is parsed a line at a time.
_DECODER = json.JSONDecoder(
    parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant
)


def _too_deep(value: Any, max_depth: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def parse_json(
    data: str | bytes | bytearray,
    *,
    source: str,
    line: int = 0,
    max_depth: int = 64,
    hint: str = "",
    error: ErrorFactory = InputError,
) -> Any:
    """Parse one JSON value: strict (no NaN or Infinity, integers within 2**63, finite
    numbers), UTF-8, nested at most ``max_depth`` deep.

    ``line`` is the line ``data`` starts on (JSON lines: its line; a whole file: 0, and the
    parser's line is used); ``hint`` is appended to syntax errors (``; is this a HAR file?``).
    """
    if isinstance(data, bytes | bytearray):
        problem = encoding_problem(bytes(data[:4]))
        if problem is not None:
            raise error(source, line or 1, problem)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            where = line or data.count(b"\n", 0, exc.start) + 1
            raise error(source, where, f"not UTF-8 (byte 0x{data[exc.start]:02x}){hint}") from None
    else:
        text = data
    try:
        value = _DECODER.decode(text.removeprefix("\ufeff"))
    except _BadNumber as exc:
        raise error(source, line, str(exc)) from None
    except json.JSONDecodeError as exc:
        where = line or exc.lineno
        raise error(source, where, f"not valid JSON ({exc.msg}){hint}") from None
    except RecursionError:
        raise error(source, line, f"nested more than {max_depth} levels deep{hint}") from None
    except MemoryError:
        raise error(source, line, "too large to parse in the memory available") from None
    # A value nested d deep has at least d opening brackets: most documents (every capture
    # line) are cleared by a count in C, without walking the parsed value.
    if text.count("[") + text.count("{") > max_depth and _too_deep(value, max_depth):
        raise error(source, line, f"nested more than {max_depth} levels deep{hint}")
    return value


_TYPES: dict[type, str] = {
    dict: "an object",
    list: "a list",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
}


def json_field(
    obj: Any,
    *keys: str | int,
    kind: type | tuple[type, ...],
    where: str = "",
    default: Any = ...,
    error: Callable[[str], Exception] = ValueError,
) -> Any:
    """``obj[keys[0]][keys[1]]...`` checked to be of ``kind``; a missing key gives ``default``
    (when given), anything else raises ``error("<where>.a.b: must be an object, got a list")``.

    Booleans are not integers and integers are numbers (``kind=float`` accepts ``3``).
    """
    value = obj
    path = where
    for key in keys:
        path = f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else key)
        if isinstance(key, int):
            ok = isinstance(value, list) and -len(value) <= key < len(value)
        else:
            ok = isinstance(value, dict) and key in value
        if not ok:
            parent_ok = isinstance(value, list if isinstance(key, int) else dict)
            if parent_ok and default is not ...:
                return default
            if not parent_ok:
                raise error(f"{path}: {_kind_of(value)} where an object was expected")
            raise error(f"{path}: missing")
        value = value[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, bool) and bool not in kinds:
        ok = False
    else:
        ok = isinstance(value, kinds) or (value is None and type(None) in kinds)
    if not ok:
        wanted = " or ".join(
            _TYPES.get(k, "null" if k is type(None) else k.__name__) for k in kinds
        )
        raise error(f"{path}: must be {wanted}, got {_kind_of(value)}")
    return value


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    return _TYPES.get(type(value), type(value).__name__)
