"""Build of the native inference kernels (onebit.runtime._engine).

Everything else is declared in pyproject.toml. The kernels are C++17 compiled by pip through
pybind11; the AVX-512 / AVX2 paths are compiled with per-function target attributes and chosen
at run time, so one wheel runs on any x86-64 CPU (and the portable path anywhere).
"""

import glob
import os

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

sources = sorted(glob.glob(os.path.join("csrc", "*.cpp")))
ext_modules = []
if sources:
    ext_modules.append(
        Pybind11Extension(
            "onebit.runtime._engine",
            sources,
            include_dirs=["csrc"],
            cxx_std=17,
            # no FMA contraction: every ISA path rounds an affine epilogue the same way (sign bits must agree)
            extra_compile_args=["-O3", "-fopenmp", "-fno-math-errno", "-ffp-contract=off"],
            extra_link_args=["-fopenmp"],
        )
    )

setup(ext_modules=ext_modules, cmdclass={"build_ext": build_ext})
