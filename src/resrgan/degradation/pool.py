"""The training-pair pool (spec §1.8, upstream ``_dequeue_and_enqueue``)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError


class PairPool:
    """A pool of ``size`` (lq, gt) pairs that mixes batches drawn with different per-batch choices.

    While filling (the first size/B calls) the batch is stored and returned unchanged. Once full,
    every call permutes the whole pool (one ``torch.randperm(size)`` from ``generator``, shared by
    lq and gt), returns slots 0..B-1 (copies) and writes the current batch into those slots.
    ``size`` must be a multiple of the batch size. Storage is allocated on the first call, on the
    batch's device and dtype.
    """

    def __init__(self, size: int = 180) -> None:
        if size < 1:
            raise ConfigError(f"queue_size: {size} must be >= 1")
        self.size = int(size)
        self.ptr = 0
        self.lq: Tensor | None = None
        self.gt: Tensor | None = None

    @property
    def full(self) -> bool:
        return self.lq is not None and self.ptr >= self.size

    @torch.no_grad()
    def push_pop(
        self, lq: Tensor, gt: Tensor, *, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """Put the batch in, get the batch to train on (see the class docstring)."""
        b = lq.shape[0]
        if gt.shape[0] != b:
            raise ValueError(f"PairPool: lq has {b} samples but gt has {gt.shape[0]}")
        if self.size % b:
            raise ConfigError(
                f"queue_size: {self.size} is not divisible by the batch size {b}; "
                f"use a multiple of {b} (e.g. {max(b, self.size // b * b)})"
            )
        if self.lq is None or self.gt is None:
            self.lq = lq.new_zeros((self.size, *lq.shape[1:]))
            self.gt = gt.new_zeros((self.size, *gt.shape[1:]))
            self.ptr = 0
        elif self.lq.shape[1:] != lq.shape[1:] or self.gt.shape[1:] != gt.shape[1:]:
            raise ValueError(
                f"PairPool: batch shapes {tuple(lq.shape[1:])}/{tuple(gt.shape[1:])} differ from "
                f"the pool's {tuple(self.lq.shape[1:])}/{tuple(self.gt.shape[1:])}"
            )
        if self.ptr < self.size:
            self.lq[self.ptr : self.ptr + b] = lq
            self.gt[self.ptr : self.ptr + b] = gt
            self.ptr += b
            return lq, gt
        perm = torch.randperm(self.size, generator=generator).to(self.lq.device)
        self.lq = self.lq[perm]
        self.gt = self.gt[perm]
        out_lq = self.lq[:b].clone()
        out_gt = self.gt[:b].clone()
        self.lq[:b] = lq
        self.gt[:b] = gt
        return out_lq, out_gt

    def state_dict(self) -> dict:
        """Pool contents and fill pointer (tensors on their device), for checkpoints."""
        return {"size": self.size, "ptr": self.ptr, "lq": self.lq, "gt": self.gt}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` output; the size must match this pool's."""
        for key in ("size", "ptr", "lq", "gt"):
            if key not in state:
                raise ValueError(f"PairPool.load_state_dict: missing key '{key}'")
        if int(state["size"]) != self.size:
            raise ValueError(
                f"PairPool.load_state_dict: checkpoint pool size {state['size']} != {self.size}; "
                "resume with the same queue_size"
            )
        lq, gt = state["lq"], state["gt"]
        if (lq is None) != (gt is None) or (
            lq is not None and (lq.shape[0] != self.size or gt.shape[0] != self.size)
        ):
            raise ValueError("PairPool.load_state_dict: lq/gt tensors are missing or mis-sized")
        self.ptr = int(state["ptr"])
        self.lq = None if lq is None else lq.clone()
        self.gt = None if gt is None else gt.clone()
