"""Real HTTP against the simulator on 127.0.0.1 (httpx with trust_env=False; no proxies, no Azure)."""

from __future__ import annotations

import base64
import concurrent.futures
import copy
import json
import socket
import threading
import time
from typing import Any, Iterator, Optional

import httpx
import pytest

from midoctor.sim import Scenario, Simulator, list_scenarios, load_scenario
from midoctor.sim import imds as imds_module

API = "2018-02-01"
TOKEN = "/metadata/identity/oauth2/token"
INSTANCE = "/metadata/instance"
ARM_RESOURCE = "https://management.azure.com/"
MD = {"Metadata": "true"}
SERVER = "IMDS/150.870.65.1854"

SHIPPED = [
    "docker-desktop", "hang", "healthy-system", "healthy-user", "impostor", "missing-role", "multiple-user",
    "no-identity", "permissions-forbidden", "permissions-paged", "server-error", "slow", "system-and-user",
    "throttled", "unknown-client-id", "upgrading", "wrong-cloud-audience",
]


# --- helpers -----------------------------------------------------------------------------------------


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=5) as c:
        yield c


@pytest.fixture
def run() -> Iterator[Any]:
    """Start simulators and always stop them, even when a test fails."""
    sims: list[Simulator] = []

    def start(scenario: Any) -> Simulator:
        sim = Simulator(scenario).start()
        sims.append(sim)
        return sim

    yield start
    for sim in sims:
        sim.stop()


def custom(base: str = "healthy-system", **changes: Any) -> Scenario:
    data = copy.deepcopy(load_scenario(base).data)
    data["name"] = "custom-" + base
    data.update(changes)
    return Scenario.from_dict(data)


def get_token(client: httpx.Client, sim: Simulator, resource: Optional[str] = ARM_RESOURCE,
              headers: Optional[dict[str, str]] = None, **params: str) -> httpx.Response:
    query: dict[str, str] = {"api-version": API}
    if resource is not None:
        query["resource"] = resource
    query.update(params)
    return client.get(sim.url + TOKEN, params=query, headers=MD if headers is None else headers)


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def header_of(token: str) -> dict[str, Any]:
    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))


def arm_get(client: httpx.Client, sim: Simulator, path: str, token: Optional[str],
            api_version: str = "2022-04-01") -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(sim.url + path, params={"api-version": api_version}, headers=headers)


def permissions_path(scope: str) -> str:
    return scope + "/providers/Microsoft.Authorization/permissions"


def assert_imds_headers(resp: httpx.Response) -> None:
    assert resp.headers["server"] == SERVER
    assert resp.headers["content-length"] == str(len(resp.content))
    assert "date" in resp.headers


# --- scenarios ---------------------------------------------------------------------------------------


def test_list_scenarios_is_the_public_contract() -> None:
    scenarios = list_scenarios()
    assert [s.name for s in scenarios] == SHIPPED
    for s in scenarios:
        assert s.description and "\n" not in s.description
        assert s.path is not None and s.path.stem == s.name
        assert set(s.demo) <= {"client_id", "resources", "actions", "scope"}
        assert s.data["name"] == s.name


def test_load_scenario_errors(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="valid names: docker-desktop, hang, healthy-system"):
        load_scenario("nope")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "bad", "vm": {"nmae": "typo"}}))
    with pytest.raises(ValueError, match="unknown keys"):
        load_scenario(str(bad))
    good = tmp_path / "mine.json"
    good.write_text(json.dumps({"name": "mine", "description": "x", "identities": {"system_assigned": {}}}))
    assert load_scenario(str(good)).world().system is not None
    with pytest.raises(ValueError, match="not found"):
        load_scenario(str(tmp_path / "missing.json"))


