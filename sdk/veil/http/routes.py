"""The paths veil serves, below the app's `root_path`: a leaf module, so the notice can name
them without importing the HTTP handlers. The route table itself is in endpoints.py."""

from starlette.types import Scope

SCRIPT_PATH = "/veil/veil.js"
BEACON_PATH = "/veil/e"
CONSENT_PATH = "/veil/consent"
NOTICE_PATH = "/veil/notice"
HUMAN_REVIEW_PATH = "/veil/rights/human-review"
RIGHTS_PAGE_PATH = "/veil/rights"
RIGHTS_SCRIPT_PATH = "/veil/rights.js"
# a subject's own requests (http/rights.py), one path per right
RIGHTS_PATHS = tuple(
    f"/veil/rights/{verb}"
    for verb in (
        "access",
        "export",
        "correct",
        "delete",
        "restrict",
        "suspend",
        "object",
        "complaint",
    )
)
RECORD_PATH = "/veil/record"
GPC_PATH = "/.well-known/gpc.json"
# the analysts' API (http/analytics.py)
STATS_PATH = "/api/v1/stats"
OPENAPI_PATH = "/api/v1/openapi.json"
ME_PATH = "/api/v1/me"
# the analysts' dashboard (http/dashboard.py): the page and the files it loads
DASHBOARD_PATH = "/dashboard"
DASHBOARD_FILES = ("dashboard.js", "dashboard.css", "chartist.js", "chartist.css")
DASHBOARD_FILE_PATHS = tuple(f"{DASHBOARD_PATH}/{name}" for name in DASHBOARD_FILES)


def route_path(scope: Scope) -> str:
    """The path below the app's mount point: ASGI puts `root_path` in front of `path` too
    (an app mounted at /app serves /app/veil/veil.js). The middleware and the endpoints both
    route on this."""
    path: str = scope["path"]
    root: str | None = scope.get("root_path")
    return path[len(root) :] if root and path.startswith(root) else path
