"""Load `.proto` files at runtime with protoc, the reference parser, shipped in a wheel.

`grpcio-tools` carries protoc and the well-known `.proto` files; a subprocess runs it so its
diagnostics arrive as text we can show (in-process, protoc writes to the C stderr). The
result is a FileDescriptorSet with every import, built into a pool of its own.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from google.protobuf import descriptor_pb2

from gristmill.errors import ConfigError, InvalidSchema
from gristmill.schemas.descriptors import BuiltSchema, new_pool

if TYPE_CHECKING:
    from collections.abc import Sequence

_PROTOC_TIMEOUT_S = 60


def _well_known_include() -> Path:
    try:
        return Path(str(resources.files("grpc_tools").joinpath("_proto")))
    except ModuleNotFoundError:
        raise ConfigError(
            "loading .proto files needs grpcio-tools: pip install 'grpcio-tools>=1.85'"
        ) from None


def compile_proto(
    path: str | Path, include: Sequence[str | Path] = ()
) -> descriptor_pb2.FileDescriptorSet:
    """The FileDescriptorSet of `path` and everything it imports, as protoc reads them.

    Args:
        path: The .proto file.
        include: Directories imports are resolved against (default: the file's directory).

    Raises:
        InvalidSchema: If protoc refuses the file; the message carries protoc's diagnostics.
    """
    path = Path(path).resolve()
    roots = [Path(root).resolve() for root in include] or [path.parent]
    if not path.is_file():
        raise InvalidSchema(f"{path}: no such file")
    with tempfile.TemporaryDirectory(prefix="gristmill-protoc-") as scratch:
        output = Path(scratch) / "files.pb"
        argv = [
            sys.executable, "-m", "grpc_tools.protoc",
            *(f"--proto_path={root}" for root in roots),
            f"--proto_path={_well_known_include()}",
            "--include_imports", f"--descriptor_set_out={output}", str(path),
        ]  # fmt: skip
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=_PROTOC_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            raise InvalidSchema(f"{path}: protoc took over {_PROTOC_TIMEOUT_S} s") from None
        if done.returncode != 0:
            raise InvalidSchema(f"{path}: protoc refused it:\n{done.stderr.strip()}")
        return descriptor_pb2.FileDescriptorSet.FromString(output.read_bytes())


def _beside_caller(path: str | Path) -> Path:
    """`path` as given if it exists (relative to the current directory), else relative to the
    file of `load_proto`'s caller, so a service finds its .proto from any working directory."""
    given = Path(path)
    if given.is_absolute() or given.exists():
        return given
    caller = sys._getframe(2).f_globals.get("__file__")
    if isinstance(caller, str):
        beside = Path(caller).resolve().parent / given
        if beside.exists():
            return beside
    return given


def load_proto(path: str | Path, include: Sequence[str | Path] = ()) -> BuiltSchema:
    """The message classes of the .proto file `path`, in a pool of their own.

    Args:
        path: The .proto file: absolute, relative to the current directory, or else relative
            to the directory of the module that calls `load_proto`.
        include: Directories imports are resolved against (default: the file's directory).

    Returns:
        The built schema: `built["pkg.Message"]` is a class, `built.descriptor(name)` its
        descriptor (what `Publisher` and `SchemaRegistry.register` take).

    Raises:
        InvalidSchema: If protoc or the protobuf runtime refuses the file.
    """
    file_set = compile_proto(_beside_caller(path), include)
    return BuiltSchema(new_pool(file_set), file_set)
