"""Build of nvfp4_group_gemm._C: C11 module and planner, one C++ file for torch tensors, CUDA kernels.

Environment:
  NVFP4_CUDA=0|1     0 builds without CUDA (validation only); 1 fails when no CUDA toolkit is found;
                     unset: CUDA when nvcc is found (CUDA_HOME/bin or PATH).
  NVFP4_GENCODE      nvcc target flags for the portable kernel, replacing the default
                     "-gencode=arch=compute_80,code=sm_80 ... -gencode=arch=compute_80,code=compute_80".
  NVFP4_HOPPER_GENCODE  the same for the Hopper kernel (default "-gencode=arch=compute_90a,code=sm_90a").
  NVFP4_NVCC_FLAGS   extra nvcc flags (e.g. "-Xptxas -v" or "-lineinfo").
  CUDA_HOME          toolkit root when nvcc is not on PATH.

Links only what a CPU build of torch also has (c10, torch_cpu, torch_python) plus the static CUDA
runtime: the current stream comes from torch._C at run time, not from c10_cuda.

Compiling and linking are done by ninja from a file this script writes on every build
(<build_temp>/build.ninja). Ninja takes each object's header dependencies from the compiler's own depfile
(gcc -MMD, nvcc -MD), rebuilds an object when its source, a header it includes or its command line changed,
relinks the module when an object, the static CUDA runtime, a torch library or the link command changed,
and runs independent compiles in parallel. A build with nothing changed runs no command.
"""

import os
import shlex
import shutil
import subprocess
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent

# Portable kernel: machine code for Ampere, Hopper and Blackwell, plus compute_80 PTX that any newer
# GPU can JIT. The Hopper kernel uses wgmma, which exists only as sm_90a (not forward compatible), and
# runs only on compute capability 9.0.
PORTABLE_GENCODE = [
    "-gencode=arch=compute_80,code=sm_80",
    "-gencode=arch=compute_90,code=sm_90",
    "-gencode=arch=compute_100,code=sm_100",
    "-gencode=arch=compute_80,code=compute_80",
]
HOPPER_GENCODE = ["-gencode=arch=compute_90a,code=sm_90a"]
C_SOURCES = ["csrc/module.c", "csrc/planner.c", "csrc/moe_args.c", "csrc/device.c"]
CXX_SOURCES = ["csrc/torch_bridge.cpp"]
# (source, default targets, environment variable that replaces them)
CUDA_SOURCES = [
    ("kernels/portable_gemm.cu", PORTABLE_GENCODE, "NVFP4_GENCODE"),
    ("kernels/moe_table.cu", PORTABLE_GENCODE, "NVFP4_GENCODE"),
    ("kernels/hopper_streamk.cu", HOPPER_GENCODE, "NVFP4_HOPPER_GENCODE"),
]


def find_cuda():
    """(nvcc, include_dir, static cudart) or None when no usable toolkit is found."""
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    nvcc = str(Path(home) / "bin" / "nvcc") if home else shutil.which("nvcc")
    if not nvcc or not Path(nvcc).exists():
        return None
    root = Path(home) if home else Path(os.path.realpath(nvcc)).parent.parent
    if not home:
        # nvcc on PATH may be a wrapper script; its dry run names the real toolkit root (TOP=...).
        dry = subprocess.run([nvcc, "--dryrun", "-c", "-x", "cu", "/dev/null"], capture_output=True, text=True)
        for line in dry.stderr.splitlines():
            if line.startswith("#$ TOP="):
                root = Path(os.path.normpath(line.split("=", 1)[1].strip()))
    includes = [root / "include", root / "targets" / "x86_64-linux" / "include"]
    libs = [root / "lib64", root / "lib", root / "targets" / "x86_64-linux" / "lib"]
    include = next((p for p in includes if (p / "cuda_runtime_api.h").exists()), None)
    cudart = next((p / "libcudart_static.a" for p in libs if (p / "libcudart_static.a").exists()), None)
    if include is None or cudart is None:
        return None
    return nvcc, str(include), str(cudart)


def want_cuda():
    setting = os.environ.get("NVFP4_CUDA", "")
    cuda = find_cuda() if setting != "0" else None
    if setting == "1" and cuda is None:
        raise RuntimeError("NVFP4_CUDA=1 but no CUDA toolkit (nvcc, cuda_runtime_api.h, libcudart_static.a) was found; "
                           "set CUDA_HOME")
    return cuda


