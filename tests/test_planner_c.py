"""Builds and runs the C unit tests of the pure-C units: the planner (tests/c/test_planner.c against
csrc/planner.c) and grouped_mm's argument rules (tests/c/test_moe_args.c against csrc/moe_args.c)."""

import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CC = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


@pytest.mark.skipif(CC is None, reason="no C compiler (cc/gcc) on PATH")
@pytest.mark.parametrize("test, unit", [("test_planner", "planner"), ("test_moe_args", "moe_args")])
def test_planner_c(tmp_path, test, unit):
    exe = tmp_path / test
    subprocess.run(
        [CC, "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", os.path.join(ROOT, "csrc"), "-I",
         os.path.join(ROOT, "kernels"), os.path.join(ROOT, "tests", "c", f"{test}.c"),
         os.path.join(ROOT, "csrc", f"{unit}.c"), "-o", str(exe)],
        check=True,
    )
    result = subprocess.run([str(exe)], capture_output=True, text=True)
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.endswith("0 failed") and not last.startswith("0 passed"), last
