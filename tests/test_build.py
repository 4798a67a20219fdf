"""The build is dependency-correct (marker `build`; about a minute, most of it torch_bridge.cpp's first compile).

A temporary copy of the sources is built in place with `setup.py build_ext --inplace` (ninja underneath).
Then, each time checked by the .so's inode and mtime, the objects' mtimes and ninja's own output:
  - a rebuild with nothing changed runs no command ("ninja: no work to do.") and leaves the module alone;
  - a changed C header recompiles exactly the objects whose sources include it (directly or through other
    headers) and relinks the module; a second rebuild then does nothing;
  - with nvcc: an edited kernel header recompiles exactly the kernel objects that include it and relinks; a
    changed NVFP4_GENCODE (a changed command line) recompiles only the portable kernel and relinks.
With nvcc the copy's portable kernel is built for sm_80 only (NVFP4_GENCODE): still a real CUDA build, and
about 10 s less per kernel rebuild on a 2-core machine. Without nvcc the copy is built with NVFP4_CUDA=0 and the
CUDA parts are skipped with that reason.
Deselect with `-m "not build"`.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.build

ROOT = Path(__file__).resolve().parent.parent
COPIED = ["setup.py", "pyproject.toml", "README.md", "csrc", "kernels", "python"]
NVCC = (str(Path(os.environ["CUDA_HOME"]) / "bin" / "nvcc") if os.environ.get("CUDA_HOME") else shutil.which("nvcc"))
HAVE_NVCC = bool(NVCC) and Path(NVCC).exists()
NO_NVCC = "no nvcc (CUDA_HOME/bin or PATH): the copy was built with NVFP4_CUDA=0, the kernel part is not exercised"
SM80 = "-gencode=arch=compute_80,code=sm_80"
STATUS = re.compile(r"^\[\d+/\d+\] (.*)$", re.M)
QUOTED_INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)


class Tree:
    """A built copy of the sources: build it, and see what a build did."""

    def __init__(self, root):
        self.root = root
        self.env = dict(os.environ, NVFP4_CUDA="1" if HAVE_NVCC else "0")
        for variable in ("NVFP4_GENCODE", "NVFP4_HOPPER_GENCODE", "NVFP4_NVCC_FLAGS"):
            self.env.pop(variable, None)
        if HAVE_NVCC:
            self.env["NVFP4_GENCODE"] = SM80

    def build(self, **env):
        result = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=self.root,
                                env=dict(self.env, **env), capture_output=True, text=True)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        return output

    def module(self):
        found = list((self.root / "python" / "nvfp4_group_gemm").glob("_C*.so"))
        assert len(found) == 1, found
        return found[0]

    def module_id(self):
        st = self.module().stat()
        return st.st_ino, st.st_mtime_ns

    def objects(self):
        """{"csrc/planner.o": mtime_ns, ...} for every object in the build directory."""
        temps = list((self.root / "build").glob("temp.*"))
        assert len(temps) == 1, temps
        return {str(p.relative_to(temps[0])): p.stat().st_mtime_ns for p in temps[0].rglob("*.o")}

    def sources(self):
        """The source of each object: csrc/planner.o -> csrc/planner.c."""
        out = {}
        for obj in self.objects():
            stem = self.root / Path(obj).with_suffix("")
            found = [p for p in stem.parent.glob(stem.name + ".*") if p.suffix in (".c", ".cpp", ".cu")]
            assert len(found) == 1, (obj, found)
            out[obj] = found[0]
        return out

    def includes(self, path, seen=None):
        """Every project header `path` includes, directly or through other headers (quoted includes, searched
        in the includer's directory, then csrc/ and kernels/ as -Icsrc -Ikernels)."""
        seen = set() if seen is None else seen
        for name in QUOTED_INCLUDE.findall(path.read_text()):
            for folder in (path.parent, self.root / "csrc", self.root / "kernels"):
                header = folder / name
                if header.exists():
                    if header not in seen:
                        seen.add(header)
                        self.includes(header, seen)
                    break
        return seen

    def dependents(self, header):
        """The objects whose sources include `header`, per the include scan (independent of the compilers'
        depfiles that ninja uses)."""
        return {obj for obj, src in self.sources().items() if self.root / header in self.includes(src)}


def ran(output):
    """The outputs (-o) of the commands ninja ran, as printed in its [n/m] status lines."""
    outs = []
    for line in STATUS.findall(output):
        args = shlex.split(line)
        assert "-o" in args, line
        outs.append(args[args.index("-o") + 1])
    return outs


def compiled(output):
    return {"/".join(Path(o).parts[-2:]) for o in ran(output) if o.endswith(".o")}


def linked(output):
    return [o for o in ran(output) if o.endswith(".so")]


def changed(before, after):
    return {obj for obj in after if before.get(obj) != after[obj]}


def assert_no_work(tree):
    module, objects = tree.module_id(), tree.objects()
    output = tree.build()
    assert "ninja: no work to do." in output, output
    assert ran(output) == [], output
    assert tree.module_id() == module, "the module was rewritten by a build with nothing changed"
    assert tree.objects() == objects


def later_than_outputs(tree):
    """A timestamp after every object's and the module's, so that ninja sees the touched file as newer; not
    in the future, so that it stops seeing it as newer once rebuilt."""
    newest = max(list(tree.objects().values()) + [tree.module_id()[1]])
    while time.time_ns() <= newest + 10_000_000:
        time.sleep(0.02)
    return time.time_ns()


def assert_rebuilt_exactly(tree, output, expected, before_objects, before_module):
    assert compiled(output) == expected, output
    assert changed(before_objects, tree.objects()) == expected
    assert len(linked(output)) == 1, output
    ino, mtime = tree.module_id()
    assert mtime > before_module[1] and (ino, mtime) != before_module, "the module was not relinked"


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("build_copy")
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("*.so", "__pycache__", "*.pyc"))
        elif src.exists():
            shutil.copy2(src, root / name)
    tree = Tree(root)
    start = time.monotonic()
    output = tree.build()
    print(f"first build of the copy: {time.monotonic() - start:.1f} s, CUDA {'on' if HAVE_NVCC else 'off'}")
    assert tree.module().exists(), output
    assert len(linked(output)) == 1, output
    return tree


