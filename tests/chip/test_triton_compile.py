"""Every Triton kernel compiles for real GPUs (sm_80, sm_90) on this CPU-only machine.

The interpreter checks what the kernels compute; this checks that the GPU compiler accepts them
(tile shapes, dtypes, 3-D reductions) and that paged decode attention keeps its registers unspilled.
Triton ships its own LLVM and ptxas, so no GPU or CUDA toolkit is needed.
"""
from __future__ import annotations

import re
import subprocess

import pytest
import torch

from chip.ops import TRITON_MODULES

triton = pytest.importorskip("triton")

ARCHS = (80, 90)
SCALARS_FP32 = ("eps", "scale")


def _kernels_or_skip():
    from triton.language import standard
    from triton.runtime.interpreter import InterpretedFunction

    if isinstance(standard.sum, InterpretedFunction):
        pytest.skip("triton was imported for the interpreter in this process")
    if "nvidia" not in triton.backends.backends:
        pytest.skip("this triton build has no NVIDIA backend")
    from tests.chip.conftest import load_triton_kernels

    return load_triton_kernels(interpret=False)


def _signature(kernel, pointer_types: dict[str, str]) -> dict[str, str]:
    # Pointers by name, fp32 scalars by name, UPPERCASE meta-parameters constexpr, the rest i32.
    signature = {}
    for name in kernel.arg_names:
        if name.endswith("_ptr"):
            signature[name] = pointer_types.get(name, "*bf16")
        elif name in SCALARS_FP32:
            signature[name] = "fp32"
        elif name.isupper():
            signature[name] = "constexpr"
        else:
            signature[name] = "i32"
    return signature


def _compile(kernel, constexprs: dict, arch: int, pointer_types: dict[str, str] | None = None):
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    constexprs = dict(constexprs)
    options = {"num_warps": constexprs.pop("num_warps")} if "num_warps" in constexprs else {}
    source = ASTSource(fn=kernel, signature=_signature(kernel, pointer_types or {}),
                       constexprs=constexprs)
    return triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options)


def _spill_bytes(ptx: str, arch: int, tmp_path) -> int:
    from triton.backends.nvidia.compiler import get_ptxas

    ptx_file = tmp_path / f"kernel_sm{arch}.ptx"
    ptx_file.write_text(ptx)
    gpu = f"sm_{arch}a" if arch >= 90 else f"sm_{arch}"
    result = subprocess.run([get_ptxas(arch).path, "--gpu-name", gpu, "-v", str(ptx_file),
                             "-o", str(tmp_path / "kernel.cubin")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return sum(int(n) for n in re.findall(r"(\d+) bytes spill stores", result.stdout + result.stderr))


def _cases(kernels):
    int_ptrs = {"positions_ptr": "*i64", "slot_mapping_ptr": "*i64", "block_tables_ptr": "*i32",
                "context_lens_ptr": "*i32", "cu_seqlens_q_ptr": "*i32", "cos_sin_ptr": "*fp32"}
    return [
        (kernels.norm_triton._rms_norm_kernel,
         {"HAS_RESIDUAL": True, **kernels.norm_triton._launch_config(4096, 2)}),
        (kernels.activation_triton._silu_and_mul_kernel, {"BLOCK_N": 1024}),
        (kernels.rotary_triton._rotary_kernel, {"BLOCK_H": 32, "BLOCK_D": 64}),
        (kernels.kv_cache_triton._store_kv_cache_kernel, {"BLOCK": 1024}),
        (kernels.attention_triton._paged_decode_kernel, kernels.attention_triton.decode_tile(4, 128)),
        (kernels.attention_prefill_triton._paged_prefill_kernel,
         kernels.attention_prefill_triton.prefill_tile(128, torch.bfloat16)),
    ], int_ptrs


@pytest.mark.parametrize("arch", ARCHS)
def test_every_kernel_compiles_for_the_gpu(arch):
    kernels = _kernels_or_skip()
    cases, pointer_types = _cases(kernels)
    assert len(cases) == len(TRITON_MODULES)
    for kernel, constexprs in cases:
        compiled = _compile(kernel, constexprs, arch, pointer_types)
        assert compiled.asm["cubin"], kernel.fn.__name__


@pytest.mark.parametrize("group_size,head_dim", [(1, 128), (4, 128), (8, 128), (8, 64)])
def test_paged_decode_tiles_do_not_spill_registers(group_size, head_dim, tmp_path):
    kernels = _kernels_or_skip()
    attention = kernels.attention_triton
    compiled = _compile(attention._paged_decode_kernel, attention.decode_tile(group_size, head_dim),
                        90, {"block_tables_ptr": "*i32", "context_lens_ptr": "*i32"})
    # A few bytes of spill are harmless; whole tiles spilled (kilobytes) are what this guards.
    assert _spill_bytes(compiled.asm["ptx"], 90, tmp_path) <= 64


@pytest.mark.parametrize("head_dim,dtype", [(128, torch.bfloat16), (128, torch.float32),
                                            (64, torch.bfloat16)])
def test_paged_prefill_tiles_do_not_spill_registers(head_dim, dtype, tmp_path):
    kernels = _kernels_or_skip()
    prefill = kernels.attention_prefill_triton
    pointer = "*fp32" if dtype == torch.float32 else "*bf16"
    pointer_types = {"q_ptr": pointer, "k_cache_ptr": pointer, "v_cache_ptr": pointer,
                     "out_ptr": pointer, "block_tables_ptr": "*i32", "context_lens_ptr": "*i32",
                     "cu_seqlens_q_ptr": "*i32"}
    compiled = _compile(prefill._paged_prefill_kernel, prefill.prefill_tile(head_dim, dtype), 90,
                        pointer_types)
    assert _spill_bytes(compiled.asm["ptx"], 90, tmp_path) <= 64


@pytest.mark.parametrize("hidden_size", [4096, 8192])
def test_rms_norm_rows_do_not_spill_registers(hidden_size, tmp_path):
    kernels = _kernels_or_skip()
    norm = kernels.norm_triton
    config = {"HAS_RESIDUAL": True, **norm._launch_config(hidden_size, 2)}
    compiled = _compile(norm._rms_norm_kernel, config, 90)
    assert _spill_bytes(compiled.asm["ptx"], 90, tmp_path) == 0
