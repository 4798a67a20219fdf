"""Generated sources are what their generators write today."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wgmma_header_matches_generator():
    spec = importlib.util.spec_from_file_location("gen_wgmma_rs", ROOT / "kernels" / "gen_wgmma_rs.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    committed = (ROOT / "kernels" / "wgmma_rs.cuh").read_text()
    assert committed == generator.render(), "kernels/wgmma_rs.cuh is stale: run python3 kernels/gen_wgmma_rs.py"
    for n in range(8, 257, 8):
        assert f"m64n{n}k16.f32.f16.f16" in committed
    committed_ss = (ROOT / "kernels" / "wgmma_ss.cuh").read_text()
    assert committed_ss == generator.render_ss(), "kernels/wgmma_ss.cuh is stale: run python3 kernels/gen_wgmma_rs.py"
    for n in range(8, 257, 8):
        assert f"m64n{n}k16.f32.f16.f16" in committed_ss
