"""The parsed view of one HTTP request that route handlers work with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # percent-decoding left to the routes; query removed
    query: tuple[tuple[str, str], ...]  # decoded pairs in arrival order, duplicates kept
    headers: tuple[tuple[str, str], ...]  # as received, duplicates kept
    base_url: str  # how the client reached us, for absolute links (ARM nextLink)

    @classmethod
    def parse(cls, method: str, target: str, headers: list[tuple[str, str]], base_url: str) -> Request:
        parts = urlsplit(target)
        pairs = tuple(parse_qsl(parts.query, keep_blank_values=True))
        return cls(method=method, path=parts.path or "/", query=pairs, headers=tuple(headers), base_url=base_url)

    def header(self, name: str) -> Optional[str]:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def has_header(self, name: str) -> bool:
        return self.header(name) is not None

    def param(self, name: str) -> Optional[str]:
        # Parameter names are matched case-insensitively, as IIS/ASP.NET does (RECONSTRUCTED assumption).
        for key, value in self.query:
            if key.lower() == name.lower():
                return value
        return None

    def duplicate_param(self) -> Optional[str]:
        seen: set[str] = set()
        for key, _ in self.query:
            if key.lower() in seen:
                return key
            seen.add(key.lower())
        return None

    def query_dict(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for key, value in self.query:
            out.setdefault(key, []).append(value)
        return out
