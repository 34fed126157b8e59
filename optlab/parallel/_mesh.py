"""Device meshes from a ``{"data": -1, "model": 2}`` spec, and what the devices are."""

from __future__ import annotations

import collections
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
from jax.sharding import AbstractMesh, AxisType, Mesh

from optlab.errors import ConfigError

AXES: tuple[str, ...] = ("data", "model")
"""The mesh axis names optlab knows, in the order the mesh lays them out (data outermost)."""

PMAP_AXIS = "batch"
"""The device axis of ``--parallel pmap`` (``jax.pmap(axis_name=...)``): collectives and a
synchronized batch norm (``nn.BatchNorm(axis_name=PMAP_AXIS)``) name it."""

_FIX = "Write e.g. --mesh data=4,model=2 or --mesh data=-1 (-1: the remaining devices)"


def _parse(spec: str | Mapping[str, int]) -> dict[str, Any]:
    """``"data=4,model=2"`` or a mapping → ``{axis: size}``, names and syntax checked."""
    if isinstance(spec, str):
        sizes: dict[str, Any] = {}
        for part in spec.replace(" ", "").split(","):
            name, sep, raw = part.partition("=")
            if not sep or not name:
                raise ConfigError(f"--mesh: expected AXIS=SIZE pairs, got {spec!r}. {_FIX}")
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(
                    f"--mesh: the size of {name!r} must be an integer, got {raw!r}. {_FIX}"
                ) from None
            if name in sizes:
                raise ConfigError(f"--mesh: axis {name!r} is given twice in {spec!r}. {_FIX}")
            sizes[name] = value
    elif isinstance(spec, Mapping):
        sizes = dict(spec)
    else:
        raise ConfigError(f"--mesh: expected a string or a dict, got {spec!r}. {_FIX}")
    for name, size in sizes.items():
        if name not in AXES:
            raise ConfigError(
                f"--mesh: unknown axis {name!r}; the axes are {', '.join(AXES)}. {_FIX}"
            )
        if isinstance(size, bool) or not isinstance(size, int) or not (size > 0 or size == -1):
            raise ConfigError(
                f"--mesh: the size of {name!r} must be a positive integer or -1, got {size!r}. "
                f"{_FIX}"
            )
    if list(sizes.values()).count(-1) > 1:
        raise ConfigError(f"--mesh: only one axis may be -1, got {spec!r}. {_FIX}")
    return sizes


def _resolve(spec: Any, count: int) -> dict[str, int]:
    """``{axis: size}`` in the order of ``AXES``, -1 filled in, checked against ``count``."""
    sizes = _parse({"data": 1} if spec is None else spec)
    sizes.setdefault("data", 1)
    shown = ",".join(f"{k}={v}" for k, v in sizes.items())
    fixed = math.prod(v for v in sizes.values() if v != -1)
    for name, size in sizes.items():
        if size == -1:
            if count % fixed:
                raise ConfigError(
                    f"--mesh {shown}: the other axes ({fixed} devices) do not divide the "
                    f"{count} devices. Pick sizes whose product divides {count}."
                )
            sizes[name] = count // fixed
    total = math.prod(sizes.values())
    if total > count:
        raise ConfigError(
            f"--mesh {shown}: needs {total} devices but only {count} are available. "
            f"Use sizes whose product divides {count}, or data=-1."
        )
    if count % total:
        raise ConfigError(
            f"--mesh {shown}: {total} devices do not divide the {count} available. "
            f"Use sizes whose product divides {count}, or data=-1."
        )
    return {name: sizes[name] for name in AXES if name in sizes}


def make_mesh(
    spec: str | Mapping[str, int] | None = None, *, devices: Sequence[Any] | None = None
) -> Mesh:
    """A device mesh with a ``"data"`` axis (and a ``"model"`` axis if asked).

    ``spec`` is ``{"data": -1, "model": 2}`` or the CLI's ``"data=4,model=2"``; -1 takes
    the devices the other axes leave; a missing ``"data"`` axis has size 1, and ``None``
    means ``{"data": 1}``: one device, the trainer's default. The product of the sizes must
    divide the number of devices; a smaller mesh takes the first devices. Axes are laid
    out data-outermost whatever order they are given in.

    The axes are ``AxisType.Auto`` on purpose (``jax.make_mesh`` now defaults to
    ``Explicit``): optlab places parameters by rules over their paths and lets XLA's SPMD
    partitioner propagate shardings through the model. Under ``Explicit`` axes the model
    code itself would need sharding annotations (``out_sharding=`` on a matmul whose
    contracting dimension is sharded), and the rules could no longer leave it untouched.

    Args:
      spec: axis sizes as a mapping or string; ``None`` for one device.
      devices: the devices to use (default ``jax.devices()``).

    Returns:
      A ``jax.sharding.Mesh`` with axis names from ``("data", "model")``.

    Raises:
      ConfigError: naming ``--mesh`` and the fix, for an unknown axis, a bad string, sizes
        that do not divide the device count or need more devices than there are.

    Example:
      >>> from optlab.parallel import make_mesh
      >>> make_mesh()
      Mesh(axis_sizes=(1,), axis_names=('data',), axis_types=(Auto,))
      >>> mesh = make_mesh("data=-1,model=1")
      >>> mesh.axis_names, mesh.shape["data"] == len(mesh.devices.flat)
      (('data', 'model'), True)
    """
    devices = list(jax.devices() if devices is None else devices)
    sizes = _resolve(spec, len(devices))
    shape, names = tuple(sizes.values()), tuple(sizes)
    chosen = devices[: math.prod(shape)]
    return jax.make_mesh(shape, names, (AxisType.Auto,) * len(names), devices=chosen)


