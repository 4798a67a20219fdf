"""The programs in dev/ keep building: every CUDA probe and C program compiles (dev/Makefile's check-NAME: nvcc -c
or cc -c, no GPU needed), dev/README.md gives the commands the Makefile runs, no probe or program includes a
kernel's .cu, and the host scripts parse. The compile checks skip with the reason where nvcc, a C compiler or make
is not found."""

import os
import py_compile
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEV = REPO / "dev"
PROBES = sorted(p.stem for p in DEV.glob("*.cu"))
PROGRAMS = sorted(p.stem for p in DEV.glob("*.c"))  # plain C, built with $(CC)
SCRIPTS = sorted(p.name for p in DEV.glob("*.py"))
# Knob settings compiled besides the defaults: together they reach every #if branch of the probe.
KNOBS = {
    "weight_decode_probe": [
        "-DDECODER_WGS=1 -DDECODE=2 -DSTORE=0",
        "-DDECODE=3 -DMMA=0 -DTOKEN_DECODE=0",
        "-DDECODE=0 -DSS -DRING=3",
    ],
}
COMPILES = [(probe, "") for probe in PROBES] + [(probe, flags) for probe in KNOBS for flags in KNOBS[probe]]


def find_nvcc():
    """nvcc as setup.py finds it: CUDA_HOME (or CUDA_PATH)/bin/nvcc, else the one on PATH."""
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    nvcc = str(Path(home) / "bin" / "nvcc") if home else shutil.which("nvcc")
    return nvcc if nvcc and Path(nvcc).exists() else None


def make(*args):
    return subprocess.run(["make", "--no-print-directory", "-C", str(DEV), *args], capture_output=True, text=True)


def need_make():
    if shutil.which("make") is None:
        pytest.skip("make not found")


def test_knob_probes_exist():
    assert set(KNOBS) <= set(PROBES)


@pytest.mark.parametrize("probe, flags", COMPILES,
                         ids=[probe + (" " + flags if flags else "") for probe, flags in COMPILES])
def test_probe_compiles(probe, flags, tmp_path):
    nvcc = find_nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found (set CUDA_HOME or put nvcc on PATH)")
    need_make()
    result = make(f"check-{probe}", f"NVCC={nvcc}", f"BIN={tmp_path}", f"FLAGS={flags}")
    assert result.returncode == 0, f"dev/{probe}.cu {flags} does not compile:\n{result.stdout}{result.stderr}"
    assert (tmp_path / f"{probe}.o").is_file()


@pytest.mark.parametrize("program", PROGRAMS)
def test_program_compiles(program, tmp_path):
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc/gcc) on PATH")
    need_make()
    result = make(f"check-{program}", f"CC={cc}", f"BIN={tmp_path}")
    assert result.returncode == 0, f"dev/{program}.c does not compile:\n{result.stdout}{result.stderr}"
    assert (tmp_path / f"{program}.o").is_file()


@pytest.mark.parametrize("probe", PROBES + PROGRAMS)
def test_readme_gives_the_build_commands(probe):
    need_make()
    # Every variable the commands use is set, so that the environment cannot change them.
    result = make("-n", probe, "NVCC=nvcc", "CC=cc", "BIN=/tmp/nvfp4_dev", "FLAGS=")
    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if not line.startswith("mkdir ")]
    assert commands, f"make -n {probe} printed no command"
    readme = (DEV / "README.md").read_text()
    for command in commands:
        assert f"    {command}\n" in readme, f"dev/README.md lacks the build command of {probe}: {command}"


@pytest.mark.parametrize("source", [f"{probe}.cu" for probe in PROBES] + [f"{program}.c" for program in PROGRAMS])
def test_probe_includes_no_kernel_source(source):
    text = (DEV / source).read_text()
    assert not re.search(r'#include\s+[<"][^>"]*\.cu[>"]', text), f"dev/{source} includes a .cu file"


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_parses(script, tmp_path):
    py_compile.compile(str(DEV / script), cfile=str(tmp_path / "script.pyc"), doraise=True)
