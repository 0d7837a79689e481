"""The training step's budget: where its FLOPs and seconds go, against what the cores can do.

For each resolution, the Twin-GAN step of a preset (full resolution, alpha 1, synthetic uint8
batches so the figure is the model's, not the disk's):
- the cores' ceiling: one 64 -> 64 3x3 convolution, batch 16, 64 x 64, forward, and a 2048^2
  matmul, in fp32 and (where the CPU computes it natively) bf16;
- the step: FLOPs per image (torch.utils.flop_counter on a step without the lazy penalty: the
  counter cannot follow the penalty's double backward), images/s over whole multiples of
  loss.penalty_every steps (so the penalty's share is in), and its rate against the ceiling;
- the networks' forward passes per step: calls, FLOPs and seconds of the encoder, the generator,
  each critic and PatchNCE (forward hooks; the CPU runs synchronously, so wall time is theirs);
- the step's stages by torch.profiler scope (generator forward / backward / optimiser, EMA, critic
  forward / backward / optimiser, the rest: augmentation and glue), and its time by kind of
  operator: convolutions (compute-bound) against normalisation and element-wise maths (bound by
  memory), which is where a step falls short of the convolution rate.

    python tools/bench_step_budget.py --resolutions 64 128
    python tools/bench_step_budget.py --resolutions 64 runtime.precision=fp32

What each loss costs is measured by switching it off (tools/bench_ab.py), not here: a loss's
share of the backward pass cannot be separated inside one graph.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import tempfile
import time
from pathlib import Path

import torch
from bench_train import make_trainer, synthetic_batches
from torch import nn
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

STAGES = ("generator forward", "generator backward", "generator optimiser", "EMA",
          "critic forward", "critic backward", "critic optimiser")
KINDS = {
    "convolution forward": ("convolution", "mkldnn_convolution", "conv2d", "_convolution"),
    "convolution backward": ("convolution_backward",),
    "normalisation": ("batch_norm", "native_batch_norm", "native_batch_norm_backward", "instance_norm"),
    "matmul": ("mm", "addmm", "bmm", "linear"),
    "optimiser kernels": ("_fused_adam_", "_foreach_", "lerp_"),
}


def machine() -> str:
    """CPU model, its vector extensions that matter here, torch and threads."""
    model = "unknown CPU"
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    shown = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return (f"{model} ({', '.join(shown) or 'no AVX2'}), torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads")


def _median_seconds(fn, repeats: int = 7) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ceilings() -> dict[str, float]:
    """GFLOP/s of the reference convolution and matmul, fp32 and native bf16."""
    found = {}
    dtypes = [torch.float32]
    if torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported():
        dtypes.append(torch.bfloat16)
    for dtype in dtypes:
        name = "fp32" if dtype == torch.float32 else "bf16"
        conv = nn.Conv2d(64, 64, 3, padding=1).to(dtype=dtype, memory_format=torch.channels_last)
        x = torch.randn(16, 64, 64, 64, dtype=dtype).contiguous(memory_format=torch.channels_last)
        flops = 2 * 16 * 64 * 64 * 64 * 64 * 9
        with torch.no_grad():
            found[f"conv {name}"] = flops / _median_seconds(lambda: conv(x)) / 1e9
        a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
        found[f"matmul {name}"] = 2 * 2048**3 / _median_seconds(lambda: a @ b) / 1e9
    return found


def _networks(recipe) -> dict[str, nn.Module]:
    found = {"encoder": recipe.net.encoder, "generator": recipe.net.generator,
             "critic a": recipe.discs[0], "critic b": recipe.discs[1]}
    if recipe.nce is not None:
        found["PatchNCE"] = recipe.nce
    return found


def forward_passes(trainer, phase, batches) -> dict[str, tuple[int, float, float]]:
    """Per network: forward calls in one step, their FLOPs and their seconds.

    Seconds come from hooks round each call (the CPU runs synchronously). FLOPs come from running
    each captured call again under the counter, without gradients: the counter's own per-module
    split puts backward FLOPs on whichever module it saw last."""
    calls: dict[str, list] = collections.defaultdict(list)
    seconds: dict[str, float] = collections.Counter()
    started: dict[str, float] = {}
    handles = []
    for name, module in _networks(trainer.recipe).items():
        def before(_module, args, kwargs, name=name):
            calls[name].append((args, kwargs))
            started[name] = time.perf_counter()

        def after(_module, _args, _output, name=name):
            seconds[name] += time.perf_counter() - started[name]

        handles += [module.register_forward_pre_hook(before, with_kwargs=True), module.register_forward_hook(after)]
    trainer.step(*batches, phase)
    for handle in handles:
        handle.remove()
    found = {}
    for name, module in _networks(trainer.recipe).items():
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), trainer.recipe.ctx.autocast(), counter:
            for args, kwargs in calls[name]:
                module(*args, **kwargs)
        found[name] = (len(calls[name]), float(counter.get_total_flops()), seconds[name])
    return found


def step_flops(trainer, phase, batches) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        trainer.step(*batches, phase)
    return float(counter.get_total_flops())


def _kind(op: str) -> str:
    """The KINDS entry of an operator: its name, or a prefix ending in "_" (`_foreach_lerp_`)."""
    for kind, names in KINDS.items():
        if op in names or any(n.endswith("_") and op.startswith(n) for n in names):
            return kind
    return "element-wise and other"


def profile_step(step, steps: int) -> tuple[dict[str, float], dict[str, float], float]:
    """Seconds per step by scope and by kind of operator (self time), and the profiled total."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        total = time.perf_counter() - start
    events = prof.key_averages()
    stages = {e.key: e.cpu_time_total / 1e6 / steps for e in events if e.key in STAGES}
    kinds: dict[str, float] = collections.Counter()
    for e in events:
        if e.key in STAGES or e.key.startswith("Optimizer.") or e.key.startswith("autograd::"):
            continue
        kinds[_kind(e.key.removeprefix("aten::"))] += e.self_cpu_time_total / 1e6 / steps
    return stages, dict(kinds), total / steps


