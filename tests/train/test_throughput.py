"""The MFU module: the peak table's lookup and the arithmetic (PaLM appendix B)."""

import math

import pytest

from optlab.train import throughput


@pytest.mark.parametrize(
    ("kind", "precision", "want"),
    [
        ("TPU v4", "bf16", 275e12),
        ("TPU v5 lite", "bf16", 197e12),  # v5e's device_kind: not v5p's 459
        ("TPU v5p", "bf16", 459e12),
        ("TPU v6 lite", "bf16", 918e12),
        ("NVIDIA A100-SXM4-80GB", "bf16", 312e12),
        ("NVIDIA A100-SXM4-80GB", "fp32", 156e12),  # TF32
        ("NVIDIA H100 80GB HBM3", "bf16", 989e12),
        ("NVIDIA H200", "fp32", 494e12),
    ],
)
def test_published_peaks_by_device_kind(kind, precision, want):
    assert throughput.published_peak(kind, precision) == want


def test_an_unknown_device_has_no_published_peak():
    assert throughput.published_peak("cpu") is None
    assert throughput.published_peak("NVIDIA T4") is None


def test_mfu_is_model_flops_over_peak():
    # 1,000 tokens/s of a model of 6·1e6 FLOPs per token on a 1e10 FLOP/s machine: 60%.
    assert math.isclose(throughput.mfu(1000.0, 6e6, 1e10), 0.6, rel_tol=1e-12)


def test_the_cpu_probe_measures_a_positive_rate_once():
    peak, source = throughput.device_peak()
    assert peak > 1e8 and "matmul probe" in source  # even a slow core does 0.1 GFLOP/s
    assert throughput.cpu_peak() == throughput.cpu_peak()  # measured once per process
