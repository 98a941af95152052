"""Build hook only (the project is described in pyproject.toml).

A wheel carries the notebooks and the data_manifests/ specs that `maskdepth run` needs as
package data, copied into maskdepth/_resources/ at build time (the list lives in
lib/maskdepth/core/resources.py). An editable install reads them from the checkout instead.
"""

import runpy
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
RESOURCES = runpy.run_path(str(ROOT / "lib" / "maskdepth" / "core" / "resources.py"))


class BuildPyWithResources(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install finds the files in the checkout
        for rel in self._resource_files():
            target = Path(self.build_lib) / "maskdepth" / RESOURCES["PACKAGED"] / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / rel, target)

    def get_outputs(self, include_bytecode=True):
        extra = [str(Path(self.build_lib) / "maskdepth" / RESOURCES["PACKAGED"] / rel) for rel in self._resource_files()]
        return super().get_outputs(include_bytecode) + extra

    def _resource_files(self):
        files = RESOURCES["shipped_files"](ROOT)
        if not any(str(rel).endswith(".ipynb") for rel in files):
            raise SystemExit(f"no notebooks found under {ROOT / 'notebooks'}: cannot build a usable package")
        return files


setup(cmdclass={"build_py": BuildPyWithResources})