def budget(preset: str, resolution: int, steps: int, overrides: list[str], ceiling: dict[str, float]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(preset, resolution, "cpu", overrides, Path(tmp))
        phase = trainer.phases[-1]
        batches = synthetic_batches(trainer, phase, resolution)
        batch = batches[0].shape[0]
        lazy = getattr(trainer.cfg.loss, "penalty_every", 1)
        steps = -(-steps // lazy) * lazy

        def step() -> None:
            trainer.step(*batches, phase)
            trainer.counters.images_seen += batch

        for _ in range(3):
            step()
        while (trainer.counters.images_seen // batch) % lazy == 0:  # count FLOPs on an unpenalised step
            step()
        flops = step_flops(trainer, phase, batches) / batch
        passes = forward_passes(trainer, phase, batches)
        trainer.counters.images_seen = 0
        start = time.perf_counter()
        for _ in range(steps):
            step()
        seconds = (time.perf_counter() - start) / steps
        stages, kinds, profiled = profile_step(step, lazy)

    precision = trainer.precision
    rate = flops * batch / seconds / 1e9
    reference = ceiling[f"conv {precision}"] if f"conv {precision}" in ceiling else ceiling["conv fp32"]
    print(f"\n## {preset} at {resolution} px, batch {batch}, {precision}")
    print(f"step: {flops / 1e9:.2f} GFLOP per image, {batch / seconds:.2f} images/s, {rate:.1f} GFLOP/s sustained "
          f"= {100 * rate / reference:.0f}% of the {precision} convolution rate ({reference:.0f} GFLOP/s)")
    print("\n| forward pass | calls per step | GFLOP per image | ms per step | GFLOP/s |")
    print("|---|---|---|---|---|")
    for name, (calls, network_flops, network_seconds) in passes.items():
        print(f"| {name} | {calls} | {network_flops / batch / 1e9:.3f} | {1e3 * network_seconds:.1f} | "
              f"{network_flops / max(network_seconds, 1e-9) / 1e9:.1f} |")
    forward = sum(f for _, f, _ in passes.values())
    forward_ms = 1e3 * sum(s for *_, s in passes.values())
    print(f"| all forward passes | - | {forward / batch / 1e9:.3f} | {forward_ms:.1f} | - |")
    print(f"| backward passes (the rest of the step's FLOPs) | - | {flops / 1e9 - forward / batch / 1e9:.3f} | "
          f"- | - |")
    print(f"\n| stage (profiled, {lazy} steps with one penalty) | ms per step | share |")
    print("|---|---|---|")
    for name in STAGES:
        print(f"| {name} | {1e3 * stages.get(name, 0):.1f} | {100 * stages.get(name, 0) / profiled:.0f}% |")
    rest = profiled - sum(stages.values())
    print(f"| rest (augmentation, loop, bookkeeping) | {1e3 * rest:.1f} | {100 * rest / profiled:.0f}% |")
    print("\n| kind of operator (self time) | ms per step | share |")
    print("|---|---|---|")
    for name, value in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {1e3 * value:.1f} | {100 * value / profiled:.0f}% |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="twingan_cpu_64")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--steps", type=int, default=16, help="timed steps, rounded up to loss.penalty_every")
    parser.add_argument("overrides", nargs="*", help="extra section.key=value overrides")
    args = parser.parse_args()
    print(machine())
    ceiling = ceilings()
    print("ceilings: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in ceiling.items()))
    for resolution in args.resolutions:
        budget(args.preset, resolution, args.steps, args.overrides, ceiling)


if __name__ == "__main__":
    main()
