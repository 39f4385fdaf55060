"""Builds pyh2._core from the C core (csrc/) and its Cython binding."""
import glob
import subprocess

from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

core = Extension(
    "pyh2._core",
    sources=["pyh2/_core.pyx"] + sorted(glob.glob("csrc/*.c")),
    include_dirs=["csrc"] + [f[2:] for f in subprocess.run(
        ["pkg-config", "--cflags-only-I", "fuse3"], capture_output=True, text=True,
        check=True).stdout.split()],
    libraries=["lz4", "z", "crypto", "xxhash", "pthread", "fuse3"],
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wno-unused-function"],
)

setup(
    name="pyh2",
    version="0.1.0",
    description="DragonFly BSD's HAMMER2 core (cluster, chain, DIO) in userspace, driven from Python",
    packages=find_packages(include=["pyh2", "pyh2.*"]),
    ext_modules=cythonize([core], language_level=3),
    entry_points={"console_scripts": ["pyh2 = pyh2.cli:main"]},
    python_requires=">=3.9",
)
