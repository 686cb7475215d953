"""Every shipped scenario, diagnosed end to end: the right check names the right cause with the right fix."""

from __future__ import annotations

import pytest
from conftest import run_against, validate_report

# scenario -> (diagnosis check, status, cause, words the fix or summary must contain, exit code)
EXPECTED = {
    "healthy-system": (None, "pass", None, [], 0),
    "healthy-user": (None, "pass", None, [], 0),
    "system-and-user": ("uami-ambiguity", "warn", "system-wins-silently", ["AZURE_CLIENT_ID"], 0),
    "no-identity": ("identity-attached", "fail", "no-identity", ["az vm identity assign -g rg-midoctor-demo"], 1),
    "multiple-user": ("uami-ambiguity", "fail", "multiple-no-selector", ["AZURE_CLIENT_ID"], 1),
    "unknown-client-id": ("uami-ambiguity", "fail", "selector-not-attached", ["Identity not found",
                                                                               "az vm identity assign"], 1),
    "wrong-cloud-audience": ("token-audience", "fail", "wrong-cloud", ["https://vault.usgovcloudapi.net",
                                                                       "AADSTS500011"], 1),
    "missing-role": ("role-assignment", "fail", "action-not-granted", ["az role assignment create",
                                                                       "--assignee-principal-type ServicePrincipal",
                                                                       "Storage Blob Data Reader"], 1),
    "permissions-paged": (None, "pass", None, [], 0),
    "permissions-forbidden": (None, "pass", None, [], 0),
    "throttled": ("identity-attached", "fail", "imds-unavailable", ["429"], 1),
    "upgrading": ("identity-attached", "warn", "recovered-after-retries", ["410 → 410 → 200"], 0),
    "server-error": ("identity-attached", "warn", "recovered-after-retries", ["500 → 200"], 0),
    "slow": ("imds-reachable", "warn", "slow", ["probe gives up after 1 s"], 0),
    "hang": ("imds-reachable", "fail", "no-answer", ["accepted the connection"], 1),
    "impostor": ("imds-reachable", "fail", "impostor", ["squid", "instead of IMDS"], 1),
    "docker-desktop": ("imds-reachable", "fail", "impostor", ["403", "instead of IMDS"], 1),
}


def test_every_shipped_scenario_has_an_expectation() -> None:
    from midoctor.sim import list_scenarios

    assert {s.name for s in list_scenarios()} == set(EXPECTED)


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_scenario_diagnosis(scenario: str, simulator, report_schema) -> None:
    check_id, status, cause, words, code = EXPECTED[scenario]
    sim = simulator(scenario)
    run = run_against(sim)
    assert run.report is not None
    validate_report(run.report, report_schema)
    assert run.exit_code == code, run.stdout
    diagnosis = run.report["diagnosis"]
    if check_id is None:
        assert diagnosis is None, diagnosis
        assert all(c["status"] in ("pass", "skip") for c in run.report["checks"])
        return
    assert diagnosis is not None
    assert (diagnosis["id"], diagnosis["status"], diagnosis["cause"]) == (check_id, status, cause)
    text = diagnosis["summary"] + " " + str(run.check(check_id)["fix"])
    for word in words:
        assert word in text, (word, text)
    # No token the simulator issued may appear anywhere in the report.
    for token in sim.issued_tokens:
        assert token not in run.stdout
        assert token.split(".")[2] not in run.stdout


def test_permissions_forbidden_is_cannot_determine_not_missing(simulator) -> None:
    run = run_against(simulator("permissions-forbidden"))
    result = run.check("role-assignment")
    assert (result["status"], result["cause"]) == ("skip", "cannot-determine")
    assert "cannot tell" in result["summary"]


def test_permissions_follow_next_link_across_pages(simulator) -> None:
    sim = simulator("permissions-paged")
    run = run_against(sim)
    result = run.check("role-assignment")
    assert (result["status"], result["cause"]) == ("pass", "actions-granted")
    pages = [r for r in sim.requests if r.path.endswith("/providers/Microsoft.Authorization/permissions")]
    assert len(pages) >= 3


