"""Nothing secret reaches a report, in any format; --redact-pii also hides who and where."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from conftest import invoke

from midoctor.redact import MASK, redact_env_value, redact_headers, redact_url, token_summary
from midoctor.sim import Scenario, load_scenario

CANARY = "c4n4ry-S3CRET-9f1b2e"
FORMATS = ("text", "json", "html", "markdown", "junit")


def canary_scenario() -> Scenario:
    """A VM whose user-controlled metadata carries the canary and hostile markup."""
    data = json.loads(json.dumps(load_scenario("healthy-system").data))
    data["name"] = "canary"
    data["vm"]["tags"] = {"secret": CANARY, "html": "<script>alert(1)</script>", "ctl": "\u001b[2J\u0000"}
    data["vm"].setdefault("compute_overrides", {})["userData"] = CANARY
    data["faults"] = {"identity": {"sequence": [{"status": 500, "headers": {"Set-Cookie": CANARY}}], "then": "ok"}}
    return Scenario.from_dict(data)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("fmt", FORMATS)
def test_canary_never_appears_in_any_format(simulator, fmt: str) -> None:
    sim = simulator(canary_scenario())
    env = {
        # ARM calls honour the proxy: point it at a closed loopback port, with the canary as password.
        "HTTPS_PROXY": f"http://user:{CANARY}@127.0.0.1:{free_port()}",
        "HTTP_PROXY": f"http://user:{CANARY}@127.0.0.1:{free_port()}",
        "NO_PROXY": "127.0.0.1,localhost",
        "AZURE_CLIENT_SECRET": CANARY,
        "IDENTITY_HEADER": CANARY,
        "MSI_SECRET": CANARY,
        "AZURE_STORAGE_CONNECTION_STRING": f"AccountKey={CANARY}",
    }
    run = invoke(["run", "--imds-url", sim.url, "--arm-url", sim.url.replace("127.0.0.1", "localhost"),
                  "--format", fmt, "-v", "--action", "Microsoft.Compute/virtualMachines/read"], env=env)
    assert run.exit_code in (0, 1, 3), run.stderr
    assert sim.issued_tokens, "the scenario must issue tokens for this test to mean anything"
    for token in sim.issued_tokens:
        assert token not in run.stdout
        assert token.split(".")[2] not in run.stdout  # not even the signature
    assert CANARY not in run.stdout
    assert CANARY not in run.stderr


def test_canary_never_reaches_report_files(simulator, tmp_path: Path) -> None:
    sim = simulator(canary_scenario())
    invoke(["run", "--imds-url", sim.url, "--arm-url", sim.url, "--output", str(tmp_path)],
           env={"HTTP_PROXY": f"http://u:{CANARY}@127.0.0.1:9", "AZURE_CLIENT_SECRET": CANARY})
    for path in tmp_path.iterdir():
        text = path.read_text()
        assert CANARY not in text, path.name
        for token in sim.issued_tokens:
            assert token not in text


def test_redaction_primitives() -> None:
    assert redact_url(f"http://user:{CANARY}@proxy:3128") == "http://***@proxy:3128"
    assert CANARY not in redact_url(f"https://a.blob.core.windows.net/c?sv=2022&sig={CANARY}&se=2030&sp=r")
    assert "sv=" in redact_url("https://a/c?sv=2022&sig=x")
    assert CANARY not in redact_url(f"https://login/x?client_secret={CANARY}&assertion={CANARY}")
    assert redact_headers({"Authorization": "Bearer x", "X-IDENTITY-HEADER": "y", "Server": "IMDS/1"}) == \
        {"Authorization": MASK, "X-IDENTITY-HEADER": MASK, "Server": "IMDS/1"}
    for name in ("AZURE_CLIENT_SECRET", "GITHUB_TOKEN", "DB_PASSWORD", "API_KEY", "X_CONNECTION_STRING",
                 "IDENTITY_HEADER", "MSI_SECRET"):
        assert redact_env_value(name, CANARY) == "set"
    assert redact_env_value("HTTP_PROXY", f"http://u:{CANARY}@p:1") == "http://***@p:1"


def test_token_summary_keeps_only_non_secret_claims(simulator) -> None:
    import httpx

    sim = simulator("healthy-user")
    with httpx.Client(trust_env=False) as client:
        body = client.get(sim.url + "/metadata/identity/oauth2/token",
                          params={"api-version": "2018-02-01", "resource": "https://vault.azure.net"},
                          headers={"Metadata": "true"}).json()
    summary = token_summary(body["access_token"])
    assert summary["length"] == len(body["access_token"]) and len(summary["sha256_prefix"]) == 12
    assert set(summary["claims"]) <= {"aud", "iss", "tid", "oid", "appid", "azp", "xms_mirid", "idtyp", "iat",
                                      "nbf", "exp", "ver", "sub"}
    assert summary["claims"]["aud"] == "https://vault.azure.net"
    assert "uti" not in summary["claims"] and "aio" not in summary["claims"]


def test_redact_pii_hides_who_and_where_consistently(simulator, tmp_path: Path) -> None:
    sim = simulator("no-identity")
    vm = sim.scenario.data["vm"]
    run = invoke(["run", "--imds-url", sim.url, "--arm-url", sim.url, "--redact-pii", "--format", "json"])
    text = run.stdout
    for secret in (vm["subscription_id"], vm["name"], vm["resource_group"], vm.get("vm_id", "")):
        if secret:
            assert secret not in text, secret
    report = json.loads(text)
    assert report["config"]["pii_redacted"] is True
    fix = report["diagnosis"]["fix"]["commands"][0]["text"]
    assert fix == "az vm identity assign -g <resource-group-1> -n <vm-1>"
    assert "<vm-1>" in report["diagnosis"]["summary"]  # the same placeholder everywhere
    assert report["host"]["hostname"] != socket.gethostname()


def test_redact_pii_on_rerender(simulator, tmp_path: Path) -> None:
    sim = simulator("healthy-user")
    invoke(["run", "--imds-url", sim.url, "--arm-url", sim.url, "--output", str(tmp_path)])
    uami = sim.scenario.data["identities"]["user_assigned"][0]
    assert uami["client_id"] in (tmp_path / "report.json").read_text()
    for fmt in FORMATS:
        out = invoke(["render", str(tmp_path / "report.json"), "--format", fmt, "--redact-pii"]).stdout
        assert uami["client_id"] not in out and uami["principal_id"] not in out and uami["name"] not in out