EXPECTED_TOKEN_OUTCOME = {
    "healthy-system": (200, None),
    "healthy-user": (200, None),
    "system-and-user": (200, None),
    "no-identity": (400, "Identity not found"),
    "multiple-user": (400, "Multiple user assigned identities exist"),
    "unknown-client-id": (400, "Identity not found"),
    "wrong-cloud-audience": (400, "AADSTS500011"),
    "missing-role": (200, None),
    "permissions-paged": (200, None),
    "permissions-forbidden": (200, None),
    "throttled": (429, "too_many_requests"),
    "upgrading": (410, None),
    "server-error": (500, "server_error"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_TOKEN_OUTCOME))
def test_every_imds_scenario_serves_instance_and_token(name: str, run: Any, client: httpx.Client) -> None:
    sim = run(name)
    scenario = load_scenario(name)
    inst = client.get(sim.url + INSTANCE, params={"api-version": "2021-02-01"}, headers=MD)
    assert inst.status_code == 200
    assert_imds_headers(inst)
    assert inst.json()["compute"]["name"] == scenario.data["vm"]["name"]
    params = {"client_id": scenario.demo["client_id"]} if "client_id" in scenario.demo else {}
    resp = get_token(client, sim, scenario.demo["resources"][0], **params)
    status, text = EXPECTED_TOKEN_OUTCOME[name]
    assert resp.status_code == status, resp.text
    assert_imds_headers(resp)
    if status == 200:
        assert resp.json()["access_token"] in sim.issued_tokens
    if text:
        assert text in resp.text


def test_impostor_proxy_answers_everything_without_imds_header(run: Any, client: httpx.Client) -> None:
    sim = run("impostor")
    for path in (TOKEN, INSTANCE, "/anything"):
        resp = client.get(sim.url + path, params={"api-version": API, "resource": ARM_RESOURCE}, headers=MD)
        assert resp.status_code == 502
        assert resp.headers["server"] == "squid/5.7"
        assert resp.headers["x-squid-error"] == "ERR_CONNECT_FAIL 111"
        assert resp.headers["content-type"].startswith("text/html")
        assert "<title>ERROR: The requested URL could not be retrieved</title>" in resp.text
    assert sim.issued_tokens == []


def test_docker_desktop_403_text(run: Any, client: httpx.Client) -> None:
    sim = run("docker-desktop")
    resp = get_token(client, sim)
    assert resp.status_code == 403
    assert resp.http_version == "HTTP/1.0"
    assert "unreachable network" in resp.reason_phrase
    assert resp.text.startswith("connecting to 169.254.169.254:80: ")
    assert resp.headers["content-type"].startswith("text/plain")
    assert "server" not in resp.headers


# --- exact IMDS bodies and request checks ------------------------------------------------------------


def test_metadata_header_required_with_exact_bodies(run: Any, client: httpx.Client) -> None:
    sim = run("healthy-system")
    for headers in ({}, {"Metadata": "True"}, {"Metadata": "false"}):
        resp = get_token(client, sim, headers=headers)
        assert resp.status_code == 400
        assert resp.content == (
            b'{"error":"invalid_request","error_description":"Required metadata header not specified"}')
        assert resp.headers["content-length"] == "88"
        assert resp.headers["content-type"] == "application/json; charset=utf-8"
        assert_imds_headers(resp)
    inst = client.get(sim.url + INSTANCE, params={"api-version": "2021-02-01"})
    assert inst.status_code == 400
    assert inst.content == b'{ "error": "Bad request: . Required metadata header not specified" }'
    assert "x-ms-request-id" in inst.headers


def test_identity_error_bodies_are_exact(run: Any, client: httpx.Client) -> None:
    none = get_token(client, run("no-identity"))
    assert none.content == b'{"error":"invalid_request","error_description":"Identity not found"}'
    assert none.headers["content-length"] == "68"
    multi = get_token(client, run("multiple-user"))
    assert multi.headers["content-length"] == "168"
    assert multi.json()["error_description"].startswith("Multiple user assigned identities exist, please specify")
    missing = get_token(client, run("healthy-system"), resource=None)
    assert missing.status_code == 400
    assert missing.content == (
        b'{"error":"invalid_request","error_description":"Required query variable \'resource\' is missing"}')


