"""Builds pyh2._core from the C core (csrc/) and its Cython binding.
The package's metadata is in pyproject.toml."""
import glob
import subprocess

from Cython.Build import cythonize
from setuptools import Extension, setup


def pkg_config_includes(lib):
    """lib's include directories, or an exit naming what to install."""
    try:
        out = subprocess.run(["pkg-config", "--cflags-only-I", lib], capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemExit(f"pkg-config cannot find {lib} ({e}): install pkg-config and "
                         f"lib{lib}-dev (scripts/setup.sh does)") from None
    return [f[2:] for f in out.split()]


core = Extension(
    "pyh2._core",
    sources=["pyh2/_core.pyx"] + sorted(glob.glob("csrc/*.c")),
    include_dirs=["csrc"] + pkg_config_includes("fuse3"),
    libraries=["lz4", "z", "crypto", "xxhash", "pthread", "fuse3"],
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wno-unused-function"],
)

setup(
    ext_modules=cythonize([core], language_level=3),
)
