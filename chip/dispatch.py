"""One name per op, one implementation per backend, and an explicit override for tests.

`dispatch("rms_norm", "cpu")` returns the best registered implementation for that device kind,
falling back to the torch reference. `override("rms_norm", fn)` forces one inside a `with` block.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

# op name -> backend ("reference", "cpu", "cuda") -> implementation
_REGISTRY: dict[str, dict[str, Callable]] = {}
_OVERRIDES: dict[str, Callable] = {}


def register(op: str, backend: str) -> Callable[[Callable], Callable]:
    """Decorator: register `fn` as the `backend` implementation of `op`."""
    if backend not in ("reference", "cpu", "cuda"):
        raise ValueError(f"unknown backend {backend!r}")

    def wrap(fn: Callable) -> Callable:
        _REGISTRY.setdefault(op, {})[backend] = fn
        return fn

    return wrap


def dispatch(op: str, device: str = "cpu") -> Callable:
    """The implementation of `op` to use on `device` ('cpu', 'cuda', 'cuda:0', or a torch.device)."""
    _ensure_loaded()
    if op in _OVERRIDES:
        return _OVERRIDES[op]
    impls = _REGISTRY.get(op)
    if not impls:
        raise KeyError(f"unknown op {op!r}; known: {', '.join(sorted(_REGISTRY))}")
    kind = str(device).split(":")[0]
    return impls.get(kind) or impls["reference"]


def implementations(op: str) -> dict[str, Callable]:
    _ensure_loaded()
    return dict(_REGISTRY[op])


@contextlib.contextmanager
def override(op: str, fn: Callable | str) -> Iterator[None]:
    """Force `op` to `fn` (a callable or a backend name such as 'reference') inside the block."""
    _ensure_loaded()
    impl = _REGISTRY[op][fn] if isinstance(fn, str) else fn
    previous = _OVERRIDES.get(op)
    _OVERRIDES[op] = impl
    try:
        yield
    finally:
        if previous is None:
            _OVERRIDES.pop(op, None)
        else:
            _OVERRIDES[op] = previous


def _ensure_loaded() -> None:
    # Importing the ops package runs every op file's @register decorators.
    import chip.ops  # noqa: F401