def test_x_forwarded_for_is_rejected(run: Any, client: httpx.Client) -> None:
    sim = run("healthy-system")
    resp = get_token(client, sim, headers={"Metadata": "true", "X-Forwarded-For": "10.0.0.4"})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"
    inst = client.get(sim.url + INSTANCE, params={"api-version": "2021-02-01"},
                      headers={"Metadata": "true", "X-Forwarded-For": "10.0.0.4"})
    assert inst.status_code == 400 and "X-Forwarded-For" in inst.json()["error"]
    assert sim.issued_tokens == []


def test_duplicate_query_parameters_are_rejected(run: Any, client: httpx.Client) -> None:
    sim = run("healthy-system")
    url = f"{sim.url}{TOKEN}?api-version={API}&resource={ARM_RESOURCE}&resource={ARM_RESOURCE}"
    assert client.get(url, headers=MD).status_code == 400
    url = f"{sim.url}{INSTANCE}?api-version=2021-02-01&api-version=2021-02-01"
    assert client.get(url, headers=MD).status_code == 400


@pytest.mark.parametrize("path, version", [
    (INSTANCE, None), (INSTANCE, "2099-01-01"), (TOKEN, None), (TOKEN, "2017-12-01"),
])
def test_api_version_missing_or_invalid(path: str, version: Optional[str], run: Any, client: httpx.Client) -> None:
    sim = run("healthy-system")
    params = {"resource": ARM_RESOURCE}
    if version:
        params["api-version"] = version
    resp = client.get(sim.url + path, params=params, headers=MD)
    assert resp.status_code == 400
    body = resp.json()
    assert body["error"].startswith("Bad request. api-version is invalid or was not specified in the request.")
    assert body["newest-versions"] == ["2025-04-07", "2024-07-17", "2024-03-15"]


# --- identity selection and tokens --------------------------------------------------------------------


def test_identity_selection_rules(run: Any, client: httpx.Client) -> None:
    sim = run("system-and-user")
    world = sim.world
    assert world.system is not None
    uami = world.users[0]
    assert get_token(client, sim).json()["client_id"] == world.system.client_id
    for name, value in (("client_id", uami.client_id), ("object_id", uami.principal_id),
                        ("msi_res_id", uami.resource_id), ("mi_res_id", uami.resource_id.lower())):
        resp = get_token(client, sim, **{name: value})
        assert resp.status_code == 200, (name, resp.text)
        assert claims_of(resp.json()["access_token"])["oid"] == uami.principal_id
    both = get_token(client, sim, client_id=uami.client_id, object_id=uami.principal_id)
    assert both.status_code == 400 and both.json()["error"] == "invalid_request"
    stray = get_token(client, sim, client_id="00000000-51a0-4000-8000-000000000000")
    assert stray.json()["error_description"] == "Identity not found"

    single = run("healthy-user")
    assert get_token(client, single).json()["client_id"] == single.world.users[0].client_id
    multi = run("multiple-user")
    chosen = multi.world.users[1]
    assert get_token(client, multi, client_id=chosen.client_id).json()["client_id"] == chosen.client_id


