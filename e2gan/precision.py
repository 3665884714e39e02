"""Which number format a job computes in: bf16 where the hardware multiplies bf16, else fp32.

CPUs with bf16 matrix or dot-product units (x86: AMX-BF16, AVX512-BF16; ARM: the BF16
extension) run convolutions and matrix products in bf16 at twice to many times their fp32 rate
through oneDNN, and `torch.autocast` reaches them without touching the model. A CPU without
them only emulates bf16: slower than fp32 and less exact, so "auto" keeps fp32 there. Autocast
leaves what needs the range or the precision in fp32: the weights (and so the optimiser's
state and the EMA), reductions, and the losses, which the trainer computes on fp32 tensors.

`ONEDNN_MAX_CPU_ISA` (oneDNN's own switch, e.g. `AVX2`) caps the instruction sets oneDNN may
use; "auto" honours it, so `ONEDNN_MAX_CPU_ISA=AVX2` shows on any machine what a CPU without
bf16 does.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import subprocess
from typing import TYPE_CHECKING, Iterator

from e2gan.errors import E2GANError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("auto", "fp32", "bf16")

# The CPU flags (Linux /proc/cpuinfo) that mean bf16 is multiplied in hardware.
_X86_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}
_ARM_BF16_FLAGS = {"bf16"}
# oneDNN's ISA caps that still include bf16 arithmetic (its docs: "CPU dispatcher control").
_ONEDNN_BF16_ISAS = {"AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX",
                     "AVX512_CORE_AMX_FP16", "AVX10_1_512", "AVX10_1_512_AMX",
                     "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2", "DEFAULT", "ALL"}


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as the OS reports them (empty where it does not)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):  # x86, ARM
                    return frozenset(value.split())
    except OSError:
        pass
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        try:  # Apple silicon: M2 and later have BF16
            out = subprocess.run(["sysctl", "-n", "hw.optional.arm.FEAT_BF16"], capture_output=True,
                                 text=True, timeout=5).stdout.strip()
            return frozenset({"bf16"}) if out == "1" else frozenset()
        except (OSError, subprocess.SubprocessError):
            pass
    return frozenset()


def cpu_has_bf16() -> bool:
    """True when this CPU multiplies bf16 in hardware and oneDNN is allowed to use it."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if cap and cap not in _ONEDNN_BF16_ISAS:
        return False
    return bool(cpu_flags() & (_X86_BF16_FLAGS | _ARM_BF16_FLAGS))


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise E2GANError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def resolve_precision(precision: str, device: "torch.device | str" = "cpu") -> str:
    """"auto" -> "bf16" where `device` computes bf16 in hardware, else "fp32"; the others as
    given ("bf16" on a CPU without it is emulated: correct, but slower than fp32)."""
    import torch  # here, not at the top: the CLI checks its flags with this module before torch loads

    check_precision(precision)
    if precision != "auto":
        return precision
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_bf16() else "fp32"


@contextlib.contextmanager
def autocast(precision: str, device: "torch.device | str" = "cpu") -> Iterator[None]:
    """Inside, convolutions and matrix products run in `precision` (a resolved one)."""
    if precision == "bf16":
        import torch  # see resolve_precision

        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
            yield
    else:
        yield


# Multiply-adds one core can issue per cycle, by number format and the best instruction set the
# CPU reports, first match wins. x86: two FMA ports (AVX2: 8 fp32 lanes each; AVX-512: 16); bf16
# dot products double the lanes (AVX512-BF16) and AMX's tile unit does 512 bf16 or 1024 int8
# multiply-adds per cycle (Intel's optimisation manual); int8 without VNNI goes through 16-bit
# pair products (vpmaddubsw), twice fp32's rate. ARM: two 128-bit FMA pipes, BFMMLA / SMMLA
# matrix instructions. A format a CPU lacks runs emulated at no more than its fp32 rate.
_PEAK_MACS_PER_CYCLE = {
    "fp32": [("avx512f", 32), ("avx2", 16), ("asimd", 8), ("sse2", 4)],
    "bf16": [("amx_bf16", 512), ("avx512_bf16", 64), ("bf16", 32)],
    "int8": [("amx_int8", 1024), ("avx512_vnni", 128), ("avx_vnni", 64), ("avx2", 32),
             ("i8mm", 64), ("asimddp", 32)],
}


def cpu_clock_hz() -> float | None:
    """The CPU's top clock (cpufreq's maximum), else the clock /proc/cpuinfo reports now."""
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", encoding="ascii") as handle:
            return int(handle.read().strip()) * 1e3
    except (OSError, ValueError):
        pass
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "cpu MHz":
                    return float(value) * 1e6
    except (OSError, ValueError):
        pass
    return None


def peak_macs(number_format: str = "fp32", threads: int = 1) -> dict[str, object]:
    """This CPU's peak multiply-add rate in `number_format` (fp32, bf16, int8) on `threads`
    cores: per-cycle width from the instruction sets it reports, times its clock. What a kernel
    can at most reach; the measured sgemm rate says what one actually does."""
    if number_format not in _PEAK_MACS_PER_CYCLE:
        raise E2GANError(f"number format must be one of {', '.join(_PEAK_MACS_PER_CYCLE)}, "
                         f"got {number_format!r}")
    flags = cpu_flags()
    fp32_isa, fp32_width = next(((isa, width) for isa, width in _PEAK_MACS_PER_CYCLE["fp32"]
                                 if isa in flags), ("scalar", 2))
    isa, width = next(((isa, width) for isa, width in _PEAK_MACS_PER_CYCLE[number_format]
                       if isa in flags), (f"{fp32_isa}, {number_format} emulated", fp32_width))
    clock = cpu_clock_hz()
    return {"format": number_format, "instruction_set": isa, "macs_per_cycle_per_core": width,
            "clock_ghz": clock and round(clock / 1e9, 3), "threads": threads,
            "peak_macs_per_s": clock and width * clock * threads}