def test_first_build_links_an_importable_module(tree):
    expected = {"csrc/module.o", "csrc/planner.o", "csrc/moe_args.o", "csrc/device.o", "csrc/torch_bridge.o"}
    if HAVE_NVCC:
        expected |= {"kernels/portable_gemm.o", "kernels/moe_table.o", "kernels/hopper_streamk.o"}
    assert set(tree.objects()) == expected
    probe = subprocess.run([sys.executable, "-c", "from nvfp4_group_gemm import _C; print(_C.WITH_CUDA)"],
                           cwd=tree.root, env=dict(tree.env, PYTHONPATH=str(tree.root / "python")),
                           capture_output=True, text=True)
    assert probe.returncode == 0, probe.stdout + probe.stderr
    assert probe.stdout.split()[-1] == str(HAVE_NVCC)
    readelf = shutil.which("readelf")
    if readelf:
        dynamic = subprocess.run([readelf, "-d", str(tree.module())], capture_output=True, text=True).stdout
        needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[lib([^\].]+)\.so", dynamic))
        assert {"c10", "torch_cpu", "torch_python"} <= needed, needed
        assert not {"c10_cuda", "torch_cuda", "cudart"} & needed, needed


def test_rebuild_without_change_does_nothing(tree):
    start = time.monotonic()
    assert_no_work(tree)
    print(f"no-change rebuild: {time.monotonic() - start:.1f} s")


def test_c_header_change_rebuilds_its_dependents_and_relinks(tree):
    header = "csrc/planner.h"
    expected = tree.dependents(header)
    # Meaningful only if the header reaches some objects and not others (today: module, planner, device;
    # not torch_bridge, not the kernels).
    assert expected and expected != set(tree.objects()), expected
    assert "csrc/torch_bridge.o" not in expected
    objects, module = tree.objects(), tree.module_id()
    stamp = later_than_outputs(tree)
    os.utime(tree.root / header, ns=(stamp, stamp))
    output = tree.build()
    assert_rebuilt_exactly(tree, output, expected, objects, module)
    assert_no_work(tree)


@pytest.mark.skipif(not HAVE_NVCC, reason=NO_NVCC)
def test_kernel_header_edit_rebuilds_the_kernels_and_relinks(tree):
    header = "kernels/nvfp4.cuh"
    expected = tree.dependents(header)
    assert expected and all(obj.startswith("kernels/") for obj in expected), expected
    objects, module = tree.objects(), tree.module_id()
    later_than_outputs(tree)
    with open(tree.root / header, "a") as f:
        f.write("\n// edited by tests/test_build.py\n")
    output = tree.build()
    assert_rebuilt_exactly(tree, output, expected, objects, module)
    assert_no_work(tree)


@pytest.mark.skipif(not HAVE_NVCC, reason=NO_NVCC)
def test_changed_gencode_rebuilds_only_that_kernel(tree):
    # Runs last: it leaves the copy built with NVFP4_GENCODE set (the portable kernel and the MoE table kernel).
    objects, module = tree.objects(), tree.module_id()
    ptx = "-gencode=arch=compute_80,code=compute_80"
    output = tree.build(NVFP4_GENCODE=ptx)
    assert_rebuilt_exactly(tree, output, {"kernels/portable_gemm.o", "kernels/moe_table.o"}, objects, module)
    assert "ninja: no work to do." in tree.build(NVFP4_GENCODE=ptx)
