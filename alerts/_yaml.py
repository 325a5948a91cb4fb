"""Deterministic, readable YAML for generated files (multi-line PromQL as ``|`` blocks)."""

from __future__ import annotations

from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    """Indents lists under their key, as Prometheus' own examples do."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)
# Subclasses such as config.Duration are plain strings in YAML.
_Dumper.add_multi_representer(str, _str)


def dump(doc: Any, header: str = "") -> str:
    """YAML text of ``doc`` (key order kept), after ``header`` comment lines."""
    body = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=10_000, allow_unicode=True)
    return header + body
