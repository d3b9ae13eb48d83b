"""ROS 2 message definitions as rosbag2 stores them, read from the installed .msg files (no rclpy).

A recording must carry the definition of every type it holds, so that readers without
the interface packages (rosbags, Foxglove, analysis machines) can decode it. rosbag2's
``ros2msg`` encoding is the type's ``.msg`` file followed by the ``.msg`` of every type
its fields use, recursively, each after a line of 80 ``=`` and a ``MSG: pkg/msg/Type`` line.

The files are found in the ament layout (``<prefix>/share/<pkg>/msg/<Type>.msg``) of the
prefixes on ``AMENT_PREFIX_PATH`` and then ``sys.prefix`` (the venv of the pip-installed
ROS 2 wheels), the same lookup rosbag2 does; nothing needs a sourced ROS 2 install.
Field types follow the .msg rules: builtin types, ``pkg/Type``, a short ``Type`` of the
same package, ``Header`` (std_msgs/Header), with array ``[]``/``[N]``/``[<=N]`` and string
``<=N`` bounds; constants and default values are kept as written.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from tablet_workcell.errors import WorkcellError

DELIMITER = "=" * 80
PRIMITIVES = frozenset(
    {"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32"}
    | {"int64", "uint64", "string", "wstring"}
)
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class RecordingError(WorkcellError):
    """A recording cannot be written or read; the message says which file, why, and what to do."""


class MessageDefinitionError(RecordingError):
    """The .msg definition of a message type (or of a type it uses) cannot be found or parsed."""


def ament_prefixes() -> list[Path]:
    """Install prefixes searched for interface definitions: AMENT_PREFIX_PATH, then sys.prefix."""
    prefixes = [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes.append(Path(sys.prefix))
    return list(dict.fromkeys(prefixes))


def split_type_name(type_name: str) -> tuple[str, str, str]:
    """``"pkg/msg/Type"`` (or ``"pkg/Type"``) -> ``("pkg", "msg", "Type")``."""
    parts = type_name.split("/")
    if len(parts) == 2:
        parts.insert(1, "msg")
    if len(parts) != 3 or not all(_NAME.match(p) for p in parts):
        raise MessageDefinitionError(
            f"{type_name!r} is not a ROS 2 message type name; use the form 'package/msg/Type'."
        )
    return parts[0], parts[1], parts[2]


def _field_type(token: str, package: str, where: str) -> str | None:
    """Full name of the message type of one field, None for a builtin type."""
    base = re.split(r"\[|<=", token, maxsplit=1)[0]
    if base in PRIMITIVES:
        return None
    if base == "Header":  # the one short name ROS 2 keeps from ROS 1
        return "std_msgs/msg/Header"
    parts = base.split("/")
    if len(parts) == 1:
        parts = [package, parts[0]]
    try:
        pkg, kind, name = split_type_name("/".join(parts))
    except MessageDefinitionError:
        raise MessageDefinitionError(f"{where}: field type {token!r} is not a valid type name.") from None
    return f"{pkg}/{kind}/{name}"


class MessageDefinitions:
    """Finds, reads and concatenates .msg definitions; caches what it has read."""

    def __init__(self, prefixes: Sequence[Path] | None = None) -> None:
        self.prefixes = list(prefixes) if prefixes is not None else ament_prefixes()
        self._texts: dict[str, str] = {}
        self._full: dict[str, str] = {}

    def msg_file(self, type_name: str) -> Path:
        package, kind, name = split_type_name(type_name)
        for prefix in self.prefixes:
            candidate = prefix / "share" / package / kind / f"{name}.msg"
            if candidate.is_file():
                return candidate
        looked = ", ".join(str(p / "share" / package / kind) for p in self.prefixes)
        raise MessageDefinitionError(
            f"no message definition for '{package}/{kind}/{name}': {name}.msg is not in {looked}. "
            f"Install the package that provides it (e.g. pip install ros-{package.replace('_', '-')}) "
            "or add its install prefix to AMENT_PREFIX_PATH."
        )

    def text(self, type_name: str) -> str:
        package, kind, name = split_type_name(type_name)
        key = f"{package}/{kind}/{name}"
        if key not in self._texts:
            path = self.msg_file(key)
            try:
                self._texts[key] = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                raise MessageDefinitionError(f"cannot read the definition {path}: {error}.") from None
        return self._texts[key]

    def dependencies(self, type_name: str) -> list[str]:
        """Message types the fields of ``type_name`` use directly, sorted (as rosbag2 orders them)."""
        package = split_type_name(type_name)[0]
        found: set[str] = set()
        for number, raw in enumerate(self.text(type_name).splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if line:
                nested = _field_type(line.split()[0], package, f"{type_name} line {number}")
                if nested is not None:
                    found.add(nested)
        return sorted(found)

    def full_text(self, type_name: str) -> str:
        """The rosbag2 ``ros2msg`` definition: the type's .msg, then each type it uses, recursively."""
        package, kind, name = split_type_name(type_name)
        root = f"{package}/{kind}/{name}"
        if root in self._full:
            return self._full[root]
        seen = {root}

        def append(current: str) -> str:
            try:
                result = self.text(current)
            except MessageDefinitionError as error:
                if current == root:
                    raise
                raise MessageDefinitionError(f"{error} (It is used by {root}.)") from None
            for dependency in self.dependencies(current):
                if dependency not in seen:
                    seen.add(dependency)
                    result += f"\n{DELIMITER}\nMSG: {dependency}\n" + append(dependency)
            return result

        self._full[root] = append(root)
        return self._full[root]


_DEFAULT_DEFINITIONS: MessageDefinitions | None = None


def message_definition(type_name: str) -> str:
    """The concatenated definition of ``type_name`` from the installed interface packages."""
    global _DEFAULT_DEFINITIONS  # noqa: PLW0603 - one cache per process, created on first use
    if _DEFAULT_DEFINITIONS is None:
        _DEFAULT_DEFINITIONS = MessageDefinitions()
    return _DEFAULT_DEFINITIONS.full_text(type_name)
