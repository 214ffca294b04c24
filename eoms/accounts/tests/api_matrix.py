"""Who may call each accounts endpoint (see eoms.testing.matrix). Everyone signed in has a profile
and personal tokens; a token can be revoked by its owner (here the project manager) or an admin."""

from eoms.accounts.services import issue_api_token
from eoms.testing.matrix import IDENTITIES, expect

BASE = "/api/v1/accounts"
SIGNED_IN = tuple(i for i in IDENTITIES if i != "anonymous")


def _pm_token(world):
    token, _ = issue_api_token(actor=world.pm, name="ERP 对接")
    return {"path": f"{BASE}/tokens/{token.id}"}


ENDPOINTS = {
    ("GET", f"{BASE}/me"): {"request": lambda world: {"path": f"{BASE}/me"}, "expect": expect(200, SIGNED_IN)},
    ("GET", f"{BASE}/tokens"): {"request": lambda world: {"path": f"{BASE}/tokens"}, "expect": expect(200, SIGNED_IN)},
    ("POST", f"{BASE}/tokens"): {
        "request": lambda world: {"path": f"{BASE}/tokens", "json": {"name": "BI 报表", "days": 30}},
        "expect": expect(201, SIGNED_IN),
    },
    ("DELETE", f"{BASE}/tokens/{{token_id}}"): {
        "request": _pm_token,
        # Someone else's token does not exist for you.
        "expect": expect(204, ("project_manager", "admin"), denied=404),
    },
}
