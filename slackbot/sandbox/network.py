"""Per-task networks whose only way out is an egress proxy.

Each task that may use the network gets a Docker `--internal` bridge of its own (a small subnet from
`SLACKBOT_SANDBOX_SUBNETS`, so many tasks fit) created with `inhibit_ipv4`: the host has no address
on it, so a sandbox reaches neither the host nor anything else — only the proxy container, which
also sits on an outside bridge and lets through the allowed destinations. Names are resolved by
the proxy; the internal network has no DNS for outside names.
"""

from __future__ import annotations

import ipaddress
import secrets
import time
from typing import Any, Callable, Iterator

import docker.errors
import docker.types

PROXY_PATH = "/opt/slackbot/egress_proxy.py"
PROXY_PORT = 3128
SUBNET_PREFIX = 28  # 14 addresses: the sandbox containers of one task and its proxy
READY_WAIT_S = 10.0


def open_sync(provider: Any, task_id: int, allow: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    api = provider.client().api
    name = _create_network(provider, api, task_id)
    proxy = api.create_container(
        provider.settings.egress_image or provider.settings.sandbox_image,
        command=["python3", "-I", PROXY_PATH, "--listen", f"0.0.0.0:{PROXY_PORT}"],
        name=f"slackbot-{provider.instance}-task-{task_id}-egress-{secrets.token_hex(3)}",
        labels=provider.labels(task_id, "egress"), user="65534:65534",
        environment={"SLACKBOT_EGRESS_ALLOW": "\n".join(allow)},
        host_config=api.create_host_config(
            network_mode=name, read_only=True, cap_drop=["ALL"], security_opt=["no-new-privileges"],
            log_config=docker.types.LogConfig(type="json-file", config={"max-size": "1m", "max-file": "1"}),
            mem_limit="256m", memswap_limit="256m", pids_limit=128, init=True),
        networking_config=api.create_networking_config({name: api.create_endpoint_config(aliases=["egress"])}))
    api.connect_container_to_network(proxy["Id"], provider.settings.egress_network)
    api.start(proxy["Id"])
    address = api.inspect_container(proxy["Id"])["NetworkSettings"]["Networks"][name]["IPAddress"]
    _wait_ready(api, proxy["Id"])
    url = f"http://{address}:{PROXY_PORT}"
    env = {"HTTP_PROXY": url, "HTTPS_PROXY": url, "http_proxy": url, "https_proxy": url,
           "NO_PROXY": "localhost,127.0.0.1,::1", "no_proxy": "localhost,127.0.0.1,::1"}
    return name, env


def close_sync(provider: Any, task_id: int) -> None:
    """Removes the task's proxy and network (its other containers are removed by the caller)."""
    from .docker import force_remove

    api = provider.client().api
    for container in provider._list(api, task_id=task_id):
        if container["Labels"].get("slackbot.role") == "egress":
            force_remove(api, container["Id"])
    for net in _managed(provider, api, task_id):
        _remove_network(api, net["Id"])


def remove_networks(provider: Any, doomed: Callable[[dict[str, str]], bool]) -> None:
    api = provider.client().api
    for net in _managed(provider, api):
        if doomed(net["Labels"] or {}):
            _remove_network(api, net["Id"])


def _create_network(provider: Any, api: Any, task_id: int) -> str:
    name = f"slackbot-{provider.instance}-task-{task_id}-{secrets.token_hex(3)}"
    last: Exception | None = None
    for subnet in _free_subnets(api, provider.settings.sandbox_subnets):
        try:
            api.create_network(
                name, driver="bridge", internal=True, check_duplicate=True,
                ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)]),
                options={"com.docker.network.bridge.inhibit_ipv4": "true"},
                labels=provider.labels(task_id, "network"))
            return name
        except docker.errors.APIError as exc:  # another process took the subnet meanwhile
            if "overlap" not in str(exc).lower():
                raise
            last = exc
    raise RuntimeError(f"no free subnet left in {provider.settings.sandbox_subnets} "
                       f"(SLACKBOT_SANDBOX_SUBNETS){f': {last}' if last else ''}")


def _free_subnets(api: Any, pool: str) -> Iterator[str]:
    used = []
    for net in api.networks():
        for config in (net.get("IPAM") or {}).get("Config") or []:
            try:
                used.append(ipaddress.ip_network(config.get("Subnet", ""), strict=False))
            except ValueError:
                continue
    for subnet in ipaddress.ip_network(pool).subnets(new_prefix=SUBNET_PREFIX):
        if not any(subnet.overlaps(u) for u in used):
            yield str(subnet)


def _managed(provider: Any, api: Any, task_id: int | None = None) -> list[dict[str, Any]]:
    labels = ["slackbot.managed=1", f"slackbot.instance={provider.instance}"]
    if task_id is not None:
        labels.append(f"slackbot.task={task_id}")
    return api.networks(filters={"label": labels})


def _remove_network(api: Any, network_id: str) -> None:
    try:
        api.remove_network(network_id)
    except docker.errors.NotFound:
        pass


def _wait_ready(api: Any, container_id: str) -> None:
    deadline = time.monotonic() + READY_WAIT_S
    while time.monotonic() < deadline:
        logs = api.logs(container_id, stdout=True, stderr=True, tail=50).decode(errors="replace")
        if "listening" in logs:
            return
        state = api.inspect_container(container_id)["State"]
        if not state.get("Running"):
            raise RuntimeError(f"the egress proxy stopped: {logs.strip()[-300:]}")
        time.sleep(0.05)
    raise RuntimeError("the egress proxy did not start listening in time")
