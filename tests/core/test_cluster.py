"""What `--ray` names and how a shard splits between a cluster's workers (core/cluster.py)."""

import pytest

from dst3d_addon.core.cluster import CLIENT_PORT, DEFAULT_PORT, device_on_actor, parse_ray, slots, sub_shard
from dst3d_addon.core.errors import SettingError
from dst3d_addon.core.render_plan import Shard


def test_local_starts_ray_here():
    target = parse_ray("local", {"RAY_ADDRESS": "10.0.0.1:6379"})
    assert target.local and target.address is None
    assert target.describe() == "a local Ray instance"


@pytest.mark.parametrize(
    ("value", "address", "host", "port"),
    [
        ("10.0.0.5:7000", "10.0.0.5:7000", "10.0.0.5", 7000),
        ("head-node", f"head-node:{DEFAULT_PORT}", "head-node", DEFAULT_PORT),
        ("ray://head.cluster:10002", "ray://head.cluster:10002", "head.cluster", 10002),
        ("ray://head", f"ray://head:{CLIENT_PORT}", "head", CLIENT_PORT),
        ("[::1]:6380", "[::1]:6380", "::1", 6380),
    ],
)
def test_addresses(value, address, host, port):
    target = parse_ray(value, {})
    assert (target.address, target.host, target.port) == (address, host, port)
    assert not target.local
    assert target.client == address.startswith("ray://")


def test_auto_reads_ray_address():
    target = parse_ray("auto", {"RAY_ADDRESS": " 192.168.1.2:6379 "})
    assert target.address == "192.168.1.2:6379" and target.given == "auto"


@pytest.mark.parametrize(
    ("value", "environ", "needle"),
    [
        ("auto", {}, "RAY_ADDRESS is not set"),
        ("auto", {"RAY_ADDRESS": "auto"}, "names no address"),
        ("auto", {"RAY_ADDRESS": "host:99999"}, "RAY_ADDRESS='host:99999': "),
        ("host:0", {}, "port 0 is not in 1..65535"),
        ("http://host:80", {}, "expected auto, local, HOST:PORT"),
        ("host:port", {}, "expected auto, local, HOST:PORT"),
        ("", {}, "expected auto, local, HOST:PORT"),
    ],
)
def test_bad_values_name_the_option(value, environ, needle):
    with pytest.raises(SettingError) as err:
        parse_ray(value, environ)
    line = err.value.worded(lambda name: "--" + name)
    assert line.startswith("--ray ")
    assert needle in line
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("shard", [Shard(), Shard(1, 3), Shard(4, 5)])
@pytest.mark.parametrize("parts", [1, 2, 3, 8])
def test_sub_shards_split_a_shard_exactly(shard, parts):
    ids = [f"n02690373/model{m}/{v:06d}" for m in range(5) for v in range(60)]
    mine = {i for i in ids if shard.owns(i)}
    seen: list[str] = []
    for part in range(parts):
        sub = sub_shard(shard, part, parts)
        seen += [i for i in ids if sub.owns(i)]
    assert sorted(seen) == sorted(mine)  # disjoint (no id twice) and complete
    assert len(set(seen)) == len(seen)


def test_sub_shard_refuses_a_part_out_of_range():
    with pytest.raises(ValueError):
        sub_shard(Shard(), 2, 2)


def test_slots_count_whole_units():
    resources = {"CPU": 7.0, "GPU": 2.5}
    assert slots(resources, "CPU") == 7
    assert slots(resources, "GPU") == 2
    assert slots(resources, "CPU", per_slot=2) == 3
    assert slots(resources, "TPU") == 0


@pytest.mark.parametrize(
    ("given", "on_actor"),
    [("cuda:3", "cuda"), ("cuda", "cuda"), ("auto", "auto"), ("cpu", "cpu"), ("mps", "mps")],
)
def test_a_gpu_actor_sees_its_own_gpu_only(given, on_actor):
    assert device_on_actor(given) == on_actor
