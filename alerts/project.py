"""Your project's ``hlthz.yaml``: where it is, and where what is generated from it goes.

Every command finds the project file the same way (:func:`find_project`): ``--config FILE``,
else the ``HLTHZ_CONFIG`` environment variable, else ``./hlthz.yaml``. Generated files go
beside it: ``alerts/`` (``generated/`` and ``runbooks/``) and ``dashboards/``, never inside the
installed package. ``hlthz init`` (:func:`init_project`) writes a commented ``hlthz.yaml``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import jinja2

from hlthz.alerts.config import DEFAULT_CONFIG_PATH, SIGNALS, load_config
from hlthz.errors import ConfigError, UsageError
from hlthz.files import atomic_write

#: The project file's name, looked for in the current directory.
CONFIG_NAME = "hlthz.yaml"
#: The environment variable naming a project file.
CONFIG_ENV = "HLTHZ_CONFIG"


@dataclass(frozen=True)
class Project:
    """A project file and the folders generated beside it."""

    config: Path

    @property
    def root(self) -> Path:
        """The folder holding the project file."""
        return self.config.parent

    @property
    def alerts_dir(self) -> Path:
        """Where ``hlthz alerts generate`` writes: ``generated/`` and ``runbooks/`` under it."""
        return self.root / "alerts"

    @property
    def dashboards_dir(self) -> Path:
        """Where ``hlthz dashboards generate`` writes: ``<uid>.json`` and ``provisioning/``."""
        return self.root / "dashboards"


def find_project(
    config: str | Path | None = None, *, cwd: str | Path | None = None, required: bool = True
) -> Project | None:
    """The project file: ``config``, else ``$HLTHZ_CONFIG``, else ``hlthz.yaml`` in ``cwd``.

    Raises :class:`ConfigError` when ``config`` (or the variable) names no file, or, with
    ``required``, when there is no project file at all; otherwise returns None then.
    """
    here = Path(cwd) if cwd is not None else Path.cwd()
    for given, what in ((config, "--config"), (os.environ.get(CONFIG_ENV) or None, CONFIG_ENV)):
        if given is None:
            continue
        path = here / Path(given)
        if not path.is_file():
            raise ConfigError(f"{what} {given}: no such file; run `hlthz init` to write one")
        return Project(path.resolve())
    found = here / CONFIG_NAME
    if found.is_file():
        return Project(found.resolve())
    if required:
        raise ConfigError(
            f"no {CONFIG_NAME} in {here}; run `hlthz init` there to write one, or pass "
            f"--config FILE (or set {CONFIG_ENV})"
        )
    return None


def package_dirs() -> tuple[Path, ...]:
    """The folders of the installed hlthz package (a checkout's source folders when editable)."""
    import hlthz

    alerts = Path(__file__).resolve().parent
    return (Path(hlthz.__file__).resolve().parent, alerts, alerts.parent / "dashboards")


def inside_package(path: str | Path) -> bool:
    """Whether ``path`` lies inside the installed package, where nothing may be generated."""
    resolved = Path(path).resolve()
    return any(resolved.is_relative_to(folder) for folder in package_dirs())


def output_dir(project: Project, out: str | Path | None, kind: str) -> Path:
    """Where a command writes: ``out`` when given, else ``kind`` (``alerts``/``dashboards``)
    beside the project file, refused when that is inside the installed package."""
    if out is not None:
        return Path(out)
    target = project.alerts_dir if kind == "alerts" else project.dashboards_dir
    if inside_package(target):
        raise UsageError(
            f"{project.config} is inside the installed hlthz package, and nothing is generated "
            "there; run `hlthz init` in your project, or pass --out DIR"
        )
    return target


def alerts_root(project: Project, out: str | Path | None, *, writing: bool) -> Path:
    """The alerts output root of ``project``: :func:`output_dir`, except that the packaged
    thresholds file's own folder may be read (checked), never written."""
    if out is None and not writing and project.config == DEFAULT_CONFIG_PATH.resolve():
        return DEFAULT_CONFIG_PATH.resolve().parent
    return output_dir(project, out, "alerts")


def init_project(
    directory: str | Path = ".",
    *,
    signals: tuple[str, ...] | None = None,
    detected_from: str | None = None,
) -> Path:
    """Write a commented ``hlthz.yaml`` in ``directory`` (created if needed); return its path.

    ``signals`` are the metric families the app emits (None: all of them, to trim by hand);
    ``detected_from`` is the metrics URL they were read from, noted in the file. Refuses to
    overwrite an existing file (:class:`UsageError`).
    """
    folder = Path(directory)
    path = folder / CONFIG_NAME
    if path.exists():
        raise UsageError(f"{path} exists; edit it, or move it away and run `hlthz init` again")
    defaults = load_config(None)
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("hlthz.alerts", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # YAML, not HTML
    )
    text = env.get_template("hlthz.yaml.j2").render(
        cfg=defaults,
        signals=list(SIGNALS if signals is None else signals),
        detected_from=detected_from,
        all_signals=SIGNALS,
        num=lambda value: f"{value:g}",
        flow=lambda values: "[" + ", ".join(f"{v:g}" for v in values) + "]",
    )
    load_config_text_check(text, path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # exclusive create: a file that appeared meanwhile is not overwritten either
        with path.open("x", encoding="utf-8") as fh:
            fh.write(text)
    except FileExistsError:
        raise UsageError(f"{path} exists; edit it, or move it away") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot write ({exc.strerror})") from None
    return path


def load_config_text_check(text: str, path: Path) -> None:
    """The written file must load: a broken template is a bug, caught before writing."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / path.name
        atomic_write(probe, text)
        load_config(probe)


__all__ = [
    "CONFIG_ENV",
    "CONFIG_NAME",
    "Project",
    "alerts_root",
    "find_project",
    "init_project",
    "inside_package",
    "output_dir",
    "package_dirs",
]
