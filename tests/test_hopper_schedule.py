"""The Hopper kernel's schedule (kernels/hopper_schedule.h): its C unit tests (tests/c/test_hopper_schedule.c), built
with warnings as errors, once plain and once under AddressSanitizer and UndefinedBehaviorSanitizer; the header
compiled into CUDA device code; and the header's own rules (no includes beyond stdint/stddef and group_table.h, no
floating point before its host-only reports)."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEADER = ROOT / "kernels" / "hopper_schedule.h"
CC = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
WARNINGS = ["-std=c11", "-Wall", "-Wextra", "-Werror"]
SANITIZERS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]


def build(exe, flags):
    subprocess.run([CC, *WARNINGS, *flags, "-I", str(ROOT / "csrc"), "-I", str(ROOT / "kernels"),
                    str(ROOT / "tests" / "c" / "test_hopper_schedule.c"), "-o", str(exe)], check=True)


def sanitizers_work(tmp_path):
    """Whether this compiler links and runs a sanitized program (the runtimes are optional packages)."""
    source = tmp_path / "probe.c"
    source.write_text("int main(void) { return 0; }\n")
    exe = tmp_path / "probe"
    built = subprocess.run([CC, *SANITIZERS, str(source), "-o", str(exe)], capture_output=True)
    return built.returncode == 0 and subprocess.run([str(exe)], capture_output=True).returncode == 0


@pytest.mark.skipif(CC is None, reason="no C compiler (cc/gcc) on PATH")
@pytest.mark.parametrize("sanitized", [False, True], ids=["plain", "asan-ubsan"])
def test_hopper_schedule_c(sanitized, tmp_path):
    if sanitized and not sanitizers_work(tmp_path):
        pytest.skip(f"{CC} cannot build and run a program with {' '.join(SANITIZERS)}")
    exe = tmp_path / "test_hopper_schedule"
    build(exe, ["-O2", *(SANITIZERS if sanitized else [])])
    result = subprocess.run([str(exe)], capture_output=True, text=True)
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.endswith(" 0 failed") and not last.startswith("0 passed"), last


DEVICE_SOURCE = r"""
#include "hopper_schedule.h"

// Each CTA builds the schedule from the sizes alone, walks its pieces and lists each piece's partial holders.
__global__ void walk(const hopper_problem *problems, hopper_prefix *prefix, int32_t count, long long *out) {
    if (threadIdx.x != 0) return;
    hopper_schedule s;
    if (hopper_schedule_init(&s, problems, prefix, count, (int32_t)gridDim.x) != 0) return;
    hopper_walk w = hopper_cta_walk(&s, (int32_t)blockIdx.x);
    hopper_piece piece;
    long long sum = hopper_cta_is_empty(&s, (int32_t)blockIdx.x);
    while (hopper_walk_next(&s, &w, &piece)) {
        int32_t q_begin, q_end;
        hopper_unit_partial_ctas(&s, piece.unit, &q_begin, &q_end);
        sum += piece.kb_end - piece.kb_begin + q_end - q_begin + piece.width + hopper_unit_at(&s, piece.unit.index).tile +
               hopper_scratch_offset(&s, piece.unit.problem, piece.unit.slice, piece.unit.chunk) +
               hopper_problem_totals(&problems[piece.unit.problem]).cost;
    }
    out[blockIdx.x] = sum;
}
"""


def find_nvcc():
    """nvcc as setup.py finds it: CUDA_HOME (or CUDA_PATH)/bin/nvcc, else the one on PATH."""
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    nvcc = str(Path(home) / "bin" / "nvcc") if home else shutil.which("nvcc")
    return nvcc if nvcc and Path(nvcc).exists() else None


def test_hopper_schedule_compiles_for_the_device(tmp_path):
    nvcc = find_nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found (set CUDA_HOME or put nvcc on PATH)")
    source = tmp_path / "schedule_device.cu"
    source.write_text(DEVICE_SOURCE)
    result = subprocess.run(
        [nvcc, "-c", "-std=c++17", "-gencode=arch=compute_90a,code=sm_90a", "-Werror", "all-warnings",
         "-Xcompiler", "-Wall,-Wextra,-Werror", "-I", str(ROOT / "csrc"), "-I", str(ROOT / "kernels"), str(source),
         "-o", str(tmp_path / "schedule_device.o")],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_header_rules():
    text = HEADER.read_text()
    includes = re.findall(r"#include\s+([<\"][^>\"]+[>\"])", text)
    assert sorted(includes) == ['"group_table.h"', "<stddef.h>", "<stdint.h>"], includes
    # Boundaries are integer arithmetic: floating point only in the host-only reports at the end.
    code = re.sub(r"/\*.*?\*/", "", text.split("---- Host-only reports")[0], flags=re.S)
    assert not re.search(r"\b(float|double)\b", code)
    assert "malloc" not in code
