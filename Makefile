# make test   install what the tests need when missing, build in place, run pytest (C planner tests too)
# make bench  build, then the benchmark (needs a CUDA GPU; exits non-zero without one)
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
TORCH_SPEC ?= torch
PYTEST_ARGS ?=
SANITIZER ?= compute-sanitizer

.PHONY: test bench build deps memcheck sanitize soak fuzz-gpu clean

deps:
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install "$(TORCH_SPEC)"
	@$(PYTHON) -c "import pytest" 2>/dev/null || $(PIP) install pytest
	@$(PYTHON) -c "import hypothesis" 2>/dev/null || $(PIP) install hypothesis
	@$(PYTHON) -c "import setuptools, wheel" 2>/dev/null || $(PIP) install setuptools wheel
	@ninja --version >/dev/null 2>&1 || $(PYTHON) -c "import ninja" 2>/dev/null || $(PIP) install ninja

build: deps
	$(PYTHON) setup.py build_ext --inplace

test: build
	$(PYTHON) -m pytest -ra $(PYTEST_ARGS)

bench: build
	$(PYTHON) bench/bench.py $(BENCH_ARGS)

# compute-sanitizer over a few shapes (tests/sanitizer_cases.py: every kernel and pre-pass, both entry points, both
# kernel families), then memcheck and initcheck over generated valid calls of tests/test_abuse.py at a reduced count
# (SANITIZE_CALLS). Each run fails unless the sanitizer reports 0 errors. `make sanitize` runs memcheck, racecheck,
# synccheck and initcheck. Racecheck stays on the fixed shapes: where the stream-K kernel's rings wrap (generated
# calls with long K) it flags reads that a warp barrier orders before one lane's release, which it does not follow
# (docs/performance.md, section 2.5).
SANITIZE = PYTORCH_NO_CUDA_MEMORY_CACHING=1 PYTHONPATH=python $(SANITIZER) --error-exitcode 9
SANITIZE_CALLS ?= 16
# custom_kernel's largest generated G under the sanitizer, where each of the check's torch launches costs milliseconds.
SANITIZE_GROUPS ?= 8
SANITIZE_GENERATED = $(PYTHON) -m pytest -q -p no:cacheprovider tests/test_abuse.py -k generated

memcheck: build
	$(SANITIZE) --tool memcheck $(PYTHON) tests/sanitizer_cases.py

sanitize: memcheck
	$(SANITIZE) --tool racecheck $(PYTHON) tests/sanitizer_cases.py
	$(SANITIZE) --tool synccheck $(PYTHON) tests/sanitizer_cases.py
	$(SANITIZE) --tool initcheck $(PYTHON) tests/sanitizer_cases.py
	NVFP4_ABUSE_CALLS=$(SANITIZE_CALLS) NVFP4_ABUSE_MAX_GROUPS=$(SANITIZE_GROUPS) $(SANITIZE) --tool memcheck $(SANITIZE_GENERATED)
	NVFP4_ABUSE_CALLS=$(SANITIZE_CALLS) NVFP4_ABUSE_MAX_GROUPS=$(SANITIZE_GROUPS) $(SANITIZE) --tool initcheck $(SANITIZE_GENERATED)

# The soak of tests/test_abuse.py at 10^6 calls of each entry point (make test runs 20,000); prints its samples.
soak: build
	NVFP4_SOAK_CALLS=1000000 $(PYTHON) -m pytest -s -q tests/test_abuse.py -k soak

# Generated valid calls on the GPU (tests/test_abuse.py): FUZZ_CALLS of custom_kernel and half as many of
# grouped_mm in all, over FUZZ_WORKERS processes with their own seeds (a call's inputs, reference and check are
# made on the CPU, ~0.1 s of one core for custom_kernel, so processes, not a longer single run). Logs in
# build/fuzz-*.log, with a line every 100 calls checked. Run it alone: beside compute-sanitizer it slowed several
# times over.
FUZZ_CALLS ?= 2000
FUZZ_WORKERS ?= 4
FUZZ_THREADS ?= 2
fuzz-gpu: build
	@mkdir -p build; pids=""; \
	for w in $$(seq 1 $(FUZZ_WORKERS)); do \
		OMP_NUM_THREADS=$(FUZZ_THREADS) NVFP4_ABUSE_SEED=$$w NVFP4_ABUSE_CALLS=$$(( $(FUZZ_CALLS) / $(FUZZ_WORKERS) )) $(PYTHON) -m pytest -q -s \
			-p no:cacheprovider tests/test_abuse.py -k generated > build/fuzz-$$w.log 2>&1 & pids="$$pids $$!"; \
	done; status=0; for p in $$pids; do wait $$p || status=1; done; tail -n 2 build/fuzz-*.log; exit $$status

clean:
	rm -rf build python/nvfp4_group_gemm/_C*.so