def test_token_response_and_jwt_claims(run: Any, client: httpx.Client) -> None:
    sim = run("system-and-user")
    world = sim.world
    assert world.system is not None
    for resource in ("https://management.azure.com", ARM_RESOURCE, "https://vault.azure.net"):
        body = get_token(client, sim, resource).json()
        assert list(body) == sorted(body) and "refresh_token" not in body
        assert all(isinstance(v, str) for v in body.values())
        assert body["resource"] == resource and body["token_type"] == "Bearer"
        claims = claims_of(body["access_token"])
        assert claims["aud"] == resource
        assert int(body["expires_on"]) == claims["exp"] and int(body["not_before"]) == claims["nbf"]
        assert claims["exp"] - claims["iat"] == 86700 and 86000 < int(body["expires_in"]) < 86700
        assert body["ext_expires_in"] == "86399"
    head = header_of(body["access_token"])
    assert head["typ"] == "JWT" and head["alg"] == "RS256" and head["x5t"] == head["kid"]
    sys_claims = claims
    vm = world.vm
    assert sys_claims["appid"] == world.system.client_id == body["client_id"]
    assert sys_claims["oid"] == sys_claims["sub"] == world.system.principal_id
    assert sys_claims["iss"] == sys_claims["idp"] == f"https://sts.windows.net/{world.tenant_id}/"
    assert sys_claims["tid"] == world.tenant_id
    assert (sys_claims["appidacr"], sys_claims["idtyp"], sys_claims["ver"]) == ("2", "app", "1.0")
    assert sys_claims["xms_mirid"] == (f"/subscriptions/{vm.subscription_id}/resourcegroups/{vm.resource_group}"
                                       f"/providers/Microsoft.Compute/virtualMachines/{vm.name}")
    assert isinstance(sys_claims["xms_tcdt"], str) and sys_claims["uti"]
    uami = world.users[0]
    user_claims = claims_of(get_token(client, sim, client_id=uami.client_id).json()["access_token"])
    assert user_claims["xms_mirid"] == (
        f"/subscriptions/{vm.subscription_id}/resourcegroups/{vm.resource_group}"
        f"/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{uami.name}")
    assert user_claims["oid"] == uami.principal_id and user_claims["appid"] == uami.client_id
    tokens = sim.issued_tokens
    assert len(tokens) == 4 and len(set(tokens)) == 4
    assert len({claims_of(t)["uti"] for t in tokens}) == 4


@pytest.mark.parametrize("scenario, resource", [
    ("healthy-system", "https://management.azure.com/.default"),
    ("healthy-system", "https://myvault.vault.azure.net"),
    ("healthy-system", "https://management.usgovcloudapi.net/"),
    ("wrong-cloud-audience", "https://vault.azure.net"),
])
def test_unknown_resource_is_aadsts500011(scenario: str, resource: str, run: Any, client: httpx.Client) -> None:
    sim = run(scenario)
    first, second = get_token(client, sim, resource), get_token(client, sim, resource)
    assert first.status_code == 400
    body = first.json()
    assert body["error"] == "invalid_resource" and body["error_codes"] == [500011]
    assert body["error_description"].startswith(
        f"AADSTS500011: The resource principal named {resource} was not found in the tenant named Contoso.")
    assert f"\r\nTrace ID: {body['trace_id']}\r\nCorrelation ID: {body['correlation_id']}\r\nTimestamp: " \
        in body["error_description"]
    assert body["trace_id"] != second.json()["trace_id"]
    assert body["error_uri"].endswith("/error?code=500011")
    assert sim.issued_tokens == []


def test_gov_cloud_token_and_instance(run: Any, client: httpx.Client) -> None:
    sim = run("wrong-cloud-audience")
    resp = get_token(client, sim, "https://management.usgovcloudapi.net/")
    assert resp.status_code == 200
    text = client.get(sim.url + INSTANCE + "/compute/azEnvironment",
                      params={"api-version": "2021-02-01", "format": "text"}, headers=MD)
    assert text.text == "AzureUSGovernmentCloud" and text.headers["content-type"].startswith("text/plain")


def test_identity_info(run: Any, client: httpx.Client) -> None:
    sim = run("healthy-system")
    resp = client.get(sim.url + "/metadata/identity/info", params={"api-version": API}, headers=MD)
    assert resp.json() == {"tenantId": sim.world.tenant_id}
    none = run("no-identity")
    resp = client.get(none.url + "/metadata/identity/info", params={"api-version": API}, headers=MD)
    assert resp.status_code == 400 and resp.json()["error_description"] == "Identity not found"


# --- instance metadata -------------------------------------------------------------------------------


