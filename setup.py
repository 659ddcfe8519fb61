"""Maps the three source folders onto the ``latentbrush.*`` import packages (see DESIGN.md).

Subpackages are discovered, so adding a folder with an ``__init__.py`` needs no edit here.
"""

from setuptools import find_packages, setup

ROOTS = {"latentbrush.protocol": "protocol", "latentbrush.plugin": "plugin", "latentbrush.backend": "backend"}

package_dir: dict[str, str] = {}
for name, folder in ROOTS.items():
    package_dir[name] = folder
    for sub in find_packages(folder, exclude=["*.vendor", "*.vendor.*"]):
        package_dir[f"{name}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"

setup(packages=list(package_dir), package_dir=package_dir)
