"""Builds the kernel library (``csrc/``) with the system C++ compiler into a cache, once.

``python -m nas.runtime.build`` builds it ahead of time (``make install``/``make test`` do); the
kernels otherwise build it at first use. The library is plain C++ loaded with ctypes, no torch
headers, so a build takes seconds. Each instruction set's kernels are compiled from the same
source with their own target flags, never ``-march=native``; the library holds every path this
machine architecture can have and picks one at run time, so the CPU does not change what is
built and a cache shared by different x86 machines stays valid.

Cache: ``$BIMTDP_KERNEL_CACHE``, else ``$XDG_CACHE_HOME/bimtdp-nas/kernels``, else
``~/.cache/bimtdp-nas/kernels``; one file per key (sources, compiler identity, flags, machine).
Builds happen in a private temporary folder and land with ``os.replace``, so two processes
building at once each produce a whole library and the last rename wins.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["ENV_CACHE", "build", "cache_dir", "load"]

ENV_CACHE = "BIMTDP_KERNEL_CACHE"
SOURCES = Path(__file__).with_name("csrc")
_COMMON_FLAGS = ("-O3", "-std=c++17", "-fPIC", "-fvisibility=hidden", "-fno-exceptions", "-fno-rtti",
                 "-ffp-contract=off")  # no FMA: the epilogue rounds once per op, as torch does
#: Per-ISA target flags of the kernel source; x86 only for the vector paths.
_ISA_FLAGS: dict[str, tuple[str, ...]] = {
    "avx512": ("-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mavx512vpopcntdq"),
    "avx2": ("-mavx2", "-mpopcnt"),
    "portable": (),
}


def _isas() -> tuple[str, ...]:
    x86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
    return tuple(_ISA_FLAGS) if x86 else ("portable",)


def cache_dir() -> Path:
    """Where built libraries are kept (see the module docstring)."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "bimtdp-nas" / "kernels"


def _compiler() -> str:
    return os.environ.get("CXX") or "c++"


def _key(compiler: str) -> str:
    """Hash of everything the library depends on; raises OSError when there is no compiler."""
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60, check=True).stdout
    digest = hashlib.sha256()
    for item in (version, shutil.which(compiler) or compiler, platform.machine(), repr(_COMMON_FLAGS), repr(_ISA_FLAGS)):
        digest.update(item.encode() + b"\0")
    for source in sorted(SOURCES.iterdir()):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:16]


def _run(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _first_error(output: str) -> str:
    lines = [line for line in output.splitlines() if "error" in line] or output.splitlines() or ["(no output)"]
    return lines[0].strip()


def build(*, force: bool = False) -> Path:
    """The library's path, compiling it first when the cache lacks it.

    Raises OSError (no compiler) or RuntimeError (compile error) with a one-line reason.
    """
    compiler = _compiler()
    try:
        key = _key(compiler)
    except (OSError, subprocess.SubprocessError) as error:
        raise OSError(f"no C++ compiler {compiler!r}: {error}") from None
    target = cache_dir() / f"libbimtdp_kernels-{key}.so"
    if target.exists() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
        objects, jobs = [], []
        for name in _isas():  # one object per ISA, compiled in parallel
            obj = Path(tmp) / f"bconv_{name}.o"
            defines = [f"-DBIMTDP_ISA_{name.upper()}"]
            jobs.append(_run([compiler, *_COMMON_FLAGS, *_ISA_FLAGS[name], *defines, "-c", str(SOURCES / "bconv.cpp"), "-o", str(obj)]))
            objects.append(obj)
        dispatch = Path(tmp) / "dispatch.o"
        jobs.append(_run([compiler, *_COMMON_FLAGS, "-c", str(SOURCES / "dispatch.cpp"), "-o", str(dispatch)]))
        for job in jobs:
            output, _ = job.communicate(timeout=600)
            if job.returncode:
                raise RuntimeError(f"kernel compile failed: {_first_error(output)}")
        library = Path(tmp) / target.name
        link = _run([compiler, "-shared", "-o", str(library), str(dispatch), *map(str, objects)])
        output, _ = link.communicate(timeout=600)
        if link.returncode:
            raise RuntimeError(f"kernel link failed: {_first_error(output)}")
        os.replace(library, target)
    return target


def load() -> tuple[ctypes.CDLL | None, str]:
    """The loaded library and ``""``, or ``None`` and why it is unavailable (one line)."""
    try:
        return ctypes.CDLL(str(build())), ""
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:
        return None, str(error).splitlines()[0]


def main() -> int:
    """Build (or find) the library; print where, how long it took and the paths this CPU runs."""
    start = time.perf_counter()
    try:
        path = build(force="--force" in sys.argv[1:])
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:
        print(f"bimtdp kernels: not built: {error}", file=sys.stderr)
        return 1
    library = ctypes.CDLL(str(path))
    runnable = [name for name in _isas() if library.bimtdp_cpu_supports(name.encode())]
    print(f"bimtdp kernels: {path} ({time.perf_counter() - start:.1f} s); this CPU runs {', '.join(runnable)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
