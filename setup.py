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
"""

import os
import shlex
import shutil
import subprocess
import sysconfig
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
C_SOURCES = ["csrc/module.c", "csrc/planner.c", "csrc/device.c"]
CXX_SOURCES = ["csrc/torch_bridge.cpp"]
# (source, default targets, environment variable that replaces them)
CUDA_SOURCES = [
    ("kernels/portable_gemm.cu", PORTABLE_GENCODE, "NVFP4_GENCODE"),
    ("kernels/hopper_gemm.cu", HOPPER_GENCODE, "NVFP4_HOPPER_GENCODE"),
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


class BuildExt(build_ext):
    """Compiles C as C11, the bridge as C++20 (torch's headers need it) and .cu with nvcc."""

    def build_extensions(self):
        import torch
        from torch.utils.cpp_extension import include_paths, library_paths

        cuda = want_cuda()
        ext = self.extensions[0]
        abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
        # Hidden visibility: only PyInit__C is exported, so internal calls bind directly (no PLT) and
        # our symbols cannot clash with other extensions'.
        common = ["-O2", "-fPIC", "-fvisibility=hidden", "-Wall", "-Icsrc", "-Ikernels"]
        if cuda:
            common += ["-DNVFP4_WITH_CUDA", f"-I{cuda[1]}"]
        c_flags = ["-std=c11", "-Wextra"] + common
        cxx_flags = ["-std=c++20", f"-D_GLIBCXX_USE_CXX11_ABI={abi}"] + common
        cxx_flags += [f"-I{p}" for p in include_paths()]

        compile_one = self.compiler._compile

        def compile_by_language(obj, src, ext_name, cc_args, extra_postargs, pp_opts):
            flags = cxx_flags if src.endswith(".cpp") else c_flags
            compile_one(obj, src, ext_name, cc_args, flags, pp_opts)

        self.compiler._compile = compile_by_language
        ext.sources = C_SOURCES + CXX_SOURCES
        ext.extra_objects = []
        ext.library_dirs = library_paths()
        ext.libraries = ["c10", "torch", "torch_cpu", "torch_python"]
        if cuda:
            ext.extra_objects = self.compile_cuda(cuda[0])
            ext.extra_objects.append(cuda[2])
            ext.libraries += ["rt", "dl", "pthread"]
        build_ext.build_extensions(self)

    def compile_cuda(self, nvcc):
        extra = shlex.split(os.environ.get("NVFP4_NVCC_FLAGS", ""))
        out_dir = Path(self.build_temp) / "kernels"
        out_dir.mkdir(parents=True, exist_ok=True)
        objects = []
        for src, default_gencode, variable in CUDA_SOURCES:
            gencode = shlex.split(os.environ.get(variable, "")) or default_gencode
            obj = out_dir / (Path(src).stem + ".o")
            cmd = [nvcc, "-c", src, "-o", str(obj), "-std=c++17", "-O3", "--threads", "4",
                   "-Xcompiler", "-fPIC,-fvisibility=hidden",
                   "-Icsrc", "-Ikernels"] + gencode + extra
            print(" ".join(cmd), flush=True)
            subprocess.check_call(cmd, cwd=ROOT)
            objects.append(str(obj))
        return objects


setup(
    ext_modules=[Extension("nvfp4_group_gemm._C", sources=C_SOURCES + CXX_SOURCES, language="c++")],
    cmdclass={"build_ext": BuildExt},
)
