"""Which repository URLs may be fetched for whom, and how.

An admin's linked repository may use any URL git allows (ssh, https, http, a local path) and the
bot's credentials. A channel member's ad-hoc `repo=URL` is fetched with no credentials, only over
`https://`, only from a host whose every address is public; the address checked is the one git
connects to (`http.curloptResolve`), and redirects are not followed, so neither DNS tricks nor a
redirect can point the host at an internal service. Paths inside the bot's data directory are
refused even for admins: they hold other threads' work and the bot's database.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from .errors import RepoError, display_url

HOST_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789.-")
# Not covered by ipaddress' is_global, or covered only on newer Pythons.
EXTRA_BLOCKED = [ipaddress.ip_network(n) for n in (
    "100.64.0.0/10", "169.254.0.0/16", "192.0.0.0/24", "198.18.0.0/15", "fd00:ec2::/32", "64:ff9b::/96",
    "2002::/16")]


@dataclass(frozen=True)
class Pin:
    """A host name and the checked address git must connect to."""

    host: str
    port: int
    address: str

    def config(self) -> list[tuple[str, str]]:
        address = f"[{self.address}]" if ":" in self.address else self.address
        return [("http.curloptResolve", f"{self.host}:{self.port}:{address}"), ("http.followRedirects", "false")]


def local_path(url: str) -> Path | None:
    """The filesystem path a URL names (file://, or what git takes for a path), else None."""
    if url.startswith("file://"):
        return Path(unquote(urlsplit(url).path))
    if "://" in url or re.match(r"^[^/]*:", url):  # a URL, or scp-like `host:path`
        return None
    return Path(url).expanduser().absolute()


def refuse_data_dir(url: str, data_dir: Path) -> None:
    path = local_path(url)
    if path is None:
        return
    real, data = Path(os.path.realpath(path)), Path(os.path.realpath(data_dir))
    if real == data or data in real.parents:
        raise RepoError(f"`{display_url(url)}` is inside the bot's data directory; it cannot be used as a repository.")


class Resolve(Protocol):
    """socket.getaddrinfo, or a test's stand-in."""

    def __call__(self, host: str, port: int, *, type: int) -> list[tuple[Any, ...]]: ...


def check_public_https(url: str, resolve: Resolve = socket.getaddrinfo) -> Pin:
    """Blocking (name resolution). Raises RepoError saying what was refused."""
    if not url.startswith("https://"):
        raise RepoError("Only admins can use that kind of repository URL; for others `repo=` takes a public "
                        "`https://` URL or the name of a linked repository.")
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.username or parts.password:
        raise RepoError("A repository URL with a user name or password in it is refused; ask an admin to link it.")
    # A trailing dot is refused, not stripped: git would look the dotted name up itself, and the
    # pinned address (made for the undotted one) would not apply.
    if not host or set(host) - HOST_CHARS or host.endswith(".") or host.startswith("."):
        raise RepoError(f"`{display_url(url)}` does not name a host I can check.")
    try:
        port = parts.port or 443
    except ValueError:
        raise RepoError(f"`{display_url(url)}` has an invalid port.") from None
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise RepoError(f"I could not resolve `{host}`: {exc}") from None
    addresses = sorted({info[4][0] for info in infos})
    if not addresses:
        raise RepoError(f"I could not resolve `{host}`.")
    private = [a for a in addresses if not public_address(a)]
    if private:
        raise RepoError(f"`{host}` resolves to a private, loopback or link-local address ({private[0]}); "
                        "only admins can use repositories on internal hosts.")
    return Pin(host, port, addresses[0])


def public_address(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_global and not any(address in net for net in EXTRA_BLOCKED
                                         if net.version == address.version)
