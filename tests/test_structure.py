"""Structure of the package: module sizes (issue 9's acceptance)."""

from __future__ import annotations

from pathlib import Path

import hpcsys

MAX_LINES = 600


def test_no_module_over_600_lines():
    root = Path(hpcsys.__file__).resolve().parent
    sizes = {str(p.relative_to(root)): len(p.read_text().splitlines())
             for p in root.rglob("*.py")}
    assert sizes, root
    big = {k: v for k, v in sizes.items() if v > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines (split them by concept): {big}"