def test_dependent_checks_skip_and_name_the_prerequisite(simulator) -> None:
    run = run_against(simulator("no-identity"))
    skipped = run.check("uami-ambiguity")
    assert skipped["status"] == "skip"
    assert "identity-attached" in skipped["summary"] and "no-identity" in skipped["summary"]
    assert skipped["evidence"]["prerequisite"] == "identity-attached"


def test_identity_attached_names_the_answering_identity(simulator) -> None:
    sim = simulator("healthy-user")
    run = run_against(sim, scenario_args=False)
    result = run.check("identity-attached")
    assert result["cause"] == "user-assigned"
    uami = sim.scenario.data["identities"]["user_assigned"][0]
    assert uami["client_id"] in result["summary"]
    assert result["evidence"]["identity"]["object_id"] == uami["principal_id"]


def test_selector_from_azure_client_id_env(simulator) -> None:
    sim = simulator("multiple-user")
    chosen = sim.scenario.data["identities"]["user_assigned"][1]["client_id"]
    run = run_against(sim, scenario_args=False, env={"AZURE_CLIENT_ID": chosen})
    result = run.check("uami-ambiguity")
    assert (result["status"], result["cause"]) == ("pass", "selected-identity")
    assert "AZURE_CLIENT_ID" in result["summary"]


def test_scope_passed_as_resource_is_named(simulator) -> None:
    run = run_against(simulator("healthy-system"), "--resource", "https://vault.azure.net/.default",
                      scenario_args=False)
    result = run.check("token-audience")
    assert (result["status"], result["cause"]) == ("warn", "scope-as-resource")
    assert "https://vault.azure.net" in str(result["fix"])


def test_typo_resource_is_aadsts500011_with_suggestion(simulator) -> None:
    run = run_against(simulator("healthy-system"), "--resource", "https://managment.azure.com",
                      scenario_args=False)
    result = run.check("token-audience")
    assert (result["status"], result["cause"]) == ("fail", "resource-not-found")
    assert "https://management.azure.com" in str(result["fix"])


def test_host_specific_vault_url_suggests_the_service_audience(simulator) -> None:
    run = run_against(simulator("healthy-system"), "--resource", "https://myvault.vault.azure.net",
                      scenario_args=False)
    result = run.check("token-audience")
    assert result["cause"] == "resource-not-found"
    assert "https://vault.azure.net" in str(result["fix"])


def test_vault_trailing_slash_is_named_with_the_exact_form(simulator) -> None:
    run = run_against(simulator("healthy-system"), "--resource", "https://vault.azure.net/", scenario_args=False)
    result = run.check("token-audience")
    assert (result["status"], result["cause"]) == ("fail", "trailing-slash")
    assert "https://vault.azure.net" in str(result["fix"])


def test_arm_accepts_both_slash_forms(simulator) -> None:
    run = run_against(simulator("healthy-system"), "--resource", "https://management.azure.com/",
                      "--resource", "https://management.core.windows.net", scenario_args=False)
    result = run.check("token-audience")
    assert (result["status"], result["cause"]) == ("pass", "audience-ok")
    assert len(result["evidence"]["resources"]) == 2


def test_no_action_lists_permissions_and_warns_when_empty(simulator) -> None:
    run = run_against(simulator("healthy-system"), scenario_args=False)
    assert run.check("role-assignment")["cause"] == "permissions-listed"
    run = run_against(simulator("missing-role"), scenario_args=False)
    result = run.check("role-assignment")
    assert (result["status"], result["cause"]) == ("warn", "no-permissions")


def test_token_requests_are_shared_between_checks(simulator) -> None:
    sim = simulator("healthy-system")
    run_against(sim, scenario_args=False)
    token_requests = [r for r in sim.requests if r.path == "/metadata/identity/oauth2/token"]
    # identity-attached, uami-ambiguity, token-audience and role-assignment all need the same ARM token.
    assert len(token_requests) == 1
    assert sim.max_concurrent_identity <= 5
