"""Who may call each reports endpoint (see eoms.testing.matrix): everyone signed in with a role; what
they get is their scope's figures (the outsider: their own project's)."""

from eoms.testing.matrix import expect

BASE = "/api/v1/reports"
EVERYONE = ("admin", "project_manager", "approver", "field_engineer", "finance", "auditor")


def _get(path: str):
    def request(world):
        world.order()
        return {"path": f"{BASE}{path}"}

    return request


ENDPOINTS = {
    ("GET", f"{BASE}/dashboard"): {"request": _get("/dashboard"), "expect": expect(200, EVERYONE, outsider=200)},
    ("GET", f"{BASE}/cycle-times"): {"request": _get("/cycle-times"), "expect": expect(200, EVERYONE, outsider=200)},
}
