"""setup.py - the one thing pyproject.toml cannot say: when the tree's
library has been built (`make lib`), a copy of it goes into the package, so
`pip install ./tools/python` gives a package that imports without
L1ARENA_LIB.  Without a built tree the package finds the library that
`make install` put in the system (ldconfig), or $L1ARENA_LIB.

Offline (no index to fetch setuptools from), build with the system's
setuptools (Debian: python3-setuptools): pip install --no-build-isolation.
"""
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPy(build_py):
    def run(self):
        super().run()
        here = os.path.dirname(os.path.abspath(__file__))
        built = os.path.join(here, "..", "..", "build", "lib", "libl1arena.so")
        if os.path.exists(built):
            shutil.copyfile(os.path.realpath(built),
                            os.path.join(self.build_lib, "l1arena", "libl1arena.so"))


setup(cmdclass={"build_py": BuildPy})
