"""Rewrite every golden case's ``out/`` from its ``in.yaml``: ``make golden``.

Run from the repository root as ``python -m tests.golden.regenerate [CASE ...]`` (no names:
every case). Files the generators no longer produce are deleted, so ``out/`` always holds
exactly what :func:`tests.golden.cases.render_case` returns. Review the change with
``git diff tests/golden`` before committing it: it is the generators' change, file by file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hlthz.errors import HlthzError
from tests.golden.cases import GOLDEN_DIR, IN_FILE, OUT_DIR, case_dirs, read_tree, render_case


def regenerate(case_dir: Path) -> tuple[list[str], list[str]]:
    """Rewrite ``case_dir/out``; return the paths (relative to ``out/``) written and deleted."""
    out = case_dir / OUT_DIR
    files = render_case(case_dir)
    on_disk = read_tree(out)
    written = [rel for rel, text in files.items() if on_disk.get(rel) != text]
    deleted = sorted(set(on_disk) - set(files))
    for rel in written:
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        # Bytes, not write_text: the golden files must be the same on every platform.
        path.write_bytes(files[rel].encode("utf-8"))
    for rel in deleted:
        (out / rel).unlink()
    # Deepest first, so a folder emptied by the deletions above goes too.
    for folder in sorted((p for p in out.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    return written, deleted


def main(argv: list[str] | None = None) -> int:
    """Regenerate the named cases (default: all) and print one line per case."""
    parser = argparse.ArgumentParser(prog="python -m tests.golden.regenerate", description=__doc__)
    parser.add_argument("cases", nargs="*", metavar="CASE", help="case directory names")
    args = parser.parse_args(argv)
    known = {path.name: path for path in case_dirs()}
    unknown = [name for name in args.cases if name not in known]
    if unknown:
        parser.error(
            f"no case {', '.join(unknown)} (a case is a folder of {GOLDEN_DIR} with an "
            f"{IN_FILE}); known: {', '.join(known)}"
        )
    for name in args.cases or list(known):
        try:
            written, deleted = regenerate(known[name])
        except HlthzError as exc:  # an invalid in.yaml: its one-line message names the key
            print(f"{name}: {exc}", file=sys.stderr)
            return exc.exit_code
        total = len(read_tree(known[name] / OUT_DIR))
        print(f"{name}: {total} files, {len(written)} written, {len(deleted)} deleted")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
