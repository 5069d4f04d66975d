"""Compile one of this package's C files at first use and load it with ctypes.

Why plain C through ctypes rather than a torch C++ extension: no torch headers (an extension build
takes about a minute and needs ninja), a build of about a second, and ctypes releases the GIL for
the call. The shared object is cached under the flywheel cache dir, keyed by the source, the
compiler and this CPU (it is built with -march=native), and written by atomic rename, so processes
that build at the same time never load a half-written file.

`load(name)` returns None when there is no compiler, the build fails, or FLYWHEEL_NATIVE=0:
callers keep their torch path. `function(name, symbol, argtypes)` is one of its C functions with
its signature declared (an int status return), or None likewise.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from chip.device import cpu_info, default_cache_dir

logger = logging.getLogger(__name__)

SOURCE_DIR = Path(__file__).parent
FLAGS = ["-O3", "-march=native", "-fopenmp-simd", "-fPIC", "-shared", "-pthread", "-std=c11"]
DISABLE_ENV = "FLYWHEEL_NATIVE"


@functools.cache
def load(name: str) -> ctypes.CDLL | None:
    """The compiled `chip/native/<name>.c`, or None (logged once) when it cannot be built."""
    if os.environ.get(DISABLE_ENV, "1") == "0":
        return None
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        logger.warning("no C compiler found: chip/native/%s.c not built, using the torch path", name)
        return None
    source = SOURCE_DIR / f"{name}.c"
    try:
        return ctypes.CDLL(str(_built(source, compiler)))
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        logger.warning("could not build chip/native/%s.c (%s): using the torch path", name,
                       getattr(e, "stderr", None) or e)
        return None


@functools.cache
def function(name: str, symbol: str, argtypes: tuple) -> ctypes._CFuncPtr | None:
    """`symbol` from the compiled `chip/native/<name>.c`, returning a C int, or None."""
    library = load(name)
    if library is None:
        return None
    fn = getattr(library, symbol)
    fn.restype, fn.argtypes = ctypes.c_int, list(argtypes)
    return fn


def _built(source: Path, compiler: str) -> Path:
    key = hashlib.sha256()
    for part in (source.read_bytes(), compiler.encode(), " ".join(FLAGS).encode(),
                 cpu_info.cpu_model().encode(), " ".join(cpu_info.isa_flags()).encode()):
        key.update(part)
    target = default_cache_dir() / "native" / f"{source.stem}-{key.hexdigest()[:16]}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=target.parent, suffix=".so.partial")
    os.close(fd)
    try:
        subprocess.run([compiler, *FLAGS, "-o", partial, str(source), "-lm"], check=True,
                       capture_output=True, text=True, timeout=120)
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    logger.info("built %s", target)
    return target
