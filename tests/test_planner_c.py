"""Builds and runs the planner's C unit tests (tests/c/test_planner.c) against csrc/planner.c."""

import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CC = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


@pytest.mark.skipif(CC is None, reason="no C compiler (cc/gcc) on PATH")
def test_planner_c(tmp_path):
    exe = tmp_path / "test_planner"
    subprocess.run(
        [CC, "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", os.path.join(ROOT, "csrc"),
         os.path.join(ROOT, "tests", "c", "test_planner.c"), os.path.join(ROOT, "csrc", "planner.c"), "-o", str(exe)],
        check=True,
    )
    result = subprocess.run([str(exe)], capture_output=True, text=True)
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.endswith("0 failed") and not last.startswith("0 passed"), last
