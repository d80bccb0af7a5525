"""Step checkpoints of one training, so that a killed long training resumes where it last saved.

A checkpoint holds everything the next step reads: the network and the loss's KD adapters, the
optimiser and its schedule, the minibatch order and its generator, torch's random state (the IB
noise), and what the result accumulates (loss curve, tail loss terms, training seconds). Resuming
from it gives the same weights and metrics as an uninterrupted run with the same thread count and
device (the test checks bit-identity). A checkpoint names the run it belongs to (architecture,
fidelity, seed, threads, device) and is never loaded into another; it is read with ``weights_only=True``, so a file
someone else put there cannot run code.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from analysis.atomic import atomic_write_bytes

__all__ = ["Checkpointing", "capture_state", "restore_state"]

#: Bumped when the saved state changes shape; an older file is then ignored, not misread.
CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class Checkpointing:
    """Save a training's state to ``path`` after every ``every`` steps (and never after the last)."""

    path: Path
    every: int = 100

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"checkpoint every {self.every} steps: must be at least 1")
        object.__setattr__(self, "path", Path(self.path))

    def due(self, done: int, steps: int) -> bool:
        """Whether to save after ``done`` of ``steps`` steps."""
        return done % self.every == 0 and 0 < done < steps

    def load(self, run: Mapping[str, Any]) -> dict[str, Any] | None:
        """The saved state of ``run``, or None when there is none, it is unreadable or another run's."""
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception:  # none yet, or a foreign file: train from the start and overwrite it
            return None
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or state.get("run") != dict(run):
            return None
        return state

    def save(self, run: Mapping[str, Any], state: Mapping[str, Any]) -> None:
        buffer = io.BytesIO()
        torch.save({"format": CHECKPOINT_FORMAT, "run": dict(run), **state}, buffer)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, buffer.getvalue())

    def remove(self) -> None:
        """Delete the checkpoint, and its folder once no other checkpoint is left in it."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        try:
            self.path.parent.rmdir()
        except OSError:  # not empty (another network's checkpoint), or already gone
            pass


def capture_state(parts: Mapping[str, Any], generator: torch.Generator, device: torch.device) -> dict[str, Any]:
    """The state of ``parts`` (anything with ``state_dict``: network, loss, optimiser, schedule),
    of the minibatch ``generator`` and of torch's random numbers (the IB noise) on ``device``."""
    state = {name: part.state_dict() for name, part in parts.items()}
    state["generator"] = generator.get_state()
    state["rng"] = torch.get_rng_state()
    state["cuda_rng"] = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return state


def restore_state(saved: Mapping[str, Any], parts: Mapping[str, Any], generator: torch.Generator, device: torch.device) -> None:
    """Put back what :func:`capture_state` took."""
    for name, part in parts.items():
        part.load_state_dict(saved[name])
    generator.set_state(saved["generator"])
    torch.set_rng_state(saved["rng"])
    if device.type == "cuda":
        torch.cuda.set_rng_state(saved["cuda_rng"], device)
