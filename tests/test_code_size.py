"""Size limits of the library code: no function over 60 lines, no file over 500 lines."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("utils", "metrics", "src", "features", "models", "pipelines", "scripts", "experts")
ENTRIES = ("train_multi_tft.py", "train_resume.py", "warm_start_train.py")
MAX_FILE, MAX_FUNCTION = 500, 60


def _files() -> list[Path]:
    return [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")] + [ROOT / e for e in ENTRIES]


def test_files_and_functions_stay_small():
    files = _files()
    assert len(files) > 50  # the walk found the code
    long_files = [f"{p.relative_to(ROOT)}: {n} lines" for p in files
                  if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_FILE]
    long_functions = []
    for p in files:
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION:
                    long_functions.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.name}: {n} lines")
    assert not long_files, long_files
    assert not long_functions, long_functions
