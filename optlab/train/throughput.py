"""Tokens per second and model FLOPs utilization (MFU) of a language-model run.

MFU (PaLM, Chowdhery et al. 2022, appendix B) is the model's FLOPs per second divided by the
hardware's peak: ``MFU = tokens/s · F / (devices · peak)``, with ``F`` the training FLOPs per
token of ``optlab.models.flops_per_token`` (6·N for the matmuls of the forward and backward
pass, plus the attention term). Rematerialization's recomputed forward pass is not counted:
MFU measures the model's work, not the hardware's.

The peak is the published dense peak of one chip for the run's compute precision
(``PEAKS``, with the sources). On a CPU there is no published number; ``cpu_peak`` measures
one, once per process, by timing a float32 matmul: MFU on a CPU is against that probe and
labelled so (``peak_source``: ``"matmul probe"``).
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp

# Dense peak FLOP/s of one chip: (bfloat16, float32). float32 on an accelerator is run by
# XLA through its matrix units at the default precision (bf16 passes on TPU, TF32 on
# NVIDIA), so its peak is the matrix unit's; on NVIDIA that is TF32's.
# Sources: cloud.google.com/tpu/docs/v4, /v5e, /v5p, /v6e (per chip, bf16);
# NVIDIA A100 datasheet (312 TFLOPS bf16, 156 TF32, dense); NVIDIA H100 SXM datasheet
# (989 TFLOPS bf16, 494 TF32, dense; H200 has the same compute).
PEAKS: dict[str, tuple[float, float]] = {
    "TPU v4": (275e12, 275e12),
    "TPU v5 lite": (197e12, 197e12),  # v5e
    "TPU v5e": (197e12, 197e12),
    "TPU v5p": (459e12, 459e12),
    "TPU v5": (459e12, 459e12),
    "TPU v6 lite": (918e12, 918e12),  # v6e (Trillium)
    "TPU v6e": (918e12, 918e12),
    "A100": (312e12, 156e12),
    "H100": (989e12, 494e12),
    "H200": (989e12, 494e12),
}


def published_peak(device_kind: str, precision: str = "fp32") -> float | None:
    """The table's peak for a ``jax.Device.device_kind`` (``"TPU v4"``, ``"NVIDIA
    H100 80GB HBM3"``), or None when the device is not in it. The longest matching name
    wins (``"TPU v5 lite"`` before ``"TPU v5"``)."""
    for name in sorted(PEAKS, key=len, reverse=True):
        if name.lower() in device_kind.lower():
            bf16, fp32 = PEAKS[name]
            return bf16 if precision in ("bf16", "fp16") else fp32
    return None


@functools.cache
def cpu_peak(n: int = 1024, repeats: int = 5) -> float:
    """FLOP/s of the fastest of ``repeats`` float32 ``n × n`` matmuls on this CPU (2n³ FLOPs
    each), compiled once: a measured stand-in for a peak, once per process."""
    a = jnp.ones((n, n), jnp.float32)
    matmul = jax.jit(lambda x: x @ x)
    matmul(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best


def device_peak(precision: str = "fp32") -> tuple[float, str]:
    """(peak FLOP/s of all this run's devices together, where the number comes from)."""
    devices = jax.devices()
    kind = devices[0].device_kind
    peak = published_peak(kind, precision)
    if peak is not None:
        return peak * len(devices), f"published peak of {kind}"
    if devices[0].platform == "cpu":
        # the simulated devices of one CPU share its cores: one probe is the whole machine
        return cpu_peak(), "matmul probe (CPU, no published peak)"
    return float("nan"), f"no published peak for {kind}"


def mfu(tokens_per_second: float, flops_per_token: float, peak: float) -> float:
    """Model FLOPs utilization: tokens/s · FLOPs per token / peak FLOP/s."""
    return tokens_per_second * flops_per_token / peak