def _all_primitives_are_strings(node: Any) -> bool:
    if isinstance(node, dict):
        return all(_all_primitives_are_strings(v) for v in node.values())
    if isinstance(node, list):
        return all(_all_primitives_are_strings(v) for v in node)
    return isinstance(node, str)


def test_instance_metadata_shape_walk_and_versions(run: Any, client: httpx.Client) -> None:
    sim = run(custom(vm=dict(load_scenario("healthy-system").data["vm"], tags={"Department": "IT", "env": "x"},
                             vm_scale_set_name="vmss-demo", compute_overrides={"osType": "Linux", "zone": "3"})))
    get = lambda path, **p: client.get(sim.url + path, params={"api-version": "2021-02-01", **p}, headers=MD)  # noqa: E731
    doc = get(INSTANCE).json()
    assert _all_primitives_are_strings(doc)
    compute = doc["compute"]
    assert list(compute) == sorted(compute)
    vm = sim.world.vm
    assert compute["azEnvironment"] == "AzurePublicCloud"
    assert compute["resourceId"] == vm.resource_id and compute["subscriptionId"] == vm.subscription_id
    assert compute["tags"] == "Department:IT;env:x"
    assert compute["tagsList"] == [{"name": "Department", "value": "IT"}, {"name": "env", "value": "x"}]
    assert compute["vmScaleSetName"] == "vmss-demo" and compute["zone"] == "3"
    assert doc["network"]["interface"][0]["ipv4"]["ipAddress"][0]["privateIpAddress"] == vm.private_ip
    assert get(INSTANCE + "/compute/vmId", format="text").text == vm.vm_id
    assert get(INSTANCE + "/network/interface/0/ipv4/ipAddress/0/privateIpAddress", format="text").text == vm.private_ip
    assert get(INSTANCE + "/compute/tagsList").json()[0] == {"name": "Department", "value": "IT"}
    assert get(INSTANCE, format="text").text == "compute/\nnetwork/"
    assert get(INSTANCE + "/compute/vmId").status_code == 400  # leaf needs format=text
    assert get(INSTANCE + "/compute/identity").status_code == 404
    old = client.get(sim.url + INSTANCE, params={"api-version": "2017-08-01"}, headers=MD).json()["compute"]
    assert "azEnvironment" not in old and "resourceId" not in old and "subscriptionId" in old
    new = client.get(sim.url + INSTANCE, params={"api-version": "2025-04-07"}, headers=MD).json()["compute"]
    assert new["physicalZone"] == "" and new["securityProfile"]["securityType"] == "TrustedLaunch"
    versions = client.get(sim.url + "/metadata/versions", headers=MD).json()["apiVersions"]
    assert versions[0] == "2017-03-01" and versions[-1] == "2025-04-07"


# --- scripted faults ---------------------------------------------------------------------------------


def test_upgrading_sequence_and_reset(run: Any, client: httpx.Client) -> None:
    sim = run("upgrading")
    # A header-less probe must not consume a scripted step.
    assert get_token(client, sim, headers={}).status_code == 400
    statuses = [get_token(client, sim).status_code for _ in range(4)]
    assert statuses == [410, 410, 200, 200]
    assert [r.status for r in sim.requests] == [400, 410, 410, 200, 200]
    gone = sim.requests[1]
    assert gone.path == TOKEN and gone.query["resource"] == [ARM_RESOURCE] and gone.headers["Metadata"] == "true"
    sim.reset()
    assert sim.requests == []
    assert [get_token(client, sim).status_code for _ in range(3)] == [410, 410, 200]
    assert len(sim.issued_tokens) == 3  # reset() does not forget issued tokens


def test_throttled_and_server_error_bodies(run: Any, client: httpx.Client) -> None:
    throttled = get_token(client, run("throttled"))
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "1"
    assert throttled.json() == {"error": "too_many_requests", "error_description": "Too many requests"}
    sim = run("server-error")
    first = get_token(client, sim)
    assert first.json() == {"error": "server_error", "error_description": "Server error"}
    assert get_token(client, sim).status_code == 200


