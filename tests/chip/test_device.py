"""Device profiles: the CPU is measured once and cached; GPUs come from the datasheet table."""
from __future__ import annotations

import json
import logging

import pytest
import torch

import chip.device as device
from chip.device import cpu_info, detect_profile
from chip.device.cuda import GpuFacts, profile_from_facts
from tests.chip.conftest import requires_cuda

GIB = 1024**3


@pytest.fixture
def count_measurements(monkeypatch):
    calls = []
    real = device.measure_cpu_profile

    def counting():
        calls.append(1)
        return real()

    monkeypatch.setattr(device, "measure_cpu_profile", counting)
    return calls


def test_cpu_profile_is_measured_once_then_read_from_the_cache(tmp_path, count_measurements):
    first = detect_profile("cpu", cache_dir=tmp_path)
    assert count_measurements == [1]
    assert first.kind == "cpu" and first.measured
    assert first.compute_units == len(__import__("os").sched_getaffinity(0))
    # Plausible for any machine of the last 15 years, and not a hard-coded figure.
    assert 1e9 < first.memory_bandwidth < 1e13
    assert set(first.peak_flops) == {"float32", "bfloat16"}
    assert all(1e8 < flops < 1e15 for flops in first.peak_flops.values())
    assert first.memory_bytes > 256 * 1024**2

    second = detect_profile("auto" if not torch.cuda.is_available() else "cpu", cache_dir=tmp_path)
    assert count_measurements == [1], "the second call must read the cache, not measure again"
    assert second == first
    [cache_file] = tmp_path.glob("device-profile-*.json")
    assert json.loads(cache_file.read_text())["key"]["torch"] == torch.__version__


def test_cache_is_keyed_by_thread_count_and_can_be_refreshed(tmp_path, monkeypatch, count_measurements):
    fake = device.DeviceProfile(kind="cpu", name="fake", compute_units=1, memory_bytes=1,
                                memory_bandwidth=1.0, peak_flops={"float32": 1.0}, measured=True)
    monkeypatch.setattr(device, "measure_cpu_profile", lambda: count_measurements.append(1) or fake)
    threads = torch.get_num_threads()
    detect_profile("cpu", cache_dir=tmp_path)
    detect_profile("cpu", cache_dir=tmp_path, refresh=True)
    assert len(count_measurements) == 2
    try:
        torch.set_num_threads(threads + 1)
        detect_profile("cpu", cache_dir=tmp_path)
        assert len(count_measurements) == 3
    finally:
        torch.set_num_threads(threads)
    assert len(list(tmp_path.glob("device-profile-*.json"))) == 2


def test_cache_dir_from_environment_and_corrupt_cache_is_remeasured(tmp_path, monkeypatch, caplog):
    fake = device.DeviceProfile(kind="cpu", name="fake", compute_units=1, memory_bytes=1,
                                memory_bandwidth=1.0, measured=True)
    monkeypatch.setattr(device, "measure_cpu_profile", lambda: fake)
    monkeypatch.setenv("FLYWHEEL_CACHE_DIR", str(tmp_path))
    path = device.cache_path(tmp_path, device.cpu_cache_key())
    path.write_text("{not json")
    with caplog.at_level(logging.WARNING):
        assert detect_profile("cpu") == fake
    assert "unreadable" in caplog.text
    assert json.loads(path.read_text())["profile"]["name"] == "fake"


def test_bad_device_names_raise_value_error():
    with pytest.raises(ValueError, match="tpu"):
        detect_profile("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            detect_profile("cuda")


X86_CPUINFO = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile pni

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
"""
ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes sve bf16 i8mm
CPU implementer\t: 0x41
"""


def test_cpuinfo_parsing_for_x86_and_arm():
    assert cpu_info.cpu_model(X86_CPUINFO) == "Intel(R) Xeon(R) Platinum 8480+"
    assert cpu_info.isa_flags(X86_CPUINFO) == ["amx_bf16", "amx_tile", "avx", "avx2", "avx512_bf16",
                                               "avx512f", "fma", "sse4_2"]
    assert cpu_info.isa_flags(ARM_CPUINFO) == ["asimd", "bf16", "i8mm", "sve"]
    assert cpu_info.memory_bytes("MemTotal:       16318256 kB\nMemFree: 1 kB\n") == 16318256 * 1024


@pytest.mark.parametrize("name,memory_gib,bandwidth,bf16", [
    ("NVIDIA H100 80GB HBM3", 80, 3.35e12, 989.5e12),
    ("NVIDIA H100 PCIe", 80, 2.0e12, 756e12),
    ("NVIDIA H200", 141, 4.8e12, 989.5e12),
    ("NVIDIA A100-SXM4-40GB", 40, 1.555e12, 312e12),
    ("NVIDIA A100-SXM4-80GB", 80, 2.039e12, 312e12),
    ("NVIDIA L4", 24, 300e9, 121e12),
    ("NVIDIA GeForce RTX 4090", 24, 1.008e12, 165.2e12),
])
def test_known_gpus_come_from_the_datasheet_table(name, memory_gib, bandwidth, bf16):
    profile = profile_from_facts(GpuFacts(name=name, num_sms=100, memory_bytes=memory_gib * GIB,
                                          clock_hz=1.5e9))
    assert profile.kind == "cuda" and not profile.measured
    assert profile.memory_bandwidth == bandwidth
    assert profile.peak_flops["bfloat16"] == bf16
    peaks = profile.peak_flops
    assert peaks["float32"] <= peaks["tfloat32"] <= peaks["bfloat16"]


def test_unknown_gpu_is_estimated_with_a_warning(caplog):
    # "L40S" must not be taken for the "L4" row.
    facts = GpuFacts(name="NVIDIA L40S", num_sms=142, memory_bytes=48 * GIB, clock_hz=2.52e9,
                     memory_bus_bits=384, memory_clock_hz=9.0e9 / 4)
    with caplog.at_level(logging.WARNING):
        profile = profile_from_facts(facts)
    assert "not in gpu_specs.json" in caplog.text
    assert profile.peak_flops["float32"] == pytest.approx(142 * 2.52e9 * 256)
    assert profile.memory_bandwidth == pytest.approx(384 / 8 * 9.0e9 / 4 * 2)


def test_detect_cuda_profile_reads_torch_device_properties(monkeypatch):
    # torch.cuda faked: what detect_profile does with the properties a GPU reports.
    from types import SimpleNamespace

    props = SimpleNamespace(name="NVIDIA H100 80GB HBM3", multi_processor_count=132,
                            total_memory=80 * GIB)  # no clock attributes, as on some builds
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: props)
    profile = detect_profile("auto")
    assert (profile.kind, profile.compute_units, profile.memory_bytes) == ("cuda", 132, 80 * GIB)
    assert profile.memory_bandwidth == 3.35e12 and profile.peak_flops["bfloat16"] == 989.5e12


@pytest.mark.gpu
@requires_cuda
def test_real_gpu_profile():
    profile = detect_profile("cuda")
    props = torch.cuda.get_device_properties(0)
    assert profile.compute_units == props.multi_processor_count
    assert profile.memory_bytes == props.total_memory
    assert profile.peak_flops_for("bfloat16") > 1e13
