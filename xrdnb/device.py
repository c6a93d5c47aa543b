"""Which PyTorch device a computation runs on: one rule for sweeps, chapters and CHGNet.

>>> resolve_device("cpu")
'cpu'
"""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device | None = "cpu") -> str:
    """``device`` as a torch device string, or a ValueError that says why it cannot be used.

    Parameters
    ----------
    device
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``, a :class:`torch.device`, or ``"auto"`` / ``None``
        (CUDA when PyTorch sees a GPU, else the CPU).

    Returns
    -------
    str
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Raises
    ------
    ValueError
        for a name that is not a torch device, a device other than CPU or CUDA, CUDA when
        PyTorch sees no GPU, or a GPU index beyond those visible.
    """
    if device is None or str(device) == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device {device!r} is not a torch device: {exc}") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} asked for, but this torch ({torch.__version__}) sees no CUDA GPU")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {str(device)!r} asked for, but only {torch.cuda.device_count()} CUDA GPU(s) are visible"
            )
    elif parsed.type != "cpu":
        raise ValueError(f"device {str(device)!r}: xrdnb runs on 'cpu' or 'cuda'")
    return str(parsed)
