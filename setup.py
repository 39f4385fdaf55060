"""Builds pyh2._core from the C core (csrc/) and its Cython binding.

Build modes (PYH2_BUILD): `release` (no invariants; the default of a wheel or
`pip install .`), `debug` (invariants, KKASSERT; the default of
`build_ext --inplace`, which tests and torture run), `sanitize` (debug plus
AddressSanitizer and UndefinedBehaviorSanitizer; see scripts/sanitize.sh).
The package's metadata is in pyproject.toml.
"""
import glob
import os
import subprocess

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
            "-fno-omit-frame-pointer"]
MODES = {
    "release": ([], []),
    "debug": (["-DHAMMER2_INVARIANTS", "-g"], []),
    "sanitize": (["-DHAMMER2_INVARIANTS", "-g"] + SANITIZE, SANITIZE),
}


class build_ext_mode(build_ext):
    """build_ext in a PYH2_BUILD mode. A mode change rebuilds everything:
    setuptools alone keeps an extension whose sources are unchanged."""

    def finalize_options(self):
        super().finalize_options()
        self.mode = os.environ.get("PYH2_BUILD") or ("debug" if self.inplace else "release")
        if self.mode not in MODES:
            raise SystemExit(f"PYH2_BUILD={self.mode}: not one of {', '.join(MODES)}")
        self.stamp = os.path.join(os.path.dirname(self.build_temp),
                                  "mode-" + ("inplace" if self.inplace else "lib"))
        self.build_temp = os.path.join(self.build_temp, self.mode)

    def run(self):
        try:
            with open(self.stamp) as f:
                self.force = self.force or f.read() != self.mode
        except FileNotFoundError:
            self.force = True
        cflags, ldflags = MODES[self.mode]
        for ext in self.extensions:
            ext.extra_compile_args += cflags
            ext.extra_link_args += ldflags
        super().run()
        os.makedirs(os.path.dirname(self.stamp), exist_ok=True)
        with open(self.stamp, "w") as f:
            f.write(self.mode)


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
    depends=sorted(glob.glob("csrc/*.h")),
    include_dirs=["csrc"] + pkg_config_includes("fuse3"),
    libraries=["lz4", "z", "crypto", "xxhash", "pthread", "fuse3"],
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wno-unused-function"],
)

setup(
    ext_modules=cythonize([core], language_level=3),
    cmdclass={"build_ext": build_ext_mode},
)
