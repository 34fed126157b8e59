"""make_mesh: shapes, Auto axes and one-line ConfigErrors on 8 simulated CPU devices."""

import jax
import pytest
from jax.sharding import AxisType

from optlab.config import ConfigError
from optlab.parallel import abstract_mesh, describe_devices, make_mesh, mesh_str


def test_eight_devices():
    assert jax.device_count() == 8


@pytest.mark.parametrize(
    "spec, shape",
    [
        (None, {"data": 1}),
        ({"data": 1}, {"data": 1}),
        ("data=-1", {"data": 8}),
        ("data=4,model=2", {"data": 4, "model": 2}),
        ({"data": -1, "model": 2}, {"data": 4, "model": 2}),
        ("model=2, data=4", {"data": 4, "model": 2}),  # data outermost whatever the order
        ({"model": 2}, {"data": 1, "model": 2}),  # a data axis always exists
        ({"data": -1, "model": 8}, {"data": 1, "model": 8}),
        ("data=2", {"data": 2}),  # a sub-mesh of the first devices
    ],
)
def test_shapes(spec, shape):
    mesh = make_mesh(spec)
    assert dict(mesh.shape) == shape
    assert tuple(mesh.axis_names) == tuple(shape)
    assert mesh.axis_types == (AxisType.Auto,) * len(shape)
    n = mesh.devices.size
    assert [d.id for d in mesh.devices.flat] == sorted(d.id for d in jax.devices()[:n])


def test_given_devices():
    mesh = make_mesh("data=-1", devices=jax.devices()[4:])
    assert dict(mesh.shape) == {"data": 4}
    assert {d.id for d in mesh.devices.flat} == {4, 5, 6, 7}


@pytest.mark.parametrize(
    "spec, words",
    [
        ("data=3", "3 devices do not divide the 8"),
        ({"data": -1, "model": 3}, "do not divide the 8 devices"),
        ("data=16", "needs 16 devices but only 8"),
        ("data=4,model=4", "needs 16 devices but only 8"),
        ("pipe=2", "unknown axis 'pipe'"),
        ("data=x", "must be an integer, got 'x'"),
        ("data", "expected AXIS=SIZE pairs"),
        ("data=-1,model=-1", "only one axis may be -1"),
        ("data=0", "positive integer or -1"),
        ({"data": 2.0}, "positive integer or -1"),
        ("data=2,data=4", "given twice"),
        (8, "expected a string or a dict"),
    ],
)
def test_errors(spec, words):
    with pytest.raises(ConfigError, match="--mesh") as err:
        make_mesh(spec)
    message = str(err.value)
    assert words in message
    assert "\n" not in message
    assert "data=" in message  # every message shows a fix


def test_describe_devices():
    text = describe_devices(make_mesh("data=4,model=2"))
    assert "platform:  cpu (8 devices: 8 × cpu)" in text
    assert "process:   0 of 1 (8 local devices)" in text
    assert "data=4,model=2 (8 devices, axis types Auto)" in text
    assert "data=1 (1 device," in describe_devices()
    assert mesh_str(make_mesh({"model": 2})) == "data=1,model=2"


@pytest.mark.parametrize("spec", [None, "data=-1", "data=4,model=2", {"model": 2}, "data=2"])
def test_abstract_mesh_matches_make_mesh(spec):
    real, abstract = make_mesh(spec), abstract_mesh(spec)
    assert dict(abstract.shape) == dict(real.shape)
    assert abstract.axis_names == real.axis_names and abstract.axis_types == real.axis_types
    assert mesh_str(abstract) == mesh_str(real)


def test_abstract_mesh_larger_than_the_machine():
    assert dict(abstract_mesh("data=16,model=4").shape) == {"data": 16, "model": 4}
    assert dict(abstract_mesh("model=2, data=-1", devices=64).shape) == {"data": 32, "model": 2}
    assert dict(abstract_mesh("data=2", devices=64).shape) == {"data": 2}
    with pytest.raises(ConfigError, match="needs 16 devices but only 8"):
        abstract_mesh("data=16", devices=8)
    with pytest.raises(ConfigError, match="do not divide the 8 devices"):
        abstract_mesh("data=-1,model=3")  # -1 takes this machine's 8 devices
    for bad in (0, -2, 2.0, True):
        with pytest.raises(ConfigError, match="devices: the device count must be a positive"):
            abstract_mesh("data=2", devices=bad)
    with pytest.raises(ConfigError, match="unknown axis 'pipe'"):
        abstract_mesh("pipe=2")
