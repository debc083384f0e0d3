"""A checkpoint folder laid out as transformers saves one, small enough to write per test."""

from __future__ import annotations

import json
from pathlib import Path


def whole_model(folder: Path) -> Path:
    """A model folder as an export leaves it: config and weights."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    save_file({"w": torch.arange(64, dtype=torch.float32)}, str(folder / "model.safetensors"))
    return folder


def whole_checkpoint(folder: Path, step: int) -> Path:
    """Weights, optimizer, scheduler, RNG and, saved last, the trainer state."""
    import torch

    folder.mkdir(parents=True)
    whole_model(folder)
    torch.save({"state": {0: {"exp_avg": torch.zeros(64)}}}, folder / "optimizer.pt")
    torch.save({"last_epoch": step}, folder / "scheduler.pt")
    torch.save({"python": 1}, folder / "rng_state.pth")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return folder
