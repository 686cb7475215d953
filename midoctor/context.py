"""The run context: facts gathered lazily and once, shared by every check through injection.

Two checks asking for the same fact (the same token, the instance metadata) cause one request: each
fact is memoized under a key, and concurrent askers wait for the first one instead of asking again.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Hashable, Mapping, Optional, TypeVar

from midoctor.config import Config, Selector
from midoctor.facts import clouds
from midoctor.facts.imds import Exchange, ImdsClient, TokenResult, compute_section, text_field
from midoctor.model import Result

T = TypeVar("T")


class Context:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._memo: Dict[Hashable, Any] = {}
        self._locks: Dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()
        self._results: Dict[str, Result] = {}
        self._imds: Optional[ImdsClient] = None
        self._arm: Any = None

    # -- memoization -------------------------------------------------------------------------------
    def fact(self, key: Hashable, produce: Callable[[], T]) -> T:
        with self._guard:
            if key in self._memo:
                return self._memo[key]
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            with self._guard:
                if key in self._memo:
                    return self._memo[key]
            value = produce()
            with self._guard:
                self._memo[key] = value
            return value

    def seed(self, key: Hashable, value: Any) -> None:
        """Provide a fact up front (tests, recorded inputs) so no probe runs for it."""
        with self._guard:
            self._memo[key] = value

    @property
    def environ(self) -> Mapping[str, str]:
        return self.config.environ

    # -- results of checks that already ran (for dependent checks) ----------------------------------
    def record(self, result: Result) -> None:
        with self._guard:
            self._results[result.check_id] = result

    def result_of(self, check_id: str) -> Optional[Result]:
        with self._guard:
            return self._results.get(check_id)

    # -- IMDS ---------------------------------------------------------------------------------------
    @property
    def imds(self) -> ImdsClient:
        with self._guard:
            if self._imds is None:
                self._imds = ImdsClient(
                    self.config.imds_url, self.config.imds_connect_timeout, self.config.imds_read_timeout
                )
            return self._imds

    def instance(self) -> Exchange:
        return self.fact("imds.instance", self.imds.instance)

    def compute(self) -> Optional[Dict[str, Any]]:
        return compute_section(self.instance())

    def compute_field(self, key: str) -> Optional[str]:
        return text_field(self.compute(), key)

    def cloud(self) -> clouds.Cloud:
        """The VM's cloud; public when IMDS cannot tell (the default of every Azure SDK)."""
        return clouds.cloud_named(self.compute_field("azEnvironment")) or clouds.PUBLIC

    def arm_resource(self) -> str:
        return self.cloud().arm_resource

    def resources(self) -> tuple:
        return self.config.resources or (self.arm_resource(),)

    def token(self, resource: str, selector: Selector) -> TokenResult:
        key = ("imds.token", resource, tuple(sorted(selector.query().items())))
        return self.fact(key, lambda: self.imds.token(resource, selector))

    # -- ARM ----------------------------------------------------------------------------------------
    def arm_url(self) -> str:
        return (self.config.arm_url or self.cloud().arm_url).rstrip("/")

    @property
    def arm(self) -> Any:
        from midoctor.facts.arm import ArmClient

        # arm_url() may read instance metadata through fact(), which takes _guard: resolve it first.
        base_url = self.arm_url()
        with self._guard:
            if self._arm is None:
                self._arm = ArmClient(base_url, self.config.environ)
            return self._arm

    def attached(self, token: Optional[TokenResult]) -> Any:
        """The identities attached to this VM per ARM, read once with the first usable token offered."""
        from midoctor.facts.attached import read_attached

        return self.fact("arm.attached", lambda: read_attached(self.arm, self.compute(), token))

    def close(self) -> None:
        for client in (self._imds, self._arm):
            if client is not None:
                try:
                    client.close()
                except Exception:  # noqa: BLE001 - closing must never mask a report
                    pass

    # -- host ---------------------------------------------------------------------------------------
    def host_facts(self) -> Dict[str, Any]:
        from midoctor.facts.host import gather_host

        return self.fact("host", gather_host)

    def report_host(self) -> Dict[str, Any]:
        """What the report header says about the machine: local facts plus instance metadata if read."""
        host: Dict[str, Any] = dict(self.host_facts())
        compute = self.compute() if "imds.instance" in self._memo else None
        if compute:
            for key in ("name", "resourceGroupName", "subscriptionId", "location", "vmId", "vmSize", "osType",
                        "azEnvironment", "vmScaleSetName", "resourceId"):
                value = text_field(compute, key)
                if value:
                    host[key] = value
        return host
