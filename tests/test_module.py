"""The extension module itself: what it exports and how CUDA failures surface, on any machine."""

import importlib
import os
import sys

import pytest
import torch

import nvfp4_group_gemm
from nvfp4_group_gemm import _C


def test_exports():
    assert nvfp4_group_gemm.custom_kernel is _C.custom_kernel
    from nvfp4_group_gemm.submission import custom_kernel

    assert custom_kernel is _C.custom_kernel
    assert (_C.TILE_M, _C.TILE_N, _C.GROUP_ENTRY_BYTES) == (64, 128, 128)
    assert _C.INLINE_CAPACITY >= 8 and _C.RING_SLOTS >= 2


@pytest.mark.skipif(not _C.WITH_CUDA, reason="built without CUDA: no CUDA runtime to fail")
def test_cuda_failure_is_runtime_error_with_cuda_message():
    # Without a GPU the CUDA runtime's own error (no device / insufficient driver) must come through; with
    # one, asking for a device that does not exist must.
    index = torch.cuda.device_count() + 7 if torch.cuda.is_available() else 0
    with pytest.raises(RuntimeError) as info:
        _C.device_info(index)
    message = str(info.value)
    assert "CUDA error in" in message or f"no CUDA device {index}" in message, message


@pytest.mark.skipif(_C.WITH_CUDA, reason="built with CUDA: the no-CUDA build's message cannot appear")
def test_build_without_cuda_says_so():
    with pytest.raises(RuntimeError, match="built without CUDA"):
        _C.device_info(0)


def test_no_launch_on_an_unchecked_table():
    # Every launch goes through the planner's checks: no entry takes a group table from the caller, and the bare
    # launch takes only a capsule that _prepare made from a validated call.
    assert not hasattr(_C, "_launch_device_table")
    with pytest.raises(ValueError):
        _C._launch_prepared(object())


def test_call_is_a_named_op_in_the_profiler():
    # The op is recorded from the call's start, so a call that the validation refuses (no GPU needed) shows too.
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        with pytest.raises(ValueError, match="expected at least one group"):
            nvfp4_group_gemm.custom_kernel(([], [], [], []))
    assert [e.name for e in prof.events()].count("nvfp4_group_gemm::custom_kernel") == 1


def test_profiler_naming_costs_under_50_ns_without_a_profiler():
    cost_ns = min(_C._scope_cost(200_000) for _ in range(3))
    assert cost_ns < 50, f"naming a call costs {cost_ns:.1f} ns with no profiler running"
    with pytest.raises(ValueError, match="count: expected a positive number"):
        _C._scope_cost(0)


def test_ignore_arguments_takes_grouped_mms_call_and_does_nothing():
    marker = object()
    assert _C._ignore_arguments(marker, 1, 2, 3, 4, out_dtype=marker, out=marker) is None
    assert _C._ignore_arguments() is None


# ---- The module's declarations about interpreters (module.c, module_slots) ----
#
# _C is loaded from its file in a new subinterpreter, without the package: the package's `import torch` depends on what
# torch declares, which would hide what _C declares. The subinterpreter reports through a pipe, which works whatever
# the subinterpreter API returns.

_PROBE = """
import importlib.util, os
spec = importlib.util.spec_from_file_location("nvfp4_group_gemm._C", {path!r})
try:
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = "imported"
except ImportError as error:
    result = "ImportError: %s" % error
os.write({fd}, result.encode())
"""


def _probe_in_subinterpreter(run):
    """Runs _PROBE through run(code) and returns what the subinterpreter wrote."""
    read_end, write_end = os.pipe()
    try:
        run(_PROBE.format(path=_C.__file__, fd=write_end))
    finally:
        os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        return pipe.read().decode()


def _interpreters_module():
    for name in ("_interpreters", "_xxsubinterpreters"):  # 3.13+, 3.12
        try:
            return importlib.import_module(name)
        except ImportError:
            pass
    return None


def _run_in_new_interpreter(interpreters, code, config=None):
    interp = interpreters.create() if config is None else interpreters.create(config)
    try:
        interpreters.run_string(interp, code)
    finally:
        interpreters.destroy(interp)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="subinterpreters with a GIL of their own need Python 3.12+")
def test_refused_by_a_subinterpreter_with_its_own_gil():
    # Process-wide state in the kernel launchers is guarded by the GIL alone, so the module must not be imported
    # where calls could run under another GIL at the same time.
    interpreters = _interpreters_module()
    if interpreters is None:
        pytest.skip("this Python has neither _interpreters nor _xxsubinterpreters")
    # create() with no config makes an isolated interpreter (own GIL) in 3.12 and 3.13 alike.
    result = _probe_in_subinterpreter(lambda code: _run_in_new_interpreter(interpreters, code))
    assert result.startswith("ImportError: ") and "does not support loading in subinterpreters" in result, result


def _shared_gil_runner():
    """run(code) in a new subinterpreter that shares the main GIL and still checks extensions, or None."""
    interpreters = _interpreters_module()
    if interpreters is not None and hasattr(interpreters, "new_config"):  # 3.13+
        config = interpreters.new_config("isolated", gil="shared", use_main_obmalloc=True)
        return lambda code: _run_in_new_interpreter(interpreters, code, config)
    try:
        import _testcapi  # 3.12: the test-suite's helper, where the Python installation ships it
    except ImportError:
        return None
    run = getattr(_testcapi, "run_in_subinterp_with_config", None)
    if run is None:
        return None

    def run_shared(code):
        status = run(code, use_main_obmalloc=True, allow_fork=True, allow_exec=True, allow_threads=True,
                     allow_daemon_threads=True, check_multi_interp_extensions=True, gil=1)  # 1: shared GIL
        assert status == 0, f"the subinterpreter failed (status {status})"

    return run_shared


@pytest.mark.skipif(sys.version_info < (3, 12), reason="Py_mod_multiple_interpreters needs Python 3.12+")
def test_imported_by_a_subinterpreter_that_shares_the_gil():
    # The module declares support for subinterpreters that share the main GIL: its own objects live in the module
    # state, one per interpreter, and one GIL still serialises every call. The subinterpreter checks extensions,
    # so a module declared unsupported would be refused here.
    run = _shared_gil_runner()
    if run is None:
        pytest.skip("no way to make a shared-GIL subinterpreter that checks extensions (_interpreters.new_config, "
                    "or _testcapi.run_in_subinterp_with_config)")
    try:
        result = _probe_in_subinterpreter(run)
    except TypeError as error:  # a _testcapi of another 3.12 patch release with other keywords
        pytest.skip(f"_testcapi.run_in_subinterp_with_config has another signature here: {error}")
    assert result == "imported", result
