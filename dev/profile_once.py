"""One custom_kernel call on benchmark spec 1, for a profiler (ncu) to capture; run after `make build`.

ncu --clock-control none --kernel-name regex:gemm --launch-count 1 --section SpeedOfLight \
    --section WarpStateStats --section Occupancy --section ComputeWorkloadAnalysis python3 dev/profile_once.py
NVFP4_KERNEL=portable profiles the portable kernel instead.
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
from nvfp4_group_gemm import custom_kernel  # noqa: E402
from nvfp4_group_gemm.data import generate_input  # noqa: E402

data = generate_input([80, 176, 128, 72, 64, 248, 96, 160], 4096, 7168, seed=1)
custom_kernel(data)
torch.cuda.synchronize()
