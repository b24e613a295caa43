"""HTTP errors as RFC 9457 problem details (`application/problem+json`).

`Problem` is not a `VeilError`: it is an HTTP answer, raised and caught inside veil's HTTP
handlers, never a domain failure an app's `except VeilError` should see. Domain errors are
turned into problems at the HTTP edge (endpoints.py, the collector)."""

from starlette.responses import JSONResponse


class Problem(Exception):
    """A refusal to answer with a 4xx/5xx; `field` names the offending field when there is one."""

    def __init__(
        self,
        status: int,
        kind: str,
        title: str,
        detail: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.kind, self.title, self.detail = status, kind, title, detail
        self.field = field
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body = {
            "type": f"urn:veil:problem:{self.kind}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.field is not None:
            body["field"] = self.field
        return JSONResponse(
            body,
            status_code=self.status,
            headers=self.headers,
            media_type="application/problem+json",
        )
