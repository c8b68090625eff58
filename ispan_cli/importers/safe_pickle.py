"""Reading a published ``.pth`` checkpoint without ever running code from it.

A ``.pth`` is a pickle, and a pickle may name any Python callable to be called while it loads
(``__reduce__``): that is how a checkpoint runs code on the machine that opens it. PyTorch's
``weights_only=True`` loader calls only an allowlist of tensor-rebuilding functions and refuses
every other name; MMAction2's checkpoints carry more than tensors in their ``meta`` (NumPy scalars,
mmengine config and history objects), which it therefore refuses. Here every such name is bound,
for this one load, to :class:`Placeholder`: an inert stand-in that records the arguments it was
given and does nothing else (NumPy's scalar, dtype and array rebuilders, which only build data,
are allowed as themselves). So ``os.system`` in a hostile file becomes a Placeholder holding a
string, and the tensors load as PyTorch's own loader rebuilds them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ispan_cli.errors import ISpanError

_UNSUPPORTED = re.compile(r"GLOBAL (\S+) was not an allowed global")
# PyTorch refuses some modules outright (os, subprocess, ...): such a file is refused whole.
_BLOCKED = re.compile(r"unsupported GLOBAL (\S+) whose module (\S+) is blocked")
_MAX_NAMES = 200  # a checkpoint naming more globals than this is not a model checkpoint


# NumPy's own rebuilders: scalars, dtypes and arrays are data (the torch documentation's list).
_NUMPY = {
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray._reconstruct",
    "numpy.ndarray",
    "numpy.dtype",
}
_NUMPY_DTYPE = re.compile(r"numpy\.dtypes\.\w+DType")


class Placeholder:
    """Stands in for a global a checkpoint names: calling it runs nothing and gives an empty
    ``OrderedDict`` tagged with the name (``placeholder_for``) and the arguments it was given.

    An OrderedDict because PyTorch's loader lets only plain dicts take items and only
    OrderedDicts take attributes: a config object (a dict subclass) fills it like a dict, any
    other object's state lands in its attributes.
    """

    name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        from collections import OrderedDict

        inert: Any = OrderedDict()
        inert.placeholder_for = cls.name
        inert.placeholder_args = args
        return inert


def _stand_in(name: str) -> Any:
    if name in _NUMPY or _NUMPY_DTYPE.fullmatch(name):
        import importlib

        module, _, attr = name.rpartition(".")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            pass  # another NumPy version: the name is inert data either way
    return type("Placeholder", (Placeholder,), {"name": name, "__module__": __name__})


def _numpy_dtype_classes() -> list[Any]:
    """NumPy's dtype classes: ``numpy.dtype("int64")`` is built as an instance of one of them,
    which PyTorch's loader lets take state only when the class itself is allowed."""
    try:
        import numpy.dtypes
    except ImportError:  # NumPy < 1.25 has no dtype classes
        return []
    return [
        getattr(numpy.dtypes, n)
        for n in dir(numpy.dtypes)
        if _NUMPY_DTYPE.fullmatch(f"numpy.dtypes.{n}")
    ]


def load_checkpoint(path: Path) -> Any:
    """The object in ``path`` (a PyTorch zip or legacy checkpoint), tensors on the CPU, every
    non-tensor global replaced by a :class:`Placeholder`."""
    import pickle

    import torch

    names: dict[str, Any] = {}
    while True:
        allowed = _numpy_dtype_classes() + [(obj, name) for name, obj in names.items()]
        # PyTorch's message drops the "builtins." of a builtin's name (``getattr``, which
        # mmengine's HistoryBuffer pickles for its statistics methods): allow it under both
        allowed += [(obj, f"builtins.{name}") for name, obj in names.items()]
        try:
            with torch.serialization.safe_globals(allowed):
                return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            blocked = _BLOCKED.search(str(exc))
            if blocked is not None:
                raise ISpanError(
                    f"{path} names {blocked[1]} (of the {blocked[2]} module, which runs programs "
                    "or touches files): refused, and nothing in it was run; this is not a plain "
                    "model checkpoint, so get the file from its publisher again"
                ) from exc
            match = _UNSUPPORTED.search(str(exc))
            if match is None or match[1] in names or len(names) >= _MAX_NAMES:
                raise _unreadable(path, exc) from exc
            names[match[1]] = _stand_in(match[1])
        except (RuntimeError, EOFError, OSError, ValueError) as exc:
            raise _unreadable(path, exc) from exc


def _unreadable(path: Path, exc: BaseException) -> ISpanError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ISpanError(
        f"{path} is not a readable PyTorch checkpoint ({first[:300]}); give the .pth file as "
        "published (a truncated download is resumed by running the import again)"
    )
