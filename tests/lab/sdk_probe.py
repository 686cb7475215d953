"""What an application sees: azure-identity's ManagedIdentityCredential asking IMDS for an ARM token.

Run by the lab inside a network namespace with the scenario's environment (no endpoint override, so the
default http://169.254.169.254 and whatever proxy variables the scenario sets apply). Prints one JSON
line: ok, exception type, message, seconds spent in get_token(). Never prints the token.
"""

from __future__ import annotations

import json
import time

SCOPE = "https://management.azure.com/.default"


def main() -> int:
    from azure.identity import ManagedIdentityCredential

    result = {"ok": False, "exception": None, "message": "", "elapsed_s": None}
    started = time.monotonic()
    try:
        token = ManagedIdentityCredential().get_token(SCOPE)
        result.update(ok=True, message=f"token expiring at {token.expires_on}")
    except Exception as exc:  # noqa: BLE001 - every failure is the observation we want
        result.update(exception=type(exc).__name__, message=str(exc))
    result["elapsed_s"] = round(time.monotonic() - started, 2)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
