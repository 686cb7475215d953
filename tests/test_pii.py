"""--redact-pii on crafted reports: identifying values leave every format, the report keeps working
(fix commands stay valid, links and structure untouched) and placeholders are stable."""

from __future__ import annotations

import html
import json
from typing import Any, Dict, List, Optional

import pytest
from conftest import validate_report

from midoctor.model import Report
from midoctor.pii import redact_report
from midoctor.render import render

FORMATS = ("text", "json", "html", "markdown", "junit")
RUN_ID = "0f0e0d0c-0b0a-4909-8807-060504030201"
SUB = "d8cb41cd-51a0-4000-8000-e7d76fc2effc"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OBJECT_ID = "522dfc71-51a0-4000-8000-6313e165b7d6"
CLIENT_ID = "c4b30fdd-51a0-4000-8000-369a9c5d6274"
VM_ID = "4d5747fc-51a0-4000-8000-06ef60dca74b"
RBAC_DOC = "https://learn.microsoft.com/azure/role-based-access-control/role-assignments-cli"
MI_DOC = ("https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/"
          "how-to-configure-managed-identities")
UAMI = "id-payments-api"


def crafted(hostname: str, vm: str = "web-frontend-01", group: str = "rg-payments-prod") -> Report:
    """A report shaped like a real run: host facts from IMDS, ARM ids, GUIDs in evidence and fix commands."""
    scope = f"/subscriptions/{SUB}/resourceGroups/{group}"
    vm_id = f"{scope}/providers/Microsoft.Compute/virtualMachines/{vm}"
    uami_id = f"{scope}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{UAMI}"
    checks: List[Dict[str, Any]] = [
        {"id": "imds-reachable", "title": "IMDS answers", "status": "pass", "cause": "reachable",
         "summary": f"IMDS answered {hostname} in 6 ms.", "evidence": {"hostname": hostname}, "fix": None,
         "duration_ms": 6.0},
        {"id": "identity-attached", "title": "An identity is attached", "status": "fail", "cause": "no-identity",
         "summary": f"The VM '{vm}' in {group} has no managed identity (see {vm_id}).",
         "evidence": {"vm": {"name": vm, "resource_id": vm_id, "vmId": VM_ID},
                      "request": {"url": f"http://127.0.0.1:1/metadata/identity/oauth2/token?msi_res_id=%2F"
                                         f"subscriptions%2F{SUB}%2F"}},
         "fix": {"text": f"Enable an identity on {vm}.",
                 "commands": [{"shell": "az", "text": f"az vm identity assign -g {group} -n {vm}"}],
                 "links": [MI_DOC]},
         "duration_ms": 4.0},
        {"id": "role-assignment", "title": "The identity has the roles it needs", "status": "fail",
         "cause": "action-not-granted",
         "summary": f"The identity {UAMI} may not read blobs at {scope}.",
         "evidence": {"identity": {"object_id": OBJECT_ID, "client_id": CLIENT_ID, "resource_id": uami_id},
                      "claims": {"oid": OBJECT_ID, "tid": TENANT, "xms_mirid": uami_id},
                      "scope": scope, "hostname": hostname},
         "fix": {"text": "Assign a role that grants the read to the identity at the scope.",
                 "commands": [
                     {"shell": "az", "text": f"az role assignment create --assignee-object-id {OBJECT_ID} "
                                             f"--assignee-principal-type ServicePrincipal --role \"Storage Blob "
                                             f"Data Reader\" --scope {scope}"},
                     {"shell": "az", "text": f"az role assignment list --assignee {OBJECT_ID} --all -o table"},
                     {"shell": "bash", "text": f"ssh {hostname} 'curl -sS -H Metadata:true http://{hostname}:80/'"},
                 ],
                 "links": [RBAC_DOC, "https://learn.microsoft.com/azure/role-based-access-control/troubleshooting"]},
         "duration_ms": 12.0},
    ]
    return Report.from_dict({
        "schema_version": "1.0", "tool": {"name": "midoctor", "version": "0.1.0"}, "run_id": RUN_ID,
        "started_at": "2025-01-01T00:00:00Z", "duration_ms": 30.0, "interrupted": False,
        "host": {"hostname": hostname, "os": "Linux", "name": vm, "resourceGroupName": group,
                 "subscriptionId": SUB, "vmId": VM_ID, "location": "eastus", "resourceId": vm_id},
        "config": {"imds_url": "http://127.0.0.1:1", "scope": scope, "actions": ["Microsoft.Storage/x/read"],
                   "selector": {"client_id": CLIENT_ID, "object_id": None, "msi_res_id": uami_id}},
        "checks": checks,
    })