def abstract_mesh(
    spec: str | Mapping[str, int] | None = None, *, devices: int | None = None
) -> AbstractMesh:
    """The mesh ``make_mesh(spec)`` would build, as a ``jax.sharding.AbstractMesh``: axis
    names and sizes, no devices. Planning is shapes only, so a mesh of any size can be
    planned on a machine with one device.

    ``devices`` is the device count to plan for. It fills in a ``-1`` axis (default: this
    machine's device count, ``jax.device_count()``) and, when given, the sizes must divide it
    as ``make_mesh`` requires of real devices; without it and without a ``-1`` the mesh is
    exactly the sizes given.

    Args:
      spec: axis sizes as for ``make_mesh``; ``None`` for ``{"data": 1}``.
      devices: the number of devices to plan for (a positive integer) or ``None``.

    Returns:
      A ``jax.sharding.AbstractMesh`` with ``Auto`` axes, data outermost.

    Raises:
      ConfigError: as ``make_mesh`` does, and for a ``devices`` that is not a positive int.

    Example:
      >>> from optlab.parallel import abstract_mesh
      >>> abstract_mesh("data=16,model=4")
      AbstractMesh('data': 16, 'model': 4, axis_types=(Auto, Auto))
      >>> dict(abstract_mesh("data=-1,model=2", devices=64).shape)
      {'data': 32, 'model': 2}
    """
    if devices is not None and (
        isinstance(devices, bool) or not isinstance(devices, int) or devices < 1
    ):
        raise ConfigError(f"devices: the device count must be a positive integer, got {devices!r}")
    sizes = _parse({"data": 1} if spec is None else spec)
    if devices is None:
        fixed = math.prod(sizes.values())
        devices = jax.device_count() if fixed < 0 else fixed  # -1 present: its product < 0
    resolved = _resolve(sizes, devices)
    names = tuple(resolved)
    return AbstractMesh(tuple(resolved.values()), names, axis_types=(AxisType.Auto,) * len(names))


def mesh_str(mesh: Mesh | AbstractMesh) -> str:
    """``"data=4,model=2"``: the mesh as ``--mesh`` writes it.

    Example:
      >>> from optlab.parallel import make_mesh, mesh_str
      >>> mesh_str(make_mesh())
      'data=1'
    """
    return ",".join(f"{name}={size}" for name, size in mesh.shape.items())


def describe_devices(mesh: Mesh | None = None) -> str:
    """Platform, devices, processes and the mesh a run would use (``optlab devices``).

    ``mesh`` defaults to ``make_mesh()``: the one-device mesh of a run without ``--mesh``.

    Example:
      >>> from optlab.parallel import describe_devices
      >>> print(describe_devices().splitlines()[-1])  # doctest: +ELLIPSIS
      mesh:      data=1 (1 device, axis types Auto), devices [...]
    """
    mesh = make_mesh() if mesh is None else mesh
    devices = jax.devices()
    kinds = collections.Counter(d.device_kind for d in devices)
    kinds_text = ", ".join(f"{n} × {kind}" for kind, n in kinds.items())
    types = ",".join(sorted({str(t).rsplit(".", 1)[-1] for t in mesh.axis_types}))
    n = mesh.devices.size
    ids = [d.id for d in mesh.devices.flat]
    shown = ids if len(ids) <= 16 else [*ids[:16], "..."]
    return "\n".join(
        [
            f"platform:  {jax.default_backend()} ({len(devices)} devices: {kinds_text})",
            f"process:   {jax.process_index()} of {jax.process_count()} "
            f"({jax.local_device_count()} local devices)",
            f"mesh:      {mesh_str(mesh)} ({n} device{'s' if n != 1 else ''}, "
            f"axis types {types}), devices {shown}",
        ]
    )
