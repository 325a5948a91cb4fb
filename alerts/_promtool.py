"""What promtool will see: its series notation, and the annotation templates it will expand.

``counter``/``gauge`` write input series in promtool's expanding notation (``0+15x40``);
``render`` expands the subset of Prometheus' Go templates the generated annotations use, with
the twins of its ``humanize*`` functions, so a test can state the exact expected text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from hlthz.alerts.humanize import humanize, humanize_duration, humanize_percentage

Labels = dict[str, str]


# --------------------------------------------------------------------------------------------
# Series notation


def fmt(value: float) -> str:
    """Shortest exact spelling of ``value`` (``56.4``, ``1``)."""
    return repr(float(value)).removesuffix(".0")


def counter(segments: Sequence[tuple[float, int]]) -> str:
    """promtool values of a counter growing by ``increment`` per step for ``steps`` steps, per
    segment. The first sample is 0 at step 0.

    promtool expands ``a+bxn`` by repeated addition, so the next segment must start from the
    same float sum (written with ``repr``); a start one ulp lower would read as a counter reset.
    """
    parts: list[str] = []
    value = 0.0
    first = True
    for exact, steps in segments:
        if steps <= 0:
            continue
        # Ten significant digits read better (57.6, not 57.599999999999994) and change no
        # humanized value; the sums below use the rounded increment, as promtool will.
        increment = float(f"{exact:.10g}")
        if first:
            parts.append(f"0+{fmt(increment)}x{steps}")
            count = steps
            first = False
        else:
            value += increment
            parts.append(f"{value!r}+{fmt(increment)}x{steps - 1}")
            count = steps - 1
        for _ in range(count):
            value += increment
    return " ".join(parts)


def gauge(segments: Sequence[tuple[float | str, int]]) -> str:
    """promtool values of a gauge holding each value for ``steps`` samples (``stale`` allowed)."""
    parts = []
    for value, steps in segments:
        if value == "stale":
            parts.append("stale")
        elif steps > 0:
            parts.append(f"{fmt(float(value))}+0x{steps - 1}")
    return " ".join(parts)


def series_name(name: str, labels: Labels) -> str:
    """``name{a="1",b="2"}`` with the labels sorted."""
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


# --------------------------------------------------------------------------------------------
# Annotation templates (the subset the generated rules use)

_TOKEN = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_FUNCS: dict[str, Callable[[float], str]] = {
    "humanize": humanize,
    "humanizeDuration": humanize_duration,
    "humanizePercentage": humanize_percentage,
}


def _go_float(value: float) -> str:
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def render(template: str, labels: Labels, value: float) -> str:
    """Expand ``{{ $labels.x }}``, ``{{ $value | fn }}`` and ``{{ if/else if/else/end }}``."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    for match in _TOKEN.finditer(template):
        tokens.append(("text", template[pos : match.start()]))
        tokens.append(("action", match.group(1)))
        pos = match.end()
    tokens.append(("text", template[pos:]))

    def expr(action: str) -> str:
        if action.startswith("$labels."):
            return labels.get(action[len("$labels.") :], "")
        if action == "$value":
            return _go_float(value)
        head, _, func = (part.strip() for part in action.partition("|"))
        if head == "$value" and func in _FUNCS:
            return _FUNCS[func](value)
        raise ValueError(f"unsupported template action {action!r}")

    out: list[str] = []
    # stack of (parent emitting, a branch already taken, this branch emitting)
    stack: list[tuple[bool, bool, bool]] = []
    emitting = True
    for kind, text in tokens:
        if kind == "text":
            if emitting:
                out.append(text)
        elif text.startswith("if "):
            cond = bool(expr(text[3:].strip()))
            stack.append((emitting, cond, emitting and cond))
            emitting = emitting and cond
        elif text.startswith("else if "):
            parent, taken, _ = stack.pop()
            cond = not taken and bool(expr(text[8:].strip()))
            stack.append((parent, taken or cond, parent and cond))
            emitting = parent and cond
        elif text == "else":
            parent, taken, _ = stack.pop()
            stack.append((parent, True, parent and not taken))
            emitting = parent and not taken
        elif text == "end":
            emitting = stack.pop()[0]
        elif emitting:
            out.append(expr(text))
    return "".join(out)
