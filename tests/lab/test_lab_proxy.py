"""HTTP_PROXY pointing at a real forwarding proxy (tinyproxy) inside the VM (failure-catalog F08).

tinyproxy runs on the VM's loopback and forwards from the VM namespace, so a proxied IMDS request really
reaches the simulator through it: its log is the proof of who went through the proxy. midoctor runs
first and azure-identity only afterwards, so the log lines of the two are not mixed.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import pytest

from .netlab import AzureVm, Lab, TinyProxy

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("need_tinyproxy")]

WALL_BOUND_S = 10.0


def _imds_requests(lines: List[str]) -> List[str]:
    # IMDS paths only: midoctor's ARM calls (--arm-url is the simulator) may rightly use the proxy.
    return [line for line in lines if "169.254.169.254/metadata" in line]


def _proxied_scenario(vm: AzureVm, lab: Lab, diagnose, label: str, no_proxy: Optional[str]):
    vm.serve_imds("healthy-system")
    proxy = lab.tinyproxy(vm.vm)
    env = {"HTTP_PROXY": proxy.url}
    if no_proxy is not None:
        env["NO_PROXY"] = no_proxy
    # The lab's proxy runs on the VM itself and can reach IMDS, so a proxied SDK still gets a token here;
    # a real corporate proxy elsewhere would answer with its own error page (F08).
    note = "tinyproxy on the VM's loopback; it can reach IMDS itself"
    run = diagnose(label, vm.vm, env=env, sdk="after", note=note)
    midoctor_lines = proxy.requests()
    # imds-reachable never uses a proxy (trust_env off): nothing of midoctor's IMDS traffic is in the log.
    assert _imds_requests(midoctor_lines) == [], midoctor_lines
    assert run.verdict("imds-reachable") == ("pass", "healthy")
    assert run.wall_s < WALL_BOUND_S
    return run, proxy, midoctor_lines


def _sdk_lines(lab: Lab, proxy: TinyProxy, before: List[str]) -> List[str]:
    lab.sdk_runs[-1].finish()  # fast in these scenarios (the proxy forwards to a healthy IMDS)
    return _imds_requests(proxy.requests()[len(before):])


def test_proxy_without_no_proxy_intercepts(vm: AzureVm, lab: Lab, diagnose) -> None:
    run, proxy, before = _proxied_scenario(vm, lab, diagnose, "HTTP_PROXY=tinyproxy, NO_PROXY missing", None)
    assert run.verdict("proxy-route") == ("fail", "proxy-intercepts-imds")
    assert "127.0.0.1:3128" in run.check("proxy-route")["summary"]
    # The proxy is real and in use: midoctor's own ARM calls went through it ...
    assert any("/subscriptions/" in line for line in before), before
    # ... and so did azure-identity's token request (requests honours HTTP_PROXY).
    assert _sdk_lines(lab, proxy, before), proxy.requests()


def test_no_proxy_exact_address_bypasses(vm: AzureVm, lab: Lab, diagnose, clean_path: Tuple[str, str]) -> None:
    run, proxy, before = _proxied_scenario(vm, lab, diagnose, "HTTP_PROXY=tinyproxy, NO_PROXY=169.254.169.254",
                                           "169.254.169.254")
    assert run.verdict("proxy-route") == clean_path
    assert _sdk_lines(lab, proxy, before) == []


def test_no_proxy_cidr_is_partial(vm: AzureVm, lab: Lab, diagnose) -> None:
    run, proxy, before = _proxied_scenario(vm, lab, diagnose, "HTTP_PROXY=tinyproxy, NO_PROXY=169.254.0.0/16 only",
                                           "169.254.0.0/16")
    assert run.verdict("proxy-route") == ("warn", "no-proxy-partial")
    summary = run.check("proxy-route")["summary"]
    assert "httpx" in summary and "urllib" in summary, summary
    # requests (azure-identity's transport) honours the CIDR: the SDK went direct, as midoctor predicted.
    assert _sdk_lines(lab, proxy, before) == []
