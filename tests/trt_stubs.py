"""Make ``tensorrt-stubs`` usable by mypy.

The package installs bare ``tensorrt/__init__.pyi`` folders without a ``py.typed`` marker
(PEP 561 makes mypy ignore those in site-packages), and a few plugin-API signatures in it are
not valid Python (a parameter named ``in``, defaults out of order). We copy the stubs to a
folder for ``MYPYPATH`` and loosen exactly the signatures that do not parse to
``(*args, **kwargs)``; everything else keeps its types.
"""

from __future__ import annotations

import ast
import re
import shutil
from importlib import metadata
from pathlib import Path

DEF_LINE = re.compile(r"^(\s*)def (\w+)\((.*)\)(\s*->\s*.+)?:(.*)$")


def _loosen(source: str) -> tuple[str, int]:
    lines, fixed = source.splitlines(), 0
    for _ in range(500):
        try:
            ast.parse("\n".join(lines))
            return "\n".join(lines) + "\n", fixed
        except SyntaxError as exc:
            index = (exc.lineno or 1) - 1
            match = DEF_LINE.match(lines[index])
            if not match:
                raise
            indent, name, _, returns, rest = match.groups()
            lines[index] = f"{indent}def {name}(*args, **kwargs){returns or ''}:{rest}"
            fixed += 1
    raise RuntimeError("tensorrt stubs: too many unparsable signatures")


def prepare_trt_stubs(target: Path) -> tuple[Path, int]:
    """Copy the installed tensorrt stubs into ``target``; returns (folder, signatures loosened)."""
    files = metadata.files("tensorrt-stubs") or []
    roots = {Path(str(f.locate())).parents[len(Path(str(f)).parts) - 1] for f in files if str(f).endswith(".pyi")}
    if not roots:
        raise FileNotFoundError("tensorrt-stubs is not installed")
    site = roots.pop()
    fixed = 0
    for package in ("tensorrt", "tensorrt_bindings"):
        shutil.copytree(site / package, target / package, dirs_exist_ok=True)
        for stub in (target / package).glob("*.pyi"):
            text, count = _loosen(stub.read_text())
            stub.write_text(text)
            fixed += count
    return target, fixed
