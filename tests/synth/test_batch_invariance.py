"""An image's heatmap does not depend on which other images share the computation (issue 22).

The README's test command once failed on a fresh machine of this project's kind: the Ray run's synthesis scores
differed from the local run's in the ninth digit. The cause was the channel sum Σ_k w_k A_k, computed as one
matrix product batched over the images: on CPUs where MKL takes its SSE/AVX2 code paths, the result for one image
changes in the last bit with the number of images in the batch, and a shard holds fewer images than the local run.
``MKL_ENABLE_INSTRUCTIONS=SSE4_2`` puts this machine's MKL on such a path, so the failure is reproduced here in a
subprocess on any x86 machine; the channel sum is now one product per image (:func:`sycam.heatmap.saliency`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from sycam.heatmap import saliency

ROOT = Path(__file__).resolve().parents[2]


def _lite0_sized(n: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Activations (n, 1280, 7, 7) as at EfficientNet-Lite0's last layer, and channel weights of b candidates."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(b, n, 1280, 1, 1, generator=g), torch.randn(n, 1280, 7, 7, generator=g)


def test_an_images_channel_sum_is_the_same_whatever_images_share_the_call() -> None:
    w, a = _lite0_sized(4, 3)
    whole = saliency(w, a)
    assert whole.shape == (3, 4, 7, 7)
    halves = torch.cat([saliency(w[:, :2], a[:2]), saliency(w[:, 2:], a[2:])], dim=1)
    ones = torch.cat([saliency(w[:, i : i + 1], a[i : i + 1]) for i in range(4)], dim=1)
    assert torch.equal(whole, halves) and torch.equal(whole, ones)
    # an operand that starts off the 64-byte boundary (a view into a larger buffer) gives the same bits
    buf = torch.empty(a.numel() + 3)
    buf[3:] = a.flatten()
    assert torch.equal(saliency(w, buf[3:].view_as(a)), whole)
    # and the value is the channel sum, to float32 rounding
    ref = (w.double() * a.double()).sum(-3)
    assert torch.allclose(whole.double(), ref, rtol=0, atol=1e-4)


def test_channel_vectors_broadcast_over_images_and_constants() -> None:
    _, a = _lite0_sized(2, 1)
    w = torch.linspace(-1, 1, 1280).view(1, 1280, 1, 1)  # one vector for every image
    assert torch.allclose(saliency(w, a), (w * a).sum(1), atol=1e-4)
    assert torch.equal(saliency(torch.tensor(2.0), a), 2.0 * a.sum(1))


SCRIPT = textwrap.dedent(
    """
    import json, sys, tempfile, torch
    import sycam.synth.executors
    from sycam.cli import main
    from sycam.heatmap import saliency
    from sycam.synth.executors import InProcessExecutor

    torch.set_num_threads(1)
    sycam.synth.executors.make_executor = lambda kind, *rest: None if kind == "local" else InProcessExecutor(workers=2)
    argv = ["synthesize", "--random-weights", "--data", "demo", "--limit", "12", "--metric", "energy_pointing_game",
            "--terminals", "A,G", "--max-size", "3", "--max-candidates", "30", "--baselines", "gradcam",
            "--gallery", "0", "--batch-size", "2", "--quiet"]
    out = tempfile.mkdtemp()
    assert main([*argv, "--out", out + "/local"]) == 0
    assert main([*argv, "--executor", "ray", "--workers", "2", "--out", out + "/sharded"]) == 0
    local, sharded = (json.load(open(f"{out}/{d}/results.json")) for d in ("local", "sharded"))
    keys = ("best", "leaderboard", "baselines", "per_image", "comparison", "candidates_scored", "rejected")
    g = torch.Generator().manual_seed(0)
    w, a = torch.randn(4, 1280, 1, 1, generator=g), torch.randn(4, 1280, 7, 7, generator=g)
    batched = torch.einsum("nk,nkhw->nhw", w[:, :, 0, 0], a)
    per_image = torch.cat([torch.einsum("nk,nkhw->nhw", w[i:i + 1, :, 0, 0], a[i:i + 1]) for i in range(4)])
    fixed = torch.equal(saliency(w, a), torch.cat([saliency(w[i:i + 1], a[i:i + 1]) for i in range(4)]))
    print(json.dumps({"einsum_batch_dependent": not torch.equal(batched, per_image), "saliency_fixed": fixed,
                      "same": all(local[k] == sharded[k] for k in keys)}))
    """
)


@pytest.mark.skipif(not torch.backends.mkl.is_available(), reason="torch was built without MKL")
def test_a_sharded_search_equals_the_local_one_on_mkls_sse_path(tmp_path: Path) -> None:
    env = {**os.environ, "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["saliency_fixed"] and seen["same"], seen
    # einsum_batch_dependent records the hazard on this CPU (True where MKL's SSE path is batch-dependent); it is
    # not asserted, as it depends on the processor
