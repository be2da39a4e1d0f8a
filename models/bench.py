#!/usr/bin/env python3
"""CPU speed of each bundle per frame: eager vs TorchScript vs the shipped (frozen,
channels_last) module, thread counts, input layouts and grad modes.

    .venv/bin/python models/bench.py                                  # everything (minutes)
    .venv/bin/python models/bench.py camvid-espnet --sizes 360x480 --repeats 20

Each variant runs `--warmup` untimed calls (TorchScript's profiling executor optimises during the
first calls), then the variants are timed in turn for `--repeats` rounds (round-robin, so that
load from other processes spreads over all of them); the table gives the minimum and the median
in ms. Minimums are the figures to compare on a shared machine. Prints a markdown table.

Variants (all under torch.inference_mode unless said):
  eager                 nn.Module, NCHW
  eager+cl              nn.Module, weights and activations channels_last
  script                torch.jit.script, NCHW, not frozen
  script+freeze         torch.jit.freeze of the above, NCHW
  script+freeze+cl      frozen, channels_last inside the module (what export.py ships)
  optimize_for_inference(+cl)  torch.jit.optimize_for_inference (freeze + MKLDNN passes)
  bundle                the shipped model.pt through torch.jit.load, contiguous NCHW uint8 input
  bundle hwc-view       same, input = an HWC frame buffer permuted to [1,3,H,W] (no copy)
  bundle grad-mode      same, without inference_mode/no_grad
  bundle 1 thread       same as `bundle` with torch.set_num_threads(1)
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vss_models import bundle, torchscript, zoo  # noqa: E402

MAX_SECONDS_PER_VARIANT = 20.0  # rounds stop early (after 2) when slow variants eat this budget


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def parse_size(text: str) -> List[int]:
    h, w = (int(v) for v in text.lower().split("x"))
    return [h, w]


def round_up(size: List[int], multiple: int) -> List[int]:
    return [-(-s // multiple) * multiple for s in size]


def variants(name: str) -> Dict[str, Callable[[], Callable[[torch.Tensor], object]]]:
    """Variant name -> builder of a callable taking the uint8 NCHW frame. Bundles trained here
    (no eager port in the zoo) have only the shipped-module variants."""

    def shipped():
        return bundle.read(name).load_module()

    shipped_variants = {
        "bundle": shipped,
        "bundle hwc-view": shipped,
        "bundle grad-mode": shipped,
        "bundle 1 thread": shipped,
    }
    if name not in zoo.SPECS:
        return shipped_variants
    spec = zoo.SPECS[name]

    def eager(cl: bool):
        return lambda: torchscript.image_module(spec, channels_last=cl)

    def script(freeze: bool, cl: bool):
        return lambda: torchscript.to_torchscript(
            torchscript.image_module(spec, channels_last=cl), freeze=freeze
        )

    def optimized(cl: bool):
        return lambda: torch.jit.optimize_for_inference(
            torch.jit.script(torchscript.image_module(spec, channels_last=cl))
        )

    return {
        "eager": eager(False),
        "eager+cl": eager(True),
        "script": script(False, False),
        "script+freeze": script(True, False),
        "script+freeze+cl": script(True, True),
        "optimize_for_inference": optimized(False),
        "optimize_for_inference+cl": optimized(True),
        **shipped_variants,
    }


class Runner:
    """One variant, built and with its input frame, ready to time."""

    def __init__(self, variant: str, module, size: List[int]):
        self.variant = variant
        self.module = module
        self.grad = variant.endswith("grad-mode")
        self.threads_override = 1 if variant.endswith("1 thread") else None
        gen = torch.Generator().manual_seed(0)
        if variant.endswith("hwc-view"):
            hwc = torch.randint(0, 256, (1, size[0], size[1], 3), dtype=torch.uint8, generator=gen)
            self.frame = hwc.permute(0, 3, 1, 2)  # a packed RGB buffer as [1,3,H,W], no copy
        else:
            self.frame = torch.randint(0, 256, (1, 3, *size), dtype=torch.uint8, generator=gen)
        self.samples: List[float] = []

    def call(self) -> float:
        start = time.perf_counter()
        if self.grad:
            self.module(self.frame)
        else:
            with torch.inference_mode():
                self.module(self.frame)
        return time.perf_counter() - start


def build_runner(variant: str, build, size: List[int]) -> Optional[Runner]:
    try:
        return Runner(variant, build(), size)
    except Exception as e:  # a pass that does not apply to this network is a result too
        print(
            f"  {variant}: build failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}", file=sys.stderr
        )
        return None


def time_round_robin(runners: List[Runner], threads: int, warmup: int, repeats: int) -> None:
    """Calls the variants in turn, `repeats` rounds, so that load from other processes on a
    shared machine spreads over all of them instead of penalising whichever ran at a bad time."""
    torch.set_num_threads(threads)
    live = []
    for r in runners:
        try:
            for _ in range(warmup):
                r.call()
            live.append(r)
        except Exception as e:
            print(
                f"  {r.variant}: run failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}",
                file=sys.stderr,
            )
    end = time.perf_counter() + MAX_SECONDS_PER_VARIANT * max(1, len(live))
    for i in range(repeats):
        for r in live:
            r.samples.append(r.call())
        if i >= 1 and time.perf_counter() > end:
            break


def main(argv=None) -> int:
    # As vsssegment's libtorch thread does (src/model/executor.rs): denormals cost ~3x on Intel.
    # Before any torch work: the flag is per thread, and OpenMP's workers copy it from this
    # thread when they start; building the variants starts them (set later, 2 threads ran
    # 184x240 3x slower than one).
    torch.set_flush_denormal(True)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "bundles", nargs="*", help=f"default: {list(zoo.SPECS)}; any shipped image bundle name works"
    )
    parser.add_argument(
        "--sizes", default="360x480,720x960", help="HxW list (rounded up to the size multiple)"
    )
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    parser.add_argument("--variants", help="comma-separated subset of the variants")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    names = args.bundles or list(zoo.SPECS)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    wanted = args.variants.split(",") if args.variants else None

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"command: {' '.join(shlex.quote(a) for a in [sys.executable, *sys.argv])}")
    print(f"machine: {cpu_model()}, {cores} cores usable, load average {os.getloadavg()[0]:.2f} at start")
    print(
        f"torch {torch.__version__}, MKL-DNN {torch.backends.mkldnn.is_available()}, "
        f"python {platform.python_version()}"
    )
    print(f"warmup {args.warmup}, repeats {args.repeats}; times in ms per frame (min / median)\n")
    print("| bundle | size | variant | threads | min ms | median ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in names:
        multiple = zoo.SPECS[name].size_multiple if name in zoo.SPECS else bundle.read(name).size_multiple
        for size in sizes:
            size = round_up(size, multiple)
            runners = [
                build_runner(variant, build, size)
                for variant, build in variants(name).items()
                if not wanted or variant in wanted
            ]
            built = [r for r in runners if r is not None]
            time_round_robin(
                [r for r in built if r.threads_override is None], args.threads, args.warmup, args.repeats
            )
            time_round_robin([r for r in built if r.threads_override == 1], 1, args.warmup, args.repeats)
            for r in built:
                threads = r.threads_override or args.threads
                if r.samples:
                    row = f"{1000 * min(r.samples):.1f} | {1000 * statistics.median(r.samples):.1f}"
                else:
                    row = "failed | failed"
                print(f"| {name} | {size[0]}x{size[1]} | {r.variant} | {threads} | {row} |", flush=True)
    print(f"\nload average {os.getloadavg()[0]:.2f} at end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
