"""meshpy.dataplane.Proxy in this process: the wrapper over _core on real sockets."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from meshpy import _core
from meshpy.dataplane import Proxy, ProxyConfig, Snapshot, check_config
from tests.integration.proxyproc import proxy_config


def test_proxy_from_config_serves_and_shuts_down(http_backend) -> None:
    backend = http_backend("b1")
    config: ProxyConfig = proxy_config([backend.address], version=3)
    with Proxy.from_config(config, grace_s=1.0) as proxy:
        addresses = proxy.addresses()
        assert set(addresses) == {"admin", "web"}
        assert all(not address.endswith(":0") for address in addresses.values())
        assert httpx.get(f"http://{addresses['web']}/", timeout=5).status_code == 200
        stats = proxy.stats()
        assert stats["version"] == 3
        assert proxy.ready()
        assert "meshpy_config_version 3" in proxy.metrics()
    assert not proxy.ready()
    with pytest.raises(_core.StateError):
        proxy.apply(check_config(config).snapshot)


def test_apply_accepts_dicts_and_json(http_backend) -> None:
    backend = http_backend("b1")
    snapshot: Snapshot = proxy_config([backend.address], admin=False)
    proxy = Proxy({}, snapshot)
    try:
        proxy.start()
        assert proxy.apply(snapshot) == 2
        assert proxy.apply(json.dumps(snapshot)) == 3
        assert proxy.apply({**snapshot, "version": 10}) == 10
    finally:
        proxy.shutdown(0.5)


def test_errors_come_from_the_right_layer() -> None:
    proxy = Proxy({"workers": 1})
    try:
        with pytest.raises(_core.ConfigError) as info:
            proxy.apply({"clusters": [{"name": "c", "lb": "random"}]})
        assert info.value.path == "clusters[0].lb"
        with pytest.raises(_core.ConfigError) as info:
            proxy.apply('{"clusters": [{"name": "c", "lb": "random"}]}')
        assert info.value.path == "clusters[0].lb"
        proxy.start()
        with pytest.raises(_core.StateError):
            proxy.start()
    finally:
        proxy.shutdown(0.0)


def test_bind_error_names_listener_and_address() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = "{}:{}".format(*taken.getsockname())
        config = proxy_config([], admin=False, listener={"address": address})
        proxy = Proxy(None, config)
        try:
            with pytest.raises(_core.BindError) as info:
                proxy.start()
        finally:
            proxy.shutdown(0.0)
    assert "web" in str(info.value)
    assert address in str(info.value)
