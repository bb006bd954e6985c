"""Weights-only checkpoint loading, ESPnet's loaders included.

``torch.load(..., weights_only=False)`` unpickles arbitrary objects, so a checkpoint from
the internet can run code. The plugin's own loads pass ``weights_only=True``; ESPnet's
``load_pretrained_model`` (``--init_param``), the trainer's resume
(``Trainer.resume``), n-best averaging (``average_nbest_models``) and
``AbsTask.build_model_from_file`` pass ``weights_only=False``. :func:`install` points
the ``torch`` those modules see at a proxy whose ``load`` always loads weights only; the
rest of ``torch`` is untouched.
"""

import importlib
import types
from typing import Any

import torch

# ESPnet modules that call torch.load on files a user may have downloaded.
ESPNET_LOADERS = (
    "espnet2.torch_utils.load_pretrained_model",
    "espnet2.train.trainer",
    "espnet2.main_funcs.average_nbest_models",
    "espnet2.tasks.abs_task",
)


NUMERIC_DTYPE_CLASSES = {
    "Bool", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
    "Float16", "Float32", "Float64", "Complex64", "Complex128", "Long", "ULong",
    "Short", "UShort", "Byte", "UByte", "Int", "UInt", "LongLong", "ULongLong",
}


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds objects other than tensors and plain containers."""


def _numpy_scalar(dtype, data=None):
    """``numpy._core.multiarray.scalar`` for numeric dtypes only: an object-dtype scalar
    built from raw bytes would read a pointer from the file."""
    import numpy as np

    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc" or dtype.hasobject:
        raise UnsafeCheckpointError(f"refused a numpy scalar of dtype {dtype!r}")
    return np._core.multiarray.scalar(dtype, data)


def _allowed_globals() -> list:
    """What ESPnet's training state holds beyond tensors: the reporter's numpy scalars and
    elapsed times (``datetime.timedelta``)."""
    import datetime

    import numpy as np

    return [
        (_numpy_scalar, "numpy._core.multiarray.scalar"),
        (_numpy_scalar, "numpy.core.multiarray.scalar"),  # written by numpy < 2
        np.dtype,
        datetime.timedelta,
    ] + [  # the dtype classes pickled with numpy >= 1.25 (numeric ones only)
        getattr(np.dtypes, n)
        for n in dir(np.dtypes)
        if n.endswith("DType") and n[:-5] in NUMERIC_DTYPE_CLASSES
    ]


def weights_only_load(f, *args, **kwargs) -> Any:
    """``torch.load`` with ``weights_only=True`` whatever the caller asked for; numeric
    numpy scalars and ``timedelta`` (ESPnet's reporter state) are allowed too."""
    kwargs["weights_only"] = True
    try:
        with torch.serialization.safe_globals(_allowed_globals()):
            return torch.load(f, *args, **kwargs)
    except Exception as e:  # torch raises UnpicklingError naming the refused global
        if "Weights only load failed" in str(e) or "Unsupported global" in str(e):
            raise UnsafeCheckpointError(
                f"{f}: refused to load: it holds Python objects beyond tensors and plain "
                f"containers (loading is weights-only; see SECURITY.md). {str(e).splitlines()[0]}"
            ) from e
        raise


class _TorchWithSafeLoad(types.ModuleType):
    """The ``torch`` module, except that ``load`` is :func:`weights_only_load`."""

    def __init__(self):
        super().__init__("torch")

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    load = staticmethod(weights_only_load)


SAFE_TORCH = _TorchWithSafeLoad()


def install() -> None:
    """Make ESPnet's checkpoint loaders weights-only (idempotent)."""
    for name in ESPNET_LOADERS:
        module = importlib.import_module(name)
        if getattr(module, "torch", None) is not SAFE_TORCH:
            module.torch = SAFE_TORCH


def installed() -> bool:
    """True when every ESPnet loader of :data:`ESPNET_LOADERS` is weights-only."""
    return all(importlib.import_module(n).torch is SAFE_TORCH for n in ESPNET_LOADERS)
