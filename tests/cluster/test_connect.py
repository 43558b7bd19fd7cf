"""cluster/connect.py without a cluster: the reachability check and each node's --out probe."""

from __future__ import annotations

import socket

import pytest

from dst3d_addon.cluster.connect import _probe, check_reachable
from dst3d_addon.core.cluster import parse_ray
from dst3d_addon.core.errors import SettingError

probe = _probe._function  # the plain function a node runs


def test_a_port_nobody_listens_on_is_one_line_naming_the_option():
    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = parse_ray(f"127.0.0.1:{port}", {})
    with pytest.raises(SettingError) as err:
        check_reachable(target, timeout=2)
    line = err.value.worded(lambda name: "--" + name)
    assert line.startswith(f"--ray 127.0.0.1:{port}: no Ray cluster answers at 127.0.0.1:{port} (")
    assert "ray start --head" in line and "\n" not in line


def test_a_listening_port_passes_and_local_needs_no_check():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        check_reachable(parse_ray(f"127.0.0.1:{s.getsockname()[1]}", {}), timeout=2)
    check_reachable(parse_ray("local", {}))


def test_the_probe_sees_the_drivers_token_and_writes(tmp_path):
    (tmp_path / ".check").write_text("abc")
    assert probe(str(tmp_path), ".check", "abc") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [".check"]  # its own file is gone again


def test_the_probe_names_what_it_cannot_do(tmp_path):
    assert (
        probe(str(tmp_path / "absent"), ".check", "abc")
        == "the folder or the driver's check file is not there"
    )
    (tmp_path / ".check").write_text("other")
    assert "another folder of the same name" in probe(str(tmp_path), ".check", "abc")
