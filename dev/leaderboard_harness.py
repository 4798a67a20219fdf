"""Runs the generated one-file submission under the leaderboard's own harness, as the runner does.

    python3 dev/leaderboard_harness.py HARNESS_DIR [--work DIR] [--modes test,benchmark]

HARNESS_DIR holds the files of the gpu-mode reference-kernels repository that the problem's task.yml names:
problems/nvidia/nvfp4_group_gemm/{task.py, utils.py, reference.py, task.yml} and problems/nvidia/
eval_better_bench_grouped_gemm.py (the runner's eval.py). They are not part of this repository: fetch them
and point HARNESS_DIR at a folder with those five files.

In a fresh folder with nothing of this package importable, it writes submission.py with
`python -m nvfp4_group_gemm.make_submission`, the harness files (eval_better_bench_grouped_gemm.py as eval.py),
and the tests and benchmarks of task.yml in the harness's file format. The one change to the harness: the
reference's ref_kernel, which needs FP4 torch._scaled_mm (Blackwell only), is replaced by this project's float64
reference (python/nvfp4_group_gemm/reference.py, inlined). Where the CuTe DSL package (`cutlass`) is not
installed, a stub package defines the two exception types eval.py imports from it, and nothing else.

Then, like the runner: `python3 submission.py` once (the build; the runner allows 120 s), then eval.py in each
mode with POPCORN_FD, printing the harness's own report. Exits non-zero when the build, a check or a mode fails.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARNESS_FILES = {"task.py": "task.py", "utils.py": "utils.py", "reference.py": "reference.py",
                 "eval_better_bench_grouped_gemm.py": "eval.py"}
BUILD_LIMIT_S = 120

CUTLASS_STUB = {
    "cutlass/__init__.py": "",
    "cutlass/cute/__init__.py": "",
    "cutlass/cute/nvgpu/__init__.py": "",
    "cutlass/cute/nvgpu/common.py": "class OpError(Exception):\n    pass\n",
    "cutlass/_mlir/__init__.py": "",
    "cutlass/_mlir/ir.py": "class MLIRError(Exception):\n    pass\n",
}


def project_reference():
    """This project's reference module as text that stands alone (SF_VEC inlined, no package import)."""
    text = (ROOT / "python" / "nvfp4_group_gemm" / "reference.py").read_text()
    return text.replace("from .data import SF_VEC\n", "SF_VEC = 16\n")


def patched_reference(harness_reference):
    """The harness's reference.py with its ref_kernel replaced by the project's (the one change)."""
    match = re.search(r"^def ref_kernel\(.*?(?=^def |^class |^#|^check_implementation)", harness_reference,
                      re.MULTILINE | re.DOTALL)
    if not match:
        raise ValueError("the harness's reference.py has no top-level ref_kernel to replace")
    ours = project_reference()
    replacement = ("# ref_kernel: nvfp4_group_gemm's float64 reference (the harness's needs FP4 torch._scaled_mm,\n"
                   "# which exists only on Blackwell).\n"
                   "def _project_reference():\n"
                   "    namespace = {}\n"
                   f"    exec(compile({ours!r}, 'nvfp4_group_gemm/reference.py', 'exec'), namespace)\n"
                   "    return namespace['ref_kernel']\n\n\n"
                   "ref_kernel = _project_reference()\n\n\n")
    return harness_reference[:match.start()] + replacement + harness_reference[match.end():]


def task_cases(task_yml, section):
    """The task.yml entries of `section` as lines of the harness's test-file format."""
    lines, inside = [], False
    for line in task_yml.splitlines():
        if re.match(r"^\w", line):
            inside = line.strip() == f"{section}:"
            continue
        entry = re.match(r"^\s*-\s*\{(.*)\}\s*$", line)
        if inside and entry:
            fields = re.findall(r'"(\w+)":\s*(\[[^\]]*\]|-?\d+)', entry.group(1))
            lines.append("; ".join(f"{key}: {value}" for key, value in fields))
    if not lines:
        raise ValueError(f"task.yml has no entries under {section}:")
    return lines


def run_mode(work, mode, cases_file, env):
    read_fd, write_fd = os.pipe()
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "eval.py", mode, cases_file], cwd=work,
                               env={**env, "POPCORN_FD": str(write_fd)}, pass_fds=(write_fd,))
    os.close(write_fd)
    with os.fdopen(read_fd) as report:
        output = report.read()
    code = process.wait()
    return code, output, time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("harness_dir", type=Path)
    parser.add_argument("--work", type=Path, help="folder to run in (default: a new temporary one)")
    parser.add_argument("--modes", default="test,benchmark")
    args = parser.parse_args()

    missing = [name for name in [*HARNESS_FILES, "task.yml"] if not (args.harness_dir / name).is_file()]
    if missing:
        sys.exit(f"{args.harness_dir} lacks the harness files {missing}")
    work = args.work or Path(tempfile.mkdtemp(prefix="nvfp4_harness_"))
    work.mkdir(parents=True, exist_ok=True)
    for source, target in HARNESS_FILES.items():
        shutil.copy(args.harness_dir / source, work / target)
    (work / "reference.py").write_text(patched_reference((args.harness_dir / "reference.py").read_text()))
    task_yml = (args.harness_dir / "task.yml").read_text()
    (work / "tests.txt").write_text("\n".join(task_cases(task_yml, "tests")) + "\n")
    (work / "benchmarks.txt").write_text("\n".join(task_cases(task_yml, "benchmarks")) + "\n")
    submission = subprocess.run([sys.executable, "-m", "nvfp4_group_gemm.make_submission"], capture_output=True,
                                text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT / "python")})
    (work / "submission.py").write_text(submission.stdout)

    # Nothing of the package importable: no PYTHONPATH, and the run folder holds none of it.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("TORCH_EXTENSIONS_DIR", str(work / "torch_extensions"))
    probe = subprocess.run([sys.executable, "-c", "import nvfp4_group_gemm"], cwd=work, env=env, capture_output=True)
    if probe.returncode == 0:
        sys.exit("nvfp4_group_gemm is importable in the run folder; uninstall it to test the one-file submission")
    if subprocess.run([sys.executable, "-c", "import cutlass.cute.nvgpu.common, cutlass._mlir.ir"], cwd=work, env=env,
                      capture_output=True).returncode != 0:
        for name, text in CUTLASS_STUB.items():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            (work / name).write_text(text)
        print("cutlass (CuTe DSL) is not installed: eval.py's two exception types come from a stub")

    failed = False
    for attempt in ("first", "second"):
        started = time.perf_counter()
        build = subprocess.run([sys.executable, "submission.py"], cwd=work, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        print(f"python3 submission.py ({attempt} run): {seconds:.1f} s, exit {build.returncode}: "
              f"{build.stdout.strip()}")
        if build.returncode != 0:
            print(build.stderr[-4000:])
            sys.exit(1)
        if attempt == "first" and seconds > BUILD_LIMIT_S:
            print(f"FAIL: the first build took {seconds:.1f} s, over the runner's {BUILD_LIMIT_S} s")
            failed = True
    for mode in args.modes.split(","):
        cases = "tests.txt" if mode == "test" else "benchmarks.txt"
        code, report, seconds = run_mode(work, mode, cases, env)
        print(f"== eval.py {mode} {cases}: exit {code}, {seconds:.1f} s")
        print(report.rstrip())
        failed |= code != 0 or "check: pass" not in report
    print(f"run folder: {work}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