def find_ninja():
    """The ninja executable: `ninja` on PATH, else the one of the `ninja` Python package."""
    found = shutil.which("ninja")
    if found:
        return found
    try:
        import ninja
    except ImportError:
        ninja = None
    if ninja is not None:
        candidate = Path(ninja.BIN_DIR) / "ninja"
        if candidate.exists():
            return str(candidate)
    raise RuntimeError("building nvfp4_group_gemm needs ninja, which was found neither on PATH nor as the `ninja` "
                       "Python package: pip install ninja")


def ninja_path(path):
    """A path as written in a ninja build line ($, space and colon escaped)."""
    return str(path).replace("$", "$$").replace(" ", "$ ").replace(":", "$:")


def ninja_command(args):
    """A command line as a ninja variable value: shell-quoted, $ escaped."""
    args = [str(a) for a in args]
    if any("\n" in a for a in args):
        raise ValueError(f"a build argument contains a newline: {args!r}")
    return shlex.join(args).replace("$", "$$")


def relative_to_root(path):
    """Absolute path of `path` (taken relative to the current directory), written relative to ROOT when
    it lies inside it, so the commands ninja prints stay short; ninja runs in ROOT."""
    path = Path(os.path.abspath(path))
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


class BuildExt(build_ext):
    """Writes build.ninja (C as C11, the bridge as C++20 with torch's headers, .cu with nvcc, one link with
    the C++ compiler) and runs ninja on it."""

    def copy_file(self, infile, outfile, *args, **kwargs):
        """The in-place copy of the module: skipped when the copy is already current (same size and time, which
        copying preserves), so a build with nothing to do rewrites nothing; otherwise written beside and
        renamed over, so a process that has the old module loaded keeps a valid mapping."""
        source, target = Path(infile), Path(outfile)
        if target.is_dir():
            target = target / source.name
        if target.exists():
            a, b = source.stat(), target.stat()
            if a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns:
                return str(target), False
        partial = target.with_name(target.name + ".partial")
        shutil.copy2(source, partial)
        os.replace(partial, target)
        print(f"copying {relative_to_root(source)} -> {relative_to_root(target.parent)}", flush=True)
        return str(target), True

    def build_extension(self, ext):
        ninja = find_ninja()
        import torch
        from torch.utils.cpp_extension import include_paths, library_paths

        cuda = want_cuda()
        abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
        build_dir = relative_to_root(self.build_temp)
        target = relative_to_root(self.get_ext_fullpath(ext.name))

        # The compilers and base flags setuptools would use (CC, CXX, CFLAGS, LDSHARED, ... honoured), plus
        # Python's include directory and any --define/--undef/--include-dirs of build_ext.
        compiler = self.compiler
        cc = list(compiler.compiler_so)
        cxx = list(getattr(compiler, "compiler_so_cxx", None) or compiler.compiler_so)
        linker_so_cxx = getattr(compiler, "linker_so_cxx", None)
        if linker_so_cxx:
            link = list(compiler.compiler_cxx) + list(linker_so_cxx[1:])
        else:
            link = [compiler.compiler_cxx[0]] + list(compiler.linker_so[1:])
        pre = [f"-D{name}" if value is None else f"-D{name}={value}" for name, value in (self.define or [])]
        pre += [f"-U{name}" for name in (self.undef or [])]
        pre += [f"-I{d}" for d in (self.include_dirs or []) + list(ext.include_dirs or [])]

        # Hidden visibility: only PyInit__C is exported, so internal calls bind directly (no PLT) and
        # our symbols cannot clash with other extensions'.
        common = ["-O2", "-fPIC", "-fvisibility=hidden", "-Wall", "-Icsrc", "-Ikernels"]
        if cuda:
            common += ["-DNVFP4_WITH_CUDA", f"-I{cuda[1]}"]
        c_flags = ["-std=c11", "-Wextra"] + common
        cxx_flags = ["-std=c++20", f"-D_GLIBCXX_USE_CXX11_ABI={abi}"] + common
        cxx_flags += [f"-I{p}" for p in include_paths()]

        compiles = []  # (object, source, command)
        for src in C_SOURCES + CXX_SOURCES:
            obj = f"{build_dir}/{Path(src).with_suffix('.o')}"
            base, flags = (cxx, cxx_flags) if src.endswith(".cpp") else (cc, c_flags)
            compiles.append((obj, src, base + pre + ["-c", src, "-o", obj] + flags + ["-MMD", "-MF", obj + ".d"]))
        extra_inputs = []
        if cuda:
            nvcc_extra = shlex.split(os.environ.get("NVFP4_NVCC_FLAGS", ""))
            for src, default_gencode, variable in CUDA_SOURCES:
                gencode = shlex.split(os.environ.get(variable, "")) or default_gencode
                obj = f"{build_dir}/{Path(src).with_suffix('.o')}"
                cmd = [cuda[0], "-c", src, "-o", obj, "-std=c++17", "-O3", "--threads", "4",
                       "-Xcompiler", "-fPIC,-fvisibility=hidden",
                       "-Icsrc", "-Ikernels"] + gencode + nvcc_extra + ["-MD", "-MF", obj + ".d"]
                compiles.append((obj, src, cmd))
            extra_inputs.append(cuda[2])

        libraries = ["c10", "torch", "torch_cpu", "torch_python"] + (["rt", "dl", "pthread"] if cuda else [])
        ext.libraries = libraries
        library_dirs = list(library_paths()) + list(ext.library_dirs or []) + list(self.library_dirs or [])
        lib_opts = [f"-L{d}" for d in library_dirs]
        for d in list(ext.runtime_library_dirs or []) + list(self.rpath or []):
            option = compiler.runtime_library_dir_option(d)
            lib_opts += option if isinstance(option, list) else [option]
        lib_opts += [f"-l{lib}" for lib in self.get_libraries(ext)]
        objects = [obj for obj, _, _ in compiles] + list(ext.extra_objects or [])
        link_cmd = link + objects + extra_inputs + lib_opts + ["-o", target] + list(ext.extra_link_args or [])
        # The torch libraries linked against: a reinstalled torch relinks the module.
        torch_libs = [str(Path(d) / f"lib{lib}.so") for lib in libraries for d in library_paths()
                      if (Path(d) / f"lib{lib}.so").exists()]

        lines = [
            "# Written by setup.py on every build; edits here are overwritten.",
            "ninja_required_version = 1.3",
            f"builddir = {ninja_path(build_dir)}",
            "",
            "rule compile",
            "  command = $cmd",
            "  depfile = $out.d",
            "  deps = gcc",
            "",
            "rule link",
            "  command = $cmd",
            "",
        ]
        for obj, src, cmd in compiles:
            lines += [f"build {ninja_path(obj)}: compile {ninja_path(src)}", f"  cmd = {ninja_command(cmd)}"]
        inputs = " ".join(ninja_path(p) for p in objects + extra_inputs)
        implicit = " ".join(ninja_path(p) for p in torch_libs)
        lines += [f"build {ninja_path(target)}: link {inputs}" + (f" | {implicit}" if implicit else ""),
                  f"  cmd = {ninja_command(link_cmd)}", "", f"default {ninja_path(target)}", ""]
        text = "\n".join(lines)

        ninja_file = ROOT / build_dir / "build.ninja"
        ninja_file.parent.mkdir(parents=True, exist_ok=True)
        if not ninja_file.exists() or ninja_file.read_text() != text:
            ninja_file.write_text(text)

        run = [ninja, "-f", str(ninja_file)]
        if self.parallel and self.parallel is not True:
            run += ["-j", str(int(self.parallel))]
        print(f"ninja: {' '.join(run)}  (in {ROOT})", flush=True)
        if self.force:
            subprocess.run(run + ["-t", "clean"], cwd=ROOT, check=True)
        result = subprocess.run(run, cwd=ROOT)
        if result.returncode != 0:
            from setuptools.errors import CompileError

            raise CompileError(f"building {ext.name} failed (ninja exit status {result.returncode}; "
                               "the failing command and its output are above)")


# Headers are listed only so that an sdist carries them; ninja finds the real dependencies itself.
HEADERS = sorted(str(p.relative_to(ROOT)) for pattern in ("csrc/*.h", "kernels/*.h", "kernels/*.cuh")
                 for p in ROOT.glob(pattern))

setup(
    ext_modules=[Extension("nvfp4_group_gemm._C", sources=C_SOURCES + CXX_SOURCES + [s for s, _, _ in CUDA_SOURCES],
                           depends=HEADERS, language="c++")],
    cmdclass={"build_ext": BuildExt},
)
