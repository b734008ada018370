"""The step's anchor theta0 and the reposition theta0 + alpha * (thetaK - theta0).

Works on the *local* parameter tensors of a rank (FSDP2 `DTensor.to_local()`, FSDP1 flat
shards, or plain tensors): the reposition is element-wise, so doing it shard-locally is
exact and needs no communication.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class ParameterAnchor:
    """One fp32 copy of the local parameters, taken at the start of a training step.

    Args:
        local_params: the rank's local parameter tensors (views of the live weights).
        device: where the copy lives; None keeps each copy on its parameter's device,
            "cpu" keeps it in host memory (zero accelerator memory, one H2D copy per
            tensor at reposition time).
    """

    def __init__(self, local_params: Sequence[torch.Tensor], device: str | torch.device | None = None):
        self._params = list(local_params)
        # page-locked host memory lets the copies back to the accelerator run asynchronously
        pin = device is not None and torch.device(device).type == "cpu" and torch.cuda.is_available()
        with torch.no_grad():
            self._snapshot = [
                torch.empty(p.shape, dtype=torch.float32, device=device or p.device, pin_memory=pin).copy_(p)
                for p in self._params
            ]

    @property
    def nbytes(self) -> int:
        """Bytes held by the snapshot (0 once released)."""
        return sum(t.numel() * t.element_size() for t in self._snapshot)

    @property
    def accelerator_nbytes(self) -> int:
        """Bytes of the snapshot held in accelerator memory (0 for a host-memory anchor)."""
        return sum(t.numel() * t.element_size() for t in self._snapshot if t.device.type != "cpu")

    @torch.no_grad()
    def reposition_(self, alpha: float) -> torch.Tensor:
        """Set every parameter to theta0 + alpha * (theta - theta0), in place, in fp32.

        One pass over the parameters. Returns the local sum of squares of the fast
        displacement theta - theta0 (fp32 scalar on the first parameter's device), so the
        caller can reduce it across ranks into ||thetaK - theta0||.
        """
        if not self._snapshot:
            raise RuntimeError("ParameterAnchor.reposition_ called after release()")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        sq_displacement = torch.zeros((), dtype=torch.float32, device=self._params[0].device)
        for param, theta0 in zip(self._params, self._snapshot, strict=True):
            theta0 = theta0.to(param.device, non_blocking=True)
            theta = param.float()  # the parameter itself when it is fp32 (FSDP master weights)
            sq_displacement += torch.dist(theta, theta0).square()
            # lerp toward theta0 by (1 - alpha): alpha = 1 leaves thetaK bit-exact.
            theta.lerp_(theta0, 1.0 - alpha)
            if theta is not param:
                param.copy_(theta)
        return sq_displacement

    def release(self) -> None:
        """Free the snapshot (the anchor lives for one training step only)."""
        self._snapshot = []
        self._params = []
