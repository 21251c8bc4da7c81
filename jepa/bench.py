"""``jepa bench --config FILE``: training-step throughput, FLOP/s, MFU and peak memory, as one JSON line.

The timed step is the training step of ``jepa pretrain`` (the module's loss with its objective,
the same optimizer groups and schedules, the objective's after-step work such as the EMA update) on
synthetic images or clips with the run's real masks (I-JEPA multi-block, V-JEPA 3-D blocks or tubes), so
data loading is left out. MFU is measured against a matmul peak measured on the same device in the
same dtype.
"""

from __future__ import annotations

import itertools
import resource
import tempfile
import time
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from .errors import JEPAError
from .masks.collator import mask_groups


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_flops(device: torch.device, dtype: torch.dtype, seconds: float = 1.0) -> float:
    """Best FLOP/s of square matmuls on ``device`` in ``dtype`` (the denominator of MFU)."""
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    best, t_end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        for _ in range(5):
            a @ b
        _sync(device)
        best = max(best, 5 * 2 * n**3 / (time.perf_counter() - t0))
    return best


def _precision(trainer_precision: Any, device: torch.device) -> tuple[str, torch.dtype | None]:
    p = str(trainer_precision) if trainer_precision is not None else ("bf16-mixed" if device.type == "cuda" else "32-true")
    if p in ("bf16-mixed", "bf16"):
        return "bf16-mixed", torch.bfloat16
    if p in ("32-true", "32"):
        return "32-true", None
    raise JEPAError(f"jepa bench supports precision 32-true and bf16-mixed, not {p}")


def bench(args: list[str], steps: int, warmup: int, device_name: str) -> dict[str, Any]:
    from .train.run import build_cli

    with tempfile.TemporaryDirectory() as run_dir:
        cli = build_cli([*args, "--run_dir", run_dir, "--trainer.logger", "false"])
    device = torch.device(device_name if device_name != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    precision, autocast_dtype = _precision(cli.config_init["trainer"].get("precision"), device)
    model, data = cli.model.to(device), cli.datamodule
    model.train()
    optimizer = model.configure_optimizers()
    masker = data.masker()
    b, (h, w) = data.batch_size, data.image_size
    gen = torch.Generator().manual_seed(0)
    batches = []
    for step in range(4):  # a few distinct mask draws, as training would see
        groups = [(c.to(device), t.to(device)) for c, t in mask_groups(masker.batch(step, list(range(b))))]
        inputs = torch.randn(b, *data.input_shape, generator=gen)
        views = None
        if data.views is not None:  # the extra crops of multi-view recipes, made as in training
            pixels = torch.randint(0, 256, (b, 3, h, w), generator=gen, dtype=torch.uint8)
            views = data.views.apply(pixels.to(device), data.views.boxes(h, w, 0, step, list(range(b))))
        batches.append((inputs.to(device), groups, views))

    total = warmup + steps + 1

    def train_step(i: int) -> None:
        inputs, groups, views = batches[i % len(batches)]
        model.apply_schedules(optimizer, i, total)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
            loss = model.jepa_loss(inputs, groups, step=i, views=views).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        model.after_optimizer_step(i, total)

    # FLOPs are counted on the eager modules, before any torch.compile.
    with FlopCounterMode(display=False) as counter:
        train_step(0)
    flops_per_step = counter.get_total_flops()
    model.setup("fit")
    for i in range(warmup):
        train_step(i)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    t0 = time.perf_counter()
    for i in range(steps):
        train_step(i)
    _sync(device)
    elapsed = time.perf_counter() - t0
    peak = matmul_peak_flops(device, autocast_dtype or torch.float32)
    achieved = flops_per_step * steps / elapsed
    if device.type == "cuda":
        memory_mb = torch.cuda.max_memory_allocated(device) / 2**20
        device_label = torch.cuda.get_device_name(device)
    else:
        memory_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # peak RSS (KiB on Linux)
        device_label = f"cpu ({torch.get_num_threads()} threads)"
    tokens = model.encoder.patch_embed.proj(batches[0][0][:1]).flatten(2).shape[-1]
    groups = batches[0][1]
    return {
        "device": device_label,
        "objective": model.objective.name,
        "precision": precision,
        "batch_size": b,
        "image_size": [h, w],
        "input_shape": list(data.input_shape),
        "tokens": int(tokens),
        "context_tokens": [int(c.shape[1]) for c, _ in groups],
        "target_tokens": [int(t.shape[1] * t.shape[2]) for _, t in groups],
        "views": {k: len(v) for k, v in (batches[0][2] or {}).items()},
        "steps": steps,
        "step_ms": round(1000 * elapsed / steps, 2),
        ("clips_per_s" if len(data.input_shape) == 4 else "images_per_s"): round(b * steps / elapsed, 2),
        "tokens_per_s": round(b * tokens * steps / elapsed, 1),
        "flops_per_step": flops_per_step,
        "achieved_tflops": round(achieved / 1e12, 4),
        "peak_matmul_tflops": round(peak / 1e12, 4),
        "mfu": round(achieved / peak, 4),
        "peak_memory_mb": round(memory_mb, 1),
    }


def bench_data(args: list[str], steps: int, warmup: int) -> dict[str, Any]:
    """Images/s of the training loader alone (no model): the streaming loader, or the memory cache
    with ``--data.memory_cache true`` (its batches made on the CPU here)."""
    from .train.run import build_cli

    with tempfile.TemporaryDirectory() as run_dir:
        cli = build_cli([*args, "--run_dir", run_dir, "--trainer.logger", "false"])
    data = cli.datamodule
    t0 = time.perf_counter()
    loader = data.train_dataloader()
    # Epoch after epoch: a small dataset (24 clips, 3 batches) ends long before the timed batches do.
    it = (batch for _ in itertools.count() for batch in loader)
    for _ in range(warmup + 1):
        next(it)
    first = time.perf_counter() - t0
    t1 = time.perf_counter()
    for _ in range(steps):
        next(it)
    elapsed = time.perf_counter() - t1
    unit = "clips_per_s" if data.modality == "video" else "images_per_s"
    return {"loader": "memory cache" if data.memory_cache else f"streaming, {data.num_workers} workers",
            "batch_size": data.batch_size, "image_size": list(data.image_size), "input_shape": list(data.input_shape),
            "batches": steps, "start_s": round(first, 2), "batch_ms": round(1000 * elapsed / steps, 2),
            unit: round(data.batch_size * steps / elapsed, 1)}
