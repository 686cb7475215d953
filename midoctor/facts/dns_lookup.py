"""Resolving the downstream endpoints (ARM) when they cannot be reached: a DNS failure and a blocked
connection need different fixes (reference F27). IMDS itself needs no DNS, so this is only asked for when
an ARM call failed and no proxy resolves names on the application's behalf."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

LOOKUP_TIMEOUT_S = 2.0


@dataclass
class DnsAnswer:
    host: str
    addresses: List[str] = field(default_factory=list)
    error: Optional[str] = None  # nxdomain | no-answer | timeout | no-nameservers | ...
    detail: str = ""
    nameservers: List[str] = field(default_factory=list)

    @property
    def resolved(self) -> bool:
        return bool(self.addresses)

    def to_evidence(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"host": self.host, "nameservers": self.nameservers}
        if self.addresses:
            out["addresses"] = self.addresses[:8]
        else:
            out["error"] = self.error
            out["detail"] = self.detail
        return out


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def resolve(host: str, nameservers: Optional[Sequence[str]] = None, port: int = 53,
            timeout: float = LOOKUP_TIMEOUT_S) -> DnsAnswer:
    """A and AAAA records of ``host`` from the system's resolvers (or the given ones), bounded in time."""
    import dns.exception
    import dns.resolver

    answer = DnsAnswer(host=host)
    try:
        resolver = dns.resolver.Resolver(configure=nameservers is None)
    except (dns.resolver.NoResolverConfiguration, OSError) as exc:
        answer.error, answer.detail = "no-nameservers", str(exc)[:200]
        return answer
    if nameservers is not None:
        resolver.nameservers = list(nameservers)
        resolver.port = port
    resolver.lifetime = timeout
    answer.nameservers = [str(n) for n in resolver.nameservers]
    for rdtype in ("A", "AAAA"):
        try:
            result = resolver.resolve(host, rdtype, search=False)
            answer.addresses += [r.to_text() for r in result]
        except dns.resolver.NXDOMAIN:
            answer.error, answer.detail = "nxdomain", f"{host} does not exist in DNS"
            return answer
        except dns.resolver.NoAnswer:
            continue
        except dns.resolver.NoNameservers as exc:
            answer.error, answer.detail = "servfail", str(exc)[:200]
            return answer
        except dns.exception.Timeout:
            answer.error, answer.detail = "timeout", f"no DNS answer within {timeout:g} s"
            return answer
        except (dns.exception.DNSException, OSError) as exc:
            answer.error, answer.detail = "dns-error", f"{type(exc).__name__}: {str(exc)[:200]}"
            return answer
    if not answer.addresses and answer.error is None:
        answer.error, answer.detail = "no-answer", f"{host} has no A or AAAA record"
    return answer