def test_delay_applies_to_identity_and_instance(run: Any, client: httpx.Client) -> None:
    sim = run(custom(faults={"identity": {"delay_seconds": 0.3}, "instance": {"delay_seconds": 0.3}}))
    for path in (TOKEN, INSTANCE):
        started = time.monotonic()
        resp = client.get(sim.url + path, params={"api-version": API, "resource": ARM_RESOURCE}, headers=MD)
        assert resp.status_code == 200 and time.monotonic() - started >= 0.3


def test_slow_scenario_exceeds_the_one_second_probe(run: Any, client: httpx.Client) -> None:
    sim = run("slow")
    # Like azure-identity's header-less probe with its 1 s budget: no answer in time.
    with pytest.raises(httpx.ReadTimeout):
        client.get(sim.url + TOKEN, params={"api-version": API, "resource": ARM_RESOURCE}, timeout=1.0)
    started = time.monotonic()
    assert get_token(client, sim).status_code == 200
    assert time.monotonic() - started >= 1.6


def test_hang_never_answers_and_stop_is_prompt(client: httpx.Client) -> None:
    sim = Simulator("hang").start()
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["resp"] = httpx.get(sim.url + TOKEN, params={"api-version": API, "resource": ARM_RESOURCE},
                                        headers=MD, timeout=10, trust_env=False)
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=call)
    worker.start()
    deadline = time.monotonic() + 2
    while sim.max_concurrent_identity == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert worker.is_alive() and "resp" not in outcome
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 2
    worker.join(timeout=3)
    assert not worker.is_alive()
    assert "error" in outcome  # connection dropped, never a response
    assert [r.status for r in sim.requests] == [0]


def test_max_concurrent_identity_counts_parallel_requests(run: Any) -> None:
    sim = run(custom(faults={"identity": {"delay_seconds": 0.4}}))

    def one(_: int) -> int:
        with httpx.Client(trust_env=False, timeout=5) as c:
            return get_token(c, sim).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=5) as pool:
        statuses = list(pool.map(one, range(5)))
    assert statuses == [200] * 5
    assert sim.max_concurrent_identity == 5
    sim.reset()
    assert sim.max_concurrent_identity == 0


def test_identity_concurrency_limit_gives_429(run: Any) -> None:
    sim = run(custom(faults={"identity": {"delay_seconds": 0.3}}, limits={"identity_max_concurrent": 2}))

    def one(_: int) -> int:
        with httpx.Client(trust_env=False, timeout=5) as c:
            return get_token(c, sim).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        statuses = sorted(pool.map(one, range(4)))
    assert statuses == [200, 200, 429, 429]


# --- ARM ---------------------------------------------------------------------------------------------


def _arm_token(client: httpx.Client, sim: Simulator, resource: str = ARM_RESOURCE, **params: str) -> str:
    resp = get_token(client, sim, resource, **params)
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]


