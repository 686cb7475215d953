"""RBAC evaluation against the permission blocks of real built-in roles: control plane vs data plane,
wildcards, per-entry notActions, prefixes, data-action classification and role hints."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest
from conftest import invoke

from midoctor.rbac import Operation, decide, parse_operation, suggest_role

# Permission blocks of Azure built-in roles (one entry each, as the permissions API returns them).
# Contributor's notActions are the 2024 definition; later revisions append Microsoft.Subscription
# cancel/enable, which changes none of the decisions below.
ROLES: Dict[str, Dict[str, List[str]]] = {
    "Owner": {"actions": ["*"], "notActions": [], "dataActions": [], "notDataActions": []},
    "Contributor": {
        "actions": ["*"],
        "notActions": [
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
            "Microsoft.Blueprint/blueprintAssignments/write",
            "Microsoft.Blueprint/blueprintAssignments/delete",
            "Microsoft.Compute/galleries/share/action",
            "Microsoft.Purview/consents/write",
            "Microsoft.Purview/consents/delete",
            "Microsoft.Resources/deploymentStacks/manageDenySetting/action",
        ],
        "dataActions": [],
        "notDataActions": [],
    },
    "Reader": {"actions": ["*/read"], "notActions": [], "dataActions": [], "notDataActions": []},
    "Storage Blob Data Reader": {
        "actions": [
            "Microsoft.Storage/storageAccounts/blobServices/containers/read",
            "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
        ],
        "notActions": [],
        "dataActions": ["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"],
        "notDataActions": [],
    },
    "Key Vault Secrets User": {
        "actions": [],
        "notActions": [],
        "dataActions": [
            "Microsoft.KeyVault/vaults/secrets/getSecret/action",
            "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
        ],
        "notDataActions": [],
    },
    "AcrPull": {"actions": ["Microsoft.ContainerRegistry/registries/pull/read"], "notActions": [],
                "dataActions": [], "notDataActions": []},
}

BLOB_READ = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"
BLOB_WRITE = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write"
GET_SECRET = "Microsoft.KeyVault/vaults/secrets/getSecret/action"


def allowed(operation: str, *roles: str) -> bool:
    return decide(parse_operation(operation), [ROLES[r] for r in roles]).allowed


# -- built-in roles -------------------------------------------------------------------------------------------

def test_contributor_manages_resources_but_not_access_nor_data() -> None:
    assert allowed("Microsoft.Compute/virtualMachines/write", "Contributor")
    assert allowed("Microsoft.Storage/storageAccounts/listKeys/action", "Contributor")
    denied = decide(parse_operation("Microsoft.Authorization/roleAssignments/write"), [ROLES["Contributor"]])
    assert not denied.allowed
    assert denied.excluded_by == "Microsoft.Authorization/*/Write"  # case-insensitive against ".../write"
    assert not allowed("Microsoft.Authorization/elevateAccess/Action", "Contributor")
    # "*" in actions grants no data action.
    for data_action in (BLOB_READ, GET_SECRET, "Microsoft.ServiceBus/namespaces/messages/send/action",
                        "Microsoft.ContainerRegistry/registries/repositories/content/read"):
        decision = decide(parse_operation(data_action), [ROLES["Contributor"]])
        assert not decision.allowed and decision.excluded_by is None, data_action


def test_owner_may_assign_roles_but_holds_no_data_action() -> None:
    assert allowed("Microsoft.Authorization/roleAssignments/write", "Owner")
    assert not allowed(BLOB_READ, "Owner")
    assert not allowed("data:Microsoft.Compute/virtualMachines/read", "Owner")


def test_reader_reads_but_cannot_list_keys() -> None:
    assert allowed("Microsoft.Compute/virtualMachines/read", "Reader")
    assert allowed("Microsoft.KeyVault/vaults/secrets/read", "Reader")  # the secret's ARM properties, no value
    assert not allowed("Microsoft.Storage/storageAccounts/listKeys/action", "Reader")
    assert not allowed("Microsoft.Compute/virtualMachines/write", "Reader")
    assert not allowed(GET_SECRET, "Reader")


def test_acrpull_grants_the_pull_action() -> None:
    assert allowed("Microsoft.ContainerRegistry/registries/pull/read", "AcrPull")
    assert not allowed("Microsoft.ContainerRegistry/registries/push/write", "AcrPull")
    # A control-plane action: Reader's "*/read" covers it too, Storage Blob Data Reader does not.
    assert allowed("Microsoft.ContainerRegistry/registries/pull/read", "Reader")


def test_storage_blob_data_reader_reads_blobs_but_does_not_write() -> None:
    assert allowed(BLOB_READ, "Storage Blob Data Reader")
    assert not allowed(BLOB_WRITE, "Storage Blob Data Reader")
    assert allowed("Microsoft.Storage/storageAccounts/blobServices/containers/read", "Storage Blob Data Reader")
    assert not allowed("Microsoft.Storage/storageAccounts/listKeys/action", "Storage Blob Data Reader")


def test_key_vault_secrets_user_gets_secrets_only_through_the_data_plane() -> None:
    assert allowed(GET_SECRET, "Key Vault Secrets User")
    assert not allowed("Microsoft.KeyVault/vaults/secrets/setSecret/action", "Key Vault Secrets User")
    assert not allowed("Microsoft.KeyVault/vaults/secrets/read", "Key Vault Secrets User")  # control-plane


# -- evaluation rules -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("grant", "operation", "expected"), [
    ("microsoft.compute/*/READ", "Microsoft.Compute/virtualMachines/read", True),
    ("Microsoft.Compute/*", "microsoft.compute/virtualMachines/extensions/WRITE", True),  # "*" spans "/"
    ("*/read", "MICROSOFT.WEB/SITES/READ", True),
    ("Microsoft.Compute/*/read", "Microsoft.Compute/virtualMachines/write", False),
    ("Microsoft.Compute/virtualMachines/read", "Microsoft.Compute/virtualMachines/readX", False),  # anchored
    ("Microsoft.Comp?te/*", "Microsoft.Compute/disks/read", False),  # only "*" is special
])
def test_wildcards_are_case_insensitive_and_span_segments(grant: str, operation: str, expected: bool) -> None:
    assert decide(Operation(operation, False, "test"), [{"actions": [grant]}]).allowed is expected


def test_not_actions_subtract_only_within_their_own_entry() -> None:
    operation = parse_operation("Microsoft.Authorization/roleAssignments/write")
    narrow = {"actions": ["Microsoft.Authorization/roleAssignments/write"], "notActions": []}
    decision = decide(operation, [ROLES["Contributor"], narrow])
    assert decision.allowed and decision.granted_by == "Microsoft.Authorization/roleAssignments/write"
    # Reversed order: the same answer; ARM does not subtract globally.
    assert decide(operation, [narrow, ROLES["Contributor"]]).allowed
    # A notActions entry with no grant beside it removes nothing from another entry either.
    only_deny = {"actions": [], "notActions": ["*"]}
    assert decide(parse_operation("Microsoft.Compute/virtualMachines/write"), [only_deny, ROLES["Contributor"]]).allowed


def test_not_data_actions_subtract_data_actions() -> None:
    entry = {"dataActions": ["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*"],
             "notDataActions": ["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write"]}
    assert decide(parse_operation(BLOB_READ), [entry]).allowed
    decision = decide(parse_operation(BLOB_WRITE), [entry])
    assert not decision.allowed and decision.excluded_by == entry["notDataActions"][0]


def test_prefixes_override_the_classification() -> None:
    forced_control = parse_operation("action:" + BLOB_READ)
    assert forced_control == Operation(BLOB_READ, False, "prefix")
    assert decide(forced_control, [ROLES["Contributor"]]).allowed  # evaluated against actions: "*" matches
    forced_data = parse_operation("  DATA:  Microsoft.Compute/virtualMachines/read ")
    assert forced_data == Operation("Microsoft.Compute/virtualMachines/read", True, "prefix")
    assert not decide(forced_data, [ROLES["Reader"]]).allowed
    assert decide(forced_data, [{"dataActions": ["Microsoft.Compute/*"]}]).allowed


@pytest.mark.parametrize("text", ["data:", "data:   ", "action:", " ACTION: ", "Data:\t"])
def test_empty_operation_after_a_prefix_is_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="nothing follows the '(data|action):' prefix"):
        parse_operation(text)


def test_empty_operation_after_a_prefix_is_a_usage_error(simulator) -> None:
    sim = simulator("healthy-system")
    run = invoke(["run", "--imds-url", sim.url, "--arm-url", sim.url, "--action", "data:"])
    assert run.exit_code == 2
    assert "nothing follows the 'data:' prefix" in run.stderr


def test_a_bare_star_is_legal_and_asks_whether_everything_is_granted() -> None:
    star = parse_operation("*")
    assert star == Operation("*", False, "assumed control-plane")
    assert decide(star, [ROLES["Owner"]]).allowed and decide(star, [ROLES["Contributor"]]).allowed
    assert not decide(star, [ROLES["Reader"]]).allowed  # "*/read" does not cover the literal "*"


# -- classification -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("operation", "is_data"), [
    # Container Registry: AcrPull/AcrPush are control-plane actions; repository permissions are data actions.
    ("Microsoft.ContainerRegistry/registries/pull/read", False),
    ("Microsoft.ContainerRegistry/registries/push/write", False),
    ("Microsoft.ContainerRegistry/registries/metadata/read", False),
    ("Microsoft.ContainerRegistry/registries/repositories/content/read", True),
    ("Microsoft.ContainerRegistry/registries/repositories/metadata/read", True),
    ("Microsoft.ContainerRegistry/registries/quarantinedArtifacts/read", True),
    # Cognitive Services: capitalised service segment = data.
    ("Microsoft.CognitiveServices/accounts/read", False),
    ("Microsoft.CognitiveServices/accounts/listKeys/action", False),
    ("Microsoft.CognitiveServices/accounts/deployments/write", False),
    ("Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action", True),
    ("microsoft.cognitiveservices/accounts/openai/deployments/embeddings/action", True),
    ("Microsoft.CognitiveServices/accounts/SpeechServices/speechrest/read", True),
    ("Microsoft.CognitiveServices/accounts/TextAnalytics/analyze/action", True),
    ("Microsoft.CognitiveServices/accounts/SomeNewService/things/read", True),
    ("Microsoft.CognitiveServices/accounts/PrivateEndpointConnectionsApproval/action", False),
    # Cosmos DB.
    ("Microsoft.DocumentDB/databaseAccounts/read", False),
    ("Microsoft.DocumentDB/databaseAccounts/sqlDatabases/read", False),
    ("Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/read", False),
    ("Microsoft.DocumentDB/databaseAccounts/listKeys/action", False),
    ("Microsoft.DocumentDB/databaseAccounts/readMetadata", True),
    ("Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/read", True),
    ("Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/*", True),
    ("Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/executeQuery", True),
    ("Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/readChangeFeed", True),
    ("Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/executeStoredProcedure", True),
    # Event Grid.
    ("Microsoft.EventGrid/topics/listKeys/action", False),
    ("Microsoft.EventGrid/topics/read", False),
    ("Microsoft.EventGrid/domains/topics/eventSubscriptions/getFullUrl/action", False),
    ("Microsoft.EventGrid/events/send/action", True),
    ("Microsoft.EventGrid/events/receive/action", True),
    ("Microsoft.EventGrid/topicSpaces/publish/action", True),
    # Storage.
    (BLOB_READ, True),
    ("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/tags/read", True),
    ("Microsoft.Storage/storageAccounts/blobServices/containers/read", False),
    ("Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action", False),
    ("Microsoft.Storage/storageAccounts/queueServices/queues/messages/add/action", True),
    ("Microsoft.Storage/storageAccounts/queueServices/queues/read", False),
    ("Microsoft.Storage/storageAccounts/fileServices/fileshares/files/read", True),
    ("Microsoft.Storage/storageAccounts/fileServices/readFileBackupSemantics/action", True),
    ("Microsoft.Storage/storageAccounts/fileServices/shares/read", False),
    ("Microsoft.Storage/storageAccounts/tableServices/tables/entities/read", True),
    ("Microsoft.Storage/storageAccounts/tableServices/tables/read", False),
    # Key Vault.
    (GET_SECRET, True),
    ("Microsoft.KeyVault/vaults/secrets/delete", True),
    ("Microsoft.KeyVault/vaults/keys/unwrap/action", True),
    ("Microsoft.KeyVault/vaults/certificates/read", True),
    ("Microsoft.KeyVault/vaults/secrets/read", False),
    ("Microsoft.KeyVault/vaults/secrets/write", False),
    ("Microsoft.KeyVault/vaults/keys/write", False),
    ("Microsoft.KeyVault/vaults/read", False),
    ("Microsoft.KeyVault/vaults/deploy/action", False),
    # Service Bus / Event Hubs / App Configuration / Monitor.
    ("Microsoft.ServiceBus/namespaces/messages/send/action", True),
    ("Microsoft.EventHub/namespaces/messages/receive/action", True),
    ("Microsoft.ServiceBus/namespaces/queues/read", False),
    ("Microsoft.ServiceBus/namespaces/authorizationRules/listkeys/action", False),
    ("Microsoft.AppConfiguration/configurationStores/keyValues/read", True),
    ("Microsoft.AppConfiguration/configurationStores/ListKeyValue/action", False),
    ("Microsoft.AppConfiguration/configurationStores/listKeys/action", False),
    ("Microsoft.Insights/Metrics/Write", True),
    ("Microsoft.Insights/Metrics/Read", False),
])
def test_data_action_classification(operation: str, is_data: bool) -> None:
    parsed = parse_operation(operation)
    assert parsed.is_data is is_data, operation
    assert parsed.kind_source == ("known pattern" if is_data else "assumed control-plane")


def test_names_in_both_planes_say_so_in_the_evidence() -> None:
    keys_read = parse_operation("Microsoft.KeyVault/vaults/keys/read")
    assert not keys_read.is_data and "data:" in (keys_read.note or "")
    kv_write = parse_operation("Microsoft.AppConfiguration/configurationStores/keyValues/write")
    assert kv_write.is_data and "action:" in (kv_write.note or "")
    cosmos = decide(parse_operation("Microsoft.DocumentDB/databaseAccounts/readMetadata"), [ROLES["Owner"]])
    assert "Cosmos DB SQL role" in cosmos.to_dict()["note"]
    assert "note" not in decide(parse_operation(BLOB_READ), [ROLES["Owner"]]).to_dict()


# -- role hints -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("operation", "role"), [
    ("Microsoft.ContainerRegistry/registries/pull/read", "AcrPull"),
    ("Microsoft.ContainerRegistry/registries/repositories/content/read", "Container Registry Repository Reader"),
    ("Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action",
     "Cognitive Services OpenAI User"),
    ("Microsoft.CognitiveServices/accounts/OpenAI/deployments/write", "Cognitive Services OpenAI Contributor"),
    ("Microsoft.CognitiveServices/accounts/SpeechServices/speechrest/read", "Cognitive Services User"),
    (BLOB_READ, "Storage Blob Data Reader"),
    (BLOB_WRITE, "Storage Blob Data Contributor"),
    ("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/tags/read", "Storage Blob Data Owner"),
    (GET_SECRET, "Key Vault Secrets User"),
    ("Microsoft.KeyVault/vaults/secrets/setSecret/action", "Key Vault Secrets Officer"),
    ("Microsoft.KeyVault/vaults/keys/unwrap/action", "Key Vault Crypto User"),
    ("Microsoft.KeyVault/vaults/keys/create/action", "Key Vault Crypto Officer"),
    ("Microsoft.EventGrid/events/send/action", "EventGrid Data Sender"),
    ("Microsoft.ServiceBus/namespaces/messages/send/action", "Azure Service Bus Data Sender"),
    ("Microsoft.AppConfiguration/configurationStores/keyValues/read", "App Configuration Data Reader"),
    ("Microsoft.Compute/virtualMachines/read", "Reader"),
    ("Microsoft.KeyVault/vaults/secrets/read", "Reader"),  # control-plane, not a Key Vault data role
    # Nothing rather than something wrong:
    ("Microsoft.DocumentDB/databaseAccounts/readMetadata", None),  # Cosmos SQL roles are not Azure roles
    ("Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/read", None),
    ("Microsoft.Storage/storageAccounts/listKeys/action", None),
    ("Microsoft.EventGrid/topics/listKeys/action", None),
    ("data:Microsoft.Compute/virtualMachines/read", None),  # Reader grants no data action
    ("data:", None),
])
def test_suggested_roles_grant_the_operation(operation: str, role: Any) -> None:
    assert suggest_role(operation) == role
    if not operation.startswith("data:"):
        assert suggest_role(parse_operation(operation)) == role


def test_suggested_role_honours_a_prefix_when_given_the_parsed_operation() -> None:
    assert suggest_role(parse_operation("action:" + BLOB_READ)) == "Reader"
    assert suggest_role(parse_operation("data:" + BLOB_READ)) == "Storage Blob Data Reader"