def fix_commands(report: Report, check_id: str) -> List[str]:
    result = next(c for c in report.checks if c.check_id == check_id)
    assert result.fix is not None
    return [c.text for c in result.fix.commands]


def check(report: Report, check_id: str) -> Any:
    return next(c for c in report.checks if c.check_id == check_id)


def rendered(report: Report, fmt: str) -> str:
    return render(report, fmt, verbose=True)


def contains(text: str, needle: str) -> bool:
    """In the text as written or as HTML/XML escapes it."""
    return needle in text or html.escape(needle, quote=False) in text or html.escape(needle) in text


@pytest.mark.parametrize("hostname", ["role", "vm", "sign", "web-frontend-01"])
def test_fix_commands_stay_valid_whatever_the_host_is_called(hostname: str) -> None:
    redacted = redact_report(crafted(hostname))
    create, listing, ssh = fix_commands(redacted, "role-assignment")
    assert create.startswith("az role assignment create --assignee-object-id <id-")
    assert "--assignee-principal-type ServicePrincipal --role \"Storage Blob Data Reader\" --scope " in create
    assert create.endswith("/resourceGroups/<resource-group-1>")
    assert listing.startswith("az role assignment list --assignee <id-") and listing.endswith(" --all -o table")
    assert fix_commands(redacted, "identity-attached") == ["az vm identity assign -g <resource-group-1> -n <vm-1>"]
    host_placeholder = redacted.host["hostname"]
    assert host_placeholder in ("<host-1>", "<vm-1>")  # a host named like its VM shares the VM's placeholder
    if hostname not in ("role", "vm"):  # unambiguous names are replaced as tokens too
        assert ssh == f"ssh {host_placeholder} 'curl -sS -H Metadata:true http://{host_placeholder}:80/'"


@pytest.mark.parametrize("hostname", ["role", "vm"])
def test_a_short_or_vocabulary_host_name_is_replaced_only_as_a_whole_field(hostname: str) -> None:
    redacted = redact_report(crafted(hostname))
    assert redacted.host["hostname"] == "<host-1>"
    assert check(redacted, "role-assignment").evidence["hostname"] == "<host-1>"
    assert check(redacted, "imds-reachable").evidence["hostname"] == "<host-1>"
    # Never inside other words or the report's structure.
    assert [c.check_id for c in redacted.checks] == ["imds-reachable", "identity-attached", "role-assignment"]
    assert check(redacted, "role-assignment").title == "The identity has the roles it needs"
    assert check(redacted, "role-assignment").cause == "action-not-granted"
    assert "<host-1>" not in json.dumps(redacted.to_dict()["checks"][2]["fix"])


def test_documentation_links_and_shells_are_never_touched() -> None:
    for hostname in ("role", "learn", "azure", "microsoft", "identity", "troubleshooting", "sign"):
        redacted = redact_report(crafted(hostname, group="role-assignments-cli"))
        fix = check(redacted, "role-assignment").fix
        assert list(fix.links) == [RBAC_DOC, "https://learn.microsoft.com/azure/role-based-access-control/"
                                             "troubleshooting"], hostname
        assert [c.shell for c in fix.commands] == ["az", "az", "bash"]
        assert list(check(redacted, "identity-attached").fix.links) == [MI_DOC]


def test_short_names_are_replaced_where_they_are_a_path_segment_or_a_name_argument() -> None:
    redacted = redact_report(crafted("vm", vm="app", group="test"))
    assert redacted.host["name"] == "<vm-1>" and redacted.host["resourceGroupName"] == "<resource-group-1>"
    assert redacted.host["resourceId"] == ("/subscriptions/<subscription-1>/resourceGroups/<resource-group-1>"
                                           "/providers/Microsoft.Compute/virtualMachines/<vm-1>")
    assert fix_commands(redacted, "identity-attached") == ["az vm identity assign -g <resource-group-1> -n <vm-1>"]
    assert check(redacted, "identity-attached").evidence["vm"]["name"] == "<vm-1>"
    # The words themselves survive in prose: "test" or "app" say nothing about who this is.
    assert check(redacted, "identity-attached").summary.startswith("The VM 'app' in test has no managed identity")