def test_permissions_paging_follows_next_link(run: Any, client: httpx.Client) -> None:
    sim = run("permissions-paged")
    scenario = load_scenario("permissions-paged")
    token = _arm_token(client, sim)
    url: Optional[str] = f"{sim.url}{permissions_path(scenario.demo['scope'])}?api-version=2022-04-01"
    pages = []
    while url:
        resp = client.get(url, headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 200
        body = resp.json()
        pages.append(body["value"])
        url = body.get("nextLink")
        assert url is None or url.startswith(sim.url + "/subscriptions/")
    assert [len(p) for p in pages] == [1, 1, 1]
    assert pages[0][0]["actions"] == ["*/read"]
    assert pages[2][0]["dataActions"] == ["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"]
    assert all(set(p[0]) == {"actions", "notActions", "dataActions", "notDataActions"} for p in pages)
    # Grants do not flow upwards (two of three apply at the resource group); scopes are case-insensitive.
    rg = scenario.demo["scope"].split("/providers/")[0].lower()
    first = arm_get(client, sim, permissions_path(rg), token).json()
    second = client.get(first["nextLink"], headers={"Authorization": f"Bearer {token}"}).json()
    assert "nextLink" not in second
    assert second["value"][0]["actions"][0] == "Microsoft.Storage/storageAccounts/listKeys/action"


def test_permissions_empty_and_forbidden(run: Any, client: httpx.Client) -> None:
    sim = run("missing-role")
    resp = arm_get(client, sim, permissions_path(load_scenario("missing-role").demo["scope"]), _arm_token(client, sim))
    assert resp.json() == {"value": []}
    forbidden = run("permissions-forbidden")
    token = _arm_token(client, forbidden)
    oid = claims_of(token)["oid"]
    scope = load_scenario("permissions-forbidden").demo["scope"]
    resp = arm_get(client, forbidden, permissions_path(scope), token)
    assert resp.status_code == 403
    error = resp.json()["error"]
    assert error["code"] == "AuthorizationFailed"
    assert error["message"] == (
        f"The client '{oid}' with object id '{oid}' does not have authorization to perform action "
        f"'Microsoft.Authorization/permissions/read' over scope '{scope}' or the scope is invalid. "
        "If access was recently granted, please refresh your credentials.")
    assert "server" not in resp.headers


def test_vm_read_with_and_without_permission(run: Any, client: httpx.Client) -> None:
    sim = run("system-and-user")
    world = sim.world
    assert world.system is not None
    vm_path = world.vm.resource_id
    resp = arm_get(client, sim, vm_path, _arm_token(client, sim), "2024-03-01")
    assert resp.status_code == 200
    identity = resp.json()["identity"]
    uami = world.users[0]
    assert identity == {
        "type": "SystemAssigned, UserAssigned", "principalId": world.system.principal_id,
        "tenantId": world.tenant_id,
        "userAssignedIdentities": {uami.resource_id: {"principalId": uami.principal_id, "clientId": uami.client_id}},
    }
    # The UAMI only holds a data-plane role, so ARM refuses it the VM read.
    denied = arm_get(client, sim, vm_path, _arm_token(client, sim, client_id=uami.client_id), "2024-03-01")
    assert denied.status_code == 403
    assert "'Microsoft.Compute/virtualMachines/read'" in denied.json()["error"]["message"]
    assert f"over scope '{vm_path}'" in denied.json()["error"]["message"]
    missing = run("missing-role")
    resp = arm_get(client, missing, missing.world.vm.resource_id, _arm_token(client, missing), "2024-03-01")
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "AuthorizationFailed"
    user = run("healthy-user")
    body = arm_get(client, user, user.world.vm.resource_id, _arm_token(client, user), "2024-03-01").json()
    assert body["identity"]["type"] == "UserAssigned" and "principalId" not in body["identity"]
    other = arm_get(client, sim, vm_path.rsplit("/", 1)[0] + "/other-vm", _arm_token(client, sim), "2024-03-01")
    assert other.status_code == 404 and other.json()["error"]["code"] == "ResourceNotFound"


def test_arm_401s(run: Any, client: httpx.Client) -> None:
    sim = run("healthy-system")
    scope = load_scenario("healthy-system").demo["scope"]
    missing = arm_get(client, sim, permissions_path(scope), None)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "AuthenticationFailed"
    assert missing.headers["www-authenticate"].startswith(
        f'Bearer authorization_uri="https://login.windows.net/{sim.world.tenant_id}", error="invalid_token"')
    vault = arm_get(client, sim, permissions_path(scope), _arm_token(client, sim, "https://vault.azure.net"))
    assert vault.status_code == 401
    assert vault.json()["error"] == {
        "code": "InvalidAuthenticationTokenAudience",
        "message": "The access token has been obtained for wrong audience or resource 'https://vault.azure.net'. "
                   "It should exactly match with one of the allowed audiences 'https://management.core.windows.net/',"
                   "'https://management.core.windows.net','https://management.azure.com/','https://management.azure.com'.",
    }
    forged = arm_get(client, sim, permissions_path(scope), "eyJhbGciOiJub25lIn0.eyJhdWQiOiJ4In0.c2ln")
    assert forged.status_code == 401 and forged.json()["error"]["code"] == "InvalidAuthenticationToken"
    for resource in ("https://management.core.windows.net/", "https://management.azure.com"):
        assert arm_get(client, sim, permissions_path(scope), _arm_token(client, sim, resource)).status_code == 200
    gov = run("wrong-cloud-audience")
    gov_scope = load_scenario("wrong-cloud-audience").demo["scope"]
    public_aud = arm_get(client, gov, permissions_path(gov_scope), _arm_token(client, gov, "https://storage.azure.com/"))
    assert "'https://management.usgovcloudapi.net'" in public_aud.json()["error"]["message"]
    ok = arm_get(client, gov, permissions_path(gov_scope), _arm_token(client, gov, "https://management.usgovcloudapi.net"))
    assert ok.status_code == 200


# --- robustness --------------------------------------------------------------------------------------


def test_garbage_paths_verbs_and_raw_bytes(run: Any, client: httpx.Client) -> None:
    sim = run("healthy-system")
    for path in ("/", "/nope", "/metadata/nope", "/metadata/identity/getPlatformMetadata"):
        resp = client.get(sim.url + path, headers=MD)
        assert resp.status_code == 404 and resp.headers["content-type"].startswith("application/json")
        resp.json()
    post = client.post(sim.url + TOKEN, params={"api-version": API, "resource": ARM_RESOURCE}, headers=MD,
                       content=b"x" * 1000)
    assert post.status_code == 405 and post.json()["error"] == "method_not_allowed"
    head = client.head(sim.url + INSTANCE, headers=MD)
    assert head.status_code == 400 and head.headers["server"] == "Microsoft-IIS/10.0"
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as raw:
        raw.sendall(b"\x00\xffgarbage \r\n\r\n")
        assert raw.recv(1024).startswith(b"HTTP/1.1 400")
    assert get_token(client, sim).status_code == 200


def test_handler_exception_becomes_500_and_server_survives(run: Any, client: httpx.Client,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    sim = run("healthy-system")

    def boom(*_: Any, **__: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(imds_module, "handle_metadata", boom)
    resp = get_token(client, sim)
    assert resp.status_code == 500 and resp.json()["error"] == "server_error"
    monkeypatch.undo()
    assert get_token(client, sim).status_code == 200


# --- the real azure-identity client ------------------------------------------------------------------

_ENV_TO_CLEAR = (
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT",
    "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST",
    "AZUREPS_HOST_ENVIRONMENT", "AZURE_TOKEN_CREDENTIALS",
)


@pytest.fixture
def azure_env(monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in _ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")

    def point_at(sim: Simulator) -> None:
        # azure-identity and MSAL both do .strip("/") + "/metadata/identity/oauth2/token" on this base URL.
        monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", sim.url)

    return point_at


def test_real_azure_identity_gets_a_simulated_token(run: Any, azure_env: Any) -> None:
    identity = pytest.importorskip("azure.identity")
    sim = run("healthy-system")
    azure_env(sim)
    token = identity.ManagedIdentityCredential().get_token("https://management.azure.com/.default")
    assert token.token in sim.issued_tokens
    assert claims_of(token.token)["aud"] == "https://management.azure.com"
    assert sim.requests[-1].headers["Metadata"] == "true"


def test_real_azure_identity_reports_no_identity(run: Any, azure_env: Any) -> None:
    identity = pytest.importorskip("azure.identity")
    sim = run("no-identity")
    azure_env(sim)
    with pytest.raises(identity.CredentialUnavailableError, match="Identity not found"):
        identity.ManagedIdentityCredential().get_token("https://management.azure.com/.default")
    assert [r.status for r in sim.requests] == [400]
