"""Which proxy httpx would pick for a URL, rebuilt from its mounts and URL patterns (httpx 0.28).

httpx does not match ``NO_PROXY`` entry by entry: it turns every setting into a mount keyed by a URL
pattern and lets the most specific pattern win. Both the httpx NO_PROXY matcher and the httpx decision
need that exact answer, so both ask this one function, which parses URLs with ``httpx.URL`` itself.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from midoctor.facts.ipv4 import IMDS_IP, IMDS_PORT


def httpx_route(proxy_info: Mapping[str, str], host: str = IMDS_IP, port: int = IMDS_PORT) -> Optional[str]:
    """The proxy httpx would use for ``http://host:port/`` given ``urllib.request.getproxies()``-style info,
    or None for a direct connection. Mirrors ``httpx._utils.get_environment_proxies`` and the sorted
    ``URLPattern`` mounts of ``httpx.Client``; URLs are parsed with ``httpx.URL`` itself.
    """
    import httpx

    mounts: Dict[str, Optional[str]] = {}
    for scheme in ("http", "https", "all"):
        if proxy_info.get(scheme):
            target = proxy_info[scheme]
            mounts[f"{scheme}://"] = target if "://" in target else f"http://{target}"
    for entry in (item.strip() for item in proxy_info.get("no", "").split(",")):
        if entry == "*":
            return None
        if not entry:
            continue
        if "://" in entry:
            mounts[entry] = None
        elif _httpx_is_ip(entry, ipaddress.IPv4Address) or entry.lower() == "localhost":
            mounts[f"all://{entry}"] = None
        elif _httpx_is_ip(entry, ipaddress.IPv6Address):
            mounts[f"all://[{entry}]"] = None
        else:
            mounts[f"all://*{entry}"] = None
    url = httpx.URL(f"http://{host}/" if port == IMDS_PORT else f"http://{host}:{port}/")
    patterns = sorted(
        ((_HttpxPattern(key), proxy) for key, proxy in mounts.items()), key=lambda item: item[0].priority
    )
    for pattern, proxy in patterns:
        if pattern.matches(url):
            return proxy
    return None


def _httpx_is_ip(text: str, address: Callable[[str], Any]) -> bool:
    try:
        address(text.split("/")[0])
    except ValueError:
        return False
    return True


class _HttpxPattern:
    def __init__(self, pattern: str) -> None:
        import httpx

        if pattern and ":" not in pattern:
            raise ValueError(f"proxy key {pattern!r} is not a URL")
        url = httpx.URL(pattern)
        self.scheme = "" if url.scheme == "all" else url.scheme
        self.host = "" if url.host == "*" else url.host
        self.port = url.port
        self.regex: Optional[re.Pattern[str]] = None
        if url.host and url.host != "*":
            if url.host.startswith("*."):
                self.regex = re.compile(f"^.+\\.{re.escape(url.host[2:])}$")
            elif url.host.startswith("*"):
                self.regex = re.compile(f"^(.+\\.)?{re.escape(url.host[1:])}$")
            else:
                self.regex = re.compile(f"^{re.escape(url.host)}$")

    @property
    def priority(self) -> Tuple[int, int, int]:
        return (0 if self.port is not None else 1, -len(self.host), -len(self.scheme))

    def matches(self, url: Any) -> bool:
        if self.scheme and self.scheme != url.scheme:
            return False
        if self.host and self.regex is not None and not self.regex.match(url.host):
            return False
        return not (self.port is not None and self.port != url.port)
