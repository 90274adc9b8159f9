# Typed stubs of the compiled module losstopo._core_cuda (built with the CUDA backend
# only); its classes derive from the Objective classes of losstopo._core.
from __future__ import annotations

import typing

import numpy
import numpy.typing

from ._core import ObjectiveF32, ObjectiveF64

def device_available() -> bool: ...

class CudaLandscapeF32(ObjectiveF32):
    def __init__(
        self,
        sizes: list[int],
        hidden: list[str],
        output: str,
        bias: bool,
        loss: str,
        X: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
        y: typing.Annotated[numpy.typing.ArrayLike, numpy.int32] | None = None,
        targets: typing.Annotated[numpy.typing.ArrayLike, numpy.float32] | None = None,
        device: int = 0,
        tf32: bool = False,
        chunk: int = 0,
        drop_zero_columns: bool = True,
    ) -> None: ...
    @property
    def kept_columns(self) -> int: ...

class CudaLandscapeF64(ObjectiveF64):
    def __init__(
        self,
        sizes: list[int],
        hidden: list[str],
        output: str,
        bias: bool,
        loss: str,
        X: typing.Annotated[numpy.typing.ArrayLike, numpy.float64],
        y: typing.Annotated[numpy.typing.ArrayLike, numpy.int32] | None = None,
        targets: typing.Annotated[numpy.typing.ArrayLike, numpy.float64] | None = None,
        device: int = 0,
        tf32: bool = False,
        chunk: int = 0,
        drop_zero_columns: bool = True,
    ) -> None: ...
    @property
    def kept_columns(self) -> int: ...