def test_names_are_replaced_as_tokens_not_inside_longer_names() -> None:
    report = crafted("payments")
    data = report.to_dict()
    data["checks"][0]["summary"] = ("payments.contoso.com and payments-api and mypayments differ from payments; "
                                    "it runs on payments.")
    redacted = redact_report(Report.from_dict(data))
    assert check(redacted, "imds-reachable").summary == (
        "payments.contoso.com and payments-api and mypayments differ from <host-1>; it runs on <host-1>.")


def test_every_guid_but_the_run_id_is_replaced_even_url_encoded() -> None:
    redacted = redact_report(crafted("vm"))
    text = json.dumps(redacted.to_dict())
    for guid in (SUB, TENANT, OBJECT_ID, CLIENT_ID, VM_ID):
        assert guid not in text and guid.upper() not in text
    assert redacted.run_id == RUN_ID
    url = check(redacted, "identity-attached").evidence["request"]["url"]
    assert url.endswith("msi_res_id=%2Fsubscriptions%2F<subscription-1>%2F")
    assert redacted.config["pii_redacted"] is True


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("hostname", ["role", "vm", "db-host-7"])
def test_identifying_values_are_gone_from_every_format(fmt: str, hostname: str) -> None:
    original = crafted(hostname)
    before = rendered(original, fmt)
    after = rendered(redact_report(original), fmt)
    for value in ("web-frontend-01", "rg-payments-prod", UAMI, SUB, TENANT, OBJECT_ID, CLIENT_ID, VM_ID):
        assert contains(before, value), (fmt, value)  # the test means something
        assert not contains(after, value), (fmt, value)
    if hostname == "db-host-7":  # "role" and "vm" stay in ordinary words (az role ..., az vm ...) by design
        assert not contains(after, hostname)
    for placeholder in ("<vm-1>", "<resource-group-1>", "<subscription-1>"):
        assert contains(after, placeholder), (fmt, placeholder)
    for link in (RBAC_DOC, MI_DOC):  # not every format shows every fix's links; none loses one
        assert contains(after, link) == contains(before, link), (fmt, link)
    shown = contains(before, "az role assignment create --assignee-object-id ")  # text shows the first fix only
    assert contains(after, "az role assignment create --assignee-object-id <id-") is shown


def test_the_same_value_gets_the_same_placeholder_everywhere() -> None:
    redacted = redact_report(crafted("db-host-7")).to_dict()
    role = redacted["checks"][2]
    object_placeholder = role["evidence"]["identity"]["object_id"]
    assert object_placeholder.startswith("<id-")
    assert role["evidence"]["claims"]["oid"] == object_placeholder
    assert all(object_placeholder in c["text"] for c in role["fix"]["commands"][:2])
    uami_placeholder = role["evidence"]["identity"]["resource_id"].rsplit("/", 1)[1]
    assert uami_placeholder.startswith("<name-")
    assert role["summary"] == f"The identity {uami_placeholder} may not read blobs at " \
                              f"/subscriptions/<subscription-1>/resourceGroups/<resource-group-1>."
    assert redacted["config"]["selector"]["msi_res_id"] == role["evidence"]["identity"]["resource_id"]
    assert redacted["host"]["hostname"] == "<host-1>"
    assert role["fix"]["commands"][2]["text"].startswith("ssh <host-1> ")


def test_a_host_named_like_its_vm_shares_the_placeholder() -> None:
    redacted = redact_report(crafted("WEB-FRONTEND-01"))
    assert redacted.host["hostname"] == redacted.host["name"] == "<vm-1>"


def test_redacting_twice_changes_nothing_more(report_schema: Optional[Dict[str, Any]]) -> None:
    once = redact_report(crafted("role"))
    assert redact_report(once).to_dict() == once.to_dict()
    assert report_schema is not None
    validate_report(once.to_dict(), report_schema)
