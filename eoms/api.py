"""The JSON API at /api/v1/: one NinjaAPI, one router per context, problem+json errors."""

from eoms.accounts.api import router as accounts_router
from eoms.accounts.auth import API_AUTH
from eoms.approvals.api import router as approvals_router
from eoms.core.api import EomsAPI, install_error_handlers
from eoms.core.ratelimit import DEFAULT as DEFAULT_RATE_LIMITS
from eoms.masterdata.api import router as masterdata_router
from eoms.notifications.api import router as notifications_router
from eoms.orders.api import router as orders_router
from eoms.reports.api import router as reports_router
from eoms.webhooks.api import router as webhooks_router

api = EomsAPI(
    title="EOMS API",
    version="1",
    description="Engineering Order Management System. Authenticate with a personal API token "
    "(`Authorization: Bearer eoms_…`, created on your profile page) or the page session.",
    urls_namespace="api-v1",
    auth=API_AUTH,
    throttle=DEFAULT_RATE_LIMITS,
    docs_url="/docs",
    openapi_url="/openapi.json",
)
install_error_handlers(api)
api.add_router("/accounts", accounts_router)
api.add_router("/masterdata", masterdata_router)
api.add_router("/orders", orders_router)
api.add_router("/approvals", approvals_router)
api.add_router("/notifications", notifications_router)
api.add_router("/webhooks", webhooks_router)
api.add_router("/reports", reports_router)
