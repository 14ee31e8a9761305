"""The web console at ``/console``: server-rendered pages over the control API.

Every page reads and writes through the control plane in-process (``ConsoleHost.control_call``) as
the signed-in key, so the console can do exactly what that key can do over HTTP: the same scopes,
workspace rules, validation messages and audit entries. Forms are plain HTML forms with a CSRF
token; the few live parts (the logs table) use ``static/console.js``.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from wayport.console.charts import Point, bar_chart
from wayport.console.host import ConsoleHost
from wayport.console.reassemble import reassembled
from wayport.console.session import COOKIE, LIFETIME_S, LOCAL, Session, SessionSigner
from wayport.errors import GatewayError
from wayport.security.keys import ApiKey
from wayport.security.roles import LOCAL_OPERATOR, Principal
from wayport.store.filters import LogFilters

HERE = Path(__file__).parent
PAGE_SIZE = 50
# query parameters of the logs page that pass through to GET /v1/logs
LOG_FILTERS = (
    "provider",
    "model",
    "status",
    "cache_status",
    "trace_id",
    "user",
    "cost_min",
    "cost_max",
    "latency_min",
    "latency_max",
    "time_of_generation_min",
    "time_of_generation_max",
)
METRICS = (
    ("requests", "Requests", ""),
    ("cost", "Cost", " USD"),
    ("tokens", "Tokens", ""),
    ("latency", "Latency p50", " ms"),
    ("latency-p99", "Latency p99", " ms"),
    ("errors", "Errors", ""),
    ("cache/hit-rate", "Cache hits", ""),
    ("feedbacks", "Feedback", ""),
)
# answers of the control API that a page shows as such, not as a form error
REFUSED = frozenset({401, 403, 404})
GROUPS = ("provider", "model", "api_key", "virtual_key", "workspace")


@dataclass(frozen=True, slots=True)
class Caller:
    principal: Principal
    api_key: ApiKey | None
    session: Session
    csrf: str
    # the browser's address: the audit log records it for changes made in the console
    client: str | None = None


Handler = Callable[[Request, Caller], Awaitable[Response]]


class Console:
    def __init__(self, host: ConsoleHost, signer: SessionSigner) -> None:
        self.host = host
        self.signer = signer
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["pretty"] = _pretty
        self.templates.filters["usd"] = _usd
        self.templates.filters["when"] = _when
        self.templates.filters["variables"] = _highlight_variables
        self.app = Starlette(
            routes=[
                Route("/", self._home),
                Route("/login", self._login, methods=["GET", "POST"]),
                Route("/logout", self._signed(self._logout), methods=["POST"]),
                Route("/logs", self._signed(self._logs)),
                Route("/logs/rows", self._signed(self._log_rows)),
                Route("/logs/{log_id}", self._signed(self._log)),
                Route("/traces/{trace_id}", self._signed(self._trace)),
                Route("/analytics", self._signed(self._analytics)),
                Route("/prompts", self._signed(self._prompts), methods=["GET", "POST"]),
                Route("/prompts/{prompt_id}", self._signed(self._prompt), methods=["GET", "POST"]),
                Route("/prompts/{prompt_id}/playground", self._signed(self._playground), methods=["POST"]),
                Route("/prompts/{prompt_id}/labels", self._signed(self._label), methods=["POST"]),
                Route("/configs", self._signed(self._configs), methods=["GET", "POST"]),
                Route("/configs/{slug}", self._signed(self._config), methods=["GET", "POST"]),
                Route("/keys", self._signed(self._keys), methods=["GET", "POST"]),
                Route("/keys/{key_id}/revoke", self._signed(self._revoke), methods=["POST"]),
                Route("/virtual-keys", self._signed(self._virtual_keys), methods=["POST"]),
                Route("/audit", self._signed(self._audit)),
                Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
            ]
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    # -- sessions ---------------------------------------------------------------------------

    def _caller(self, request: Request) -> Caller | None:
        if not self.host.auth_enabled:
            local = self.signer.issue(LOCAL, now=0)  # one fixed session: CSRF tokens stay valid
            return Caller(LOCAL_OPERATOR, None, local, self.signer.csrf(local), _client(request))
        session = self.signer.read(request.cookies.get(COOKIE))
        if session is None:
            return None
        key = self.host.key_by_id(session.key_id)
        if key is None or (key.expires_at is not None and key.expires_at <= datetime.now(UTC)):
            return None
        return Caller(key.principal, key, session, self.signer.csrf(session), _client(request))

    def _signed(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """``handler`` for signed-in callers; a POST must carry the CSRF token and come from here."""

        async def endpoint(request: Request) -> Response:
            caller = self._caller(request)
            if caller is None:
                if request.method == "GET":
                    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    return RedirectResponse(f"/console/login?next={quote(target)}", status_code=303)
                return self._page(request, "error.html", None, status=401, message="Sign in first.")
            if request.method == "POST":
                form = await _form(request)
                origin = request.headers.get("origin")
                if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
                    return self._page(
                        request, "error.html", caller, status=403, message="Cross-site request refused."
                    )
                if not self.signer.csrf_ok(caller.session, form.get("csrf")):
                    return self._page(
                        request,
                        "error.html",
                        caller,
                        status=403,
                        message="The form expired; reload the page.",
                    )
                request.state.form = form
            return await handler(request, caller)

        return endpoint

    def _page(
        self, request: Request, name: str, caller: Caller | None, status: int = 200, **values: Any
    ) -> HTMLResponse:
        template = self.templates.get_template(name)
        html = template.render(request=request, caller=caller, path=request.url.path, **values)
        response = HTMLResponse(html, status_code=status)
        _secure(response)
        return response

    async def _api(
        self, caller: Caller, method: str, path: str, *, query: str = "", body: Any = None
    ) -> tuple[int, Any]:
        """The control API in-process, as ``caller`` (its scopes, workspace and audit trail)."""
        return await self.host.control_call(
            caller.principal, method, path, query=query, body=body, client=caller.client
        )

    async def _submit(
        self,
        request: Request,
        caller: Caller,
        method: str,
        path: str,
        body: Any,
        success: Callable[[Any], str],
    ) -> tuple[Response | None, Any]:
        """Make a change through the API: a redirect to ``success(answer)`` when it worked, the
        refusal page when the key may not (401/403/404), else ``None`` and the API's answer (the
        form shows its errors)."""
        status, answer = await self._api(caller, method, path, body=body)
        if status in REFUSED:
            return self._refused(request, caller, status, answer), answer
        if status == 200:
            return RedirectResponse(success(answer), status_code=303), answer
        return None, answer

    async def _save_config(
        self, request: Request, caller: Caller, method: str, path: str, text: str, extra: dict[str, Any]
    ) -> tuple[Response | None, dict[str, str]]:
        """Save the JSON ``text`` of a config form; the errors by field when it is not saved."""
        config, problem = _parse_json(text)
        if problem:
            return None, {"config": problem}
        done, answer = await self._submit(
            request,
            caller,
            method,
            path,
            {**extra, "config": config},
            lambda saved: f"/console/configs/{saved['slug']}",
        )
        return done, {} if done is not None else _field_errors(answer)

    def _refused(self, request: Request, caller: Caller, status: int, answer: Any) -> HTMLResponse:
        return self._page(request, "error.html", caller, status=status, message=_message(answer))

    async def _home(self, request: Request) -> Response:
        return RedirectResponse("/console/logs", status_code=303)

    async def _login(self, request: Request) -> Response:
        target = request.query_params.get("next") or "/console/logs"
        if not target.startswith("/console") or target.startswith("//"):
            target = "/console/logs"
        if request.method == "GET":
            if self._caller(request) is not None:
                return RedirectResponse(target, status_code=303)
            return self._page(request, "login.html", None, next=target)
        form = await _form(request)
        try:
            key = self.host.verify_token(form.get("api_key", "").strip())
        except GatewayError as exc:
            return self._page(request, "login.html", None, status=401, next=target, error=exc.message)
        session = self.signer.issue(key.id)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            session.value,
            max_age=LIFETIME_S,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/console",
        )
        return response

    async def _logout(self, request: Request, caller: Caller) -> Response:
        response = RedirectResponse("/console/login", status_code=303)
        response.delete_cookie(COOKIE, path="/console")
        return response

    # -- logs -------------------------------------------------------------------------------

    def _log_query(self, request: Request, extra: dict[str, str] | None = None) -> tuple[dict[str, str], str]:
        filters = {name: request.query_params[name] for name in LOG_FILTERS if request.query_params.get(name)}
        metadata = request.query_params.get("metadata", "").strip()
        query = dict(filters)
        if metadata:
            key, _, value = metadata.partition("=")
            query[f"metadata.{key.strip()}"] = value.strip()
            filters["metadata"] = metadata
        query.update(extra or {})
        return filters, urlencode(query)

    async def _logs(self, request: Request, caller: Caller) -> Response:
        cursor = request.query_params.get("cursor")
        filters, query = self._log_query(
            request, {"limit": str(PAGE_SIZE), **({"cursor": cursor} if cursor else {})}
        )
        status, answer = await self._api(caller, "GET", "/v1/logs", query=query)
        if status != 200:
            return self._page(
                request, "logs.html", caller, status=status, filters=filters, logs=[], error=_message(answer)
            )
        logs = answer["data"]
        _, base = self._log_query(request)
        return self._page(
            request,
            "logs.html",
            caller,
            filters=filters,
            logs=logs,
            next_cursor=answer.get("next_cursor"),
            base_query=base,
            newest=logs[0]["created_at"] if logs and not cursor else None,
        )

    async def _log_rows(self, request: Request, caller: Caller) -> Response:
        """New rows since ``after`` (the newest shown), for the live table."""
        after = request.query_params.get("after")
        _, query = self._log_query(
            request, {"limit": str(PAGE_SIZE), **({"time_of_generation_min": after} if after else {})}
        )
        status, answer = await self._api(caller, "GET", "/v1/logs", query=query)
        logs = (
            [log for log in (answer or {}).get("data", []) if log["created_at"] != after]
            if status == 200
            else []
        )
        response = self._page(request, "_log_rows.html", caller, logs=logs)
        if logs:
            response.headers["x-newest"] = logs[0]["created_at"]
        return response

    async def _log(self, request: Request, caller: Caller) -> Response:
        log_id = request.path_params["log_id"]
        status, log = await self._api(caller, "GET", f"/v1/logs/{log_id}")
        if status != 200:
            return self._page(request, "error.html", caller, status=status, message=_message(log))
        return self._page(
            request,
            "log.html",
            caller,
            log=log,
            request_body=_pretty_text(log.get("request_body")),
            response_body=_pretty_text(
                reassembled(log.get("response_body")) if log.get("stream") else log.get("response_body")
            ),
            raw_stream=log.get("response_body") if log.get("stream") else None,
            feedback=log.get("feedback") or [],
        )

    async def _trace(self, request: Request, caller: Caller) -> Response:
        trace_id = request.path_params["trace_id"]
        status, answer = await self._api(
            caller, "GET", "/v1/logs", query=urlencode({"trace_id": trace_id, "limit": "200"})
        )
        logs = (
            sorted((answer or {}).get("data", []), key=lambda log: log["created_at"]) if status == 200 else []
        )
        spans = _timeline(logs)
        return self._page(request, "trace.html", caller, trace_id=trace_id, spans=spans)

    # -- analytics --------------------------------------------------------------------------

    async def _analytics(self, request: Request, caller: Caller) -> Response:
        hours = _int(request.query_params.get("hours"), 24, 1, 24 * 90)
        meta = request.query_params.get("meta", "").strip()
        group = f"metadata.{meta}" if meta else request.query_params.get("group") or "provider"
        until = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        since = until - timedelta(hours=hours)
        window = {"time_of_generation_min": since.isoformat(), "time_of_generation_max": until.isoformat()}
        charts = []
        totals: dict[str, Any] = {}
        for metric, title, unit in METRICS:
            path_metric = "latency" if metric.startswith("latency") else metric
            status, graph = await self._api(
                caller, "GET", f"/v1/analytics/graphs/{path_metric}", query=urlencode(window)
            )
            if status != 200:
                return self._page(request, "error.html", caller, status=status, message=_message(graph))
            field = {
                "latency": "p50",
                "latency-p99": "p99",
                "cache/hit-rate": "hits",
            }.get(metric, "total")
            points = [
                Point(_label(p["timestamp"], hours), _number(p.get(field))) for p in graph["data_points"]
            ]
            charts.append({"title": title, "svg": Markup(bar_chart(title, points, unit))})
            totals[title] = graph["summary"].get(field)
            if metric in ("errors", "cache/hit-rate"):
                rate = graph["summary"].get("rate")
                totals[f"{title} rate"] = f"{float(rate):.1%}" if rate is not None else None
        filters = LogFilters(since=since, until=until)
        try:
            groups = await self.host.log_groups(caller.principal, filters, group)
        except ValueError as exc:
            return self._page(request, "error.html", caller, status=400, message=str(exc))
        return self._page(
            request,
            "analytics.html",
            caller,
            charts=charts,
            totals=totals,
            groups=groups,
            group=group,
            hours=hours,
            choices=GROUPS,
        )

    # -- prompts ----------------------------------------------------------------------------

    async def _prompts(self, request: Request, caller: Caller) -> Response:
        error = None
        if request.method == "POST":
            form = request.state.form
            body = {
                "name": form.get("name", ""),
                "string": form.get("string", ""),
                "parameters": _json_field(form.get("parameters")),
            }
            done, answer = await self._submit(
                request, caller, "POST", "/v1/prompts", body, lambda made: f"/console/prompts/{made['id']}"
            )
            if done is not None:
                return done
            error = _message(answer)
        status, answer = await self._api(caller, "GET", "/v1/prompts", query="page_size=200")
        prompts = answer.get("data", []) if status == 200 else []
        return self._page(
            request, "prompts.html", caller, prompts=prompts, error=error, status=400 if error else 200
        )

    async def _prompt(self, request: Request, caller: Caller) -> Response:
        prompt_id = request.path_params["prompt_id"]
        error = None
        if request.method == "POST":
            form = request.state.form
            body: dict[str, Any] = {"string": form.get("string", "")}
            if form.get("parameters"):
                body["parameters"] = _json_field(form.get("parameters"))
            if form.get("version_description"):
                body["version_description"] = form["version_description"]
            status, answer = await self._api(caller, "PUT", f"/v1/prompts/{prompt_id}", body=body)
            if status in REFUSED:
                return self._refused(request, caller, status, answer)
            if status == 200 and form.get("publish"):
                status, answer = await self._api(
                    caller,
                    "PUT",
                    f"/v1/prompts/{prompt_id}/makeDefault",
                    body={"version": answer["prompt_version"]},
                )
            if status == 200:
                return RedirectResponse(f"/console/prompts/{prompt_id}", status_code=303)
            error = _message(answer)
        status, prompt = await self._api(caller, "GET", f"/v1/prompts/{prompt_id}")
        if status != 200:
            return self._page(request, "error.html", caller, status=status, message=_message(prompt))
        _, versions = await self._api(caller, "GET", f"/v1/prompts/{prompt_id}/versions")
        versions = (versions or {}).get("data", [])
        diff = _version_diff(versions, request.query_params.get("a"), request.query_params.get("b"))
        preview = None
        variables = _variables(request.query_params)
        if variables:
            status, rendered = await self._api(
                caller, "POST", f"/v1/prompts/{prompt_id}/render", body={"variables": variables}
            )
            preview = rendered if status == 200 else {"error": _message(rendered)}
        template = prompt.get("string")
        return self._page(
            request,
            "prompt.html",
            caller,
            prompt=prompt,
            names=_variable_names(template if isinstance(template, str) else json.dumps(template)),
            versions=versions,
            diff=diff,
            preview=preview,
            variables=variables,
            error=error,
            status=400 if error else 200,
        )

    async def _label(self, request: Request, caller: Caller) -> Response:
        """Point a label at a version (a rollout or a rollback), or take it off."""
        prompt_id = request.path_params["prompt_id"]
        form = request.state.form
        label = quote(form.get("label", "").strip(), safe="")
        path = f"/v1/prompts/{prompt_id}/labels/{label}"
        if form.get("remove"):
            status, answer = await self._api(caller, "DELETE", path)
        else:
            version = _int(form.get("version"), 0, 0, 10**9)
            status, answer = await self._api(caller, "PUT", path, body={"version": version})
        if status != 200:
            return self._refused(request, caller, status, answer)
        return RedirectResponse(f"/console/prompts/{prompt_id}", status_code=303)

    async def _playground(self, request: Request, caller: Caller) -> Response:
        prompt_id = request.path_params["prompt_id"]
        form = request.state.form
        models = [m.strip() for m in form.get("models", "").split(",") if m.strip()]
        variables = {k[4:]: v for k, v in form.items() if k.startswith("var.")}
        body = {"variables": variables, "runs": [{"model": model} for model in models]}
        status, answer = await self.host.playground_call(
            caller.principal, caller.api_key, prompt_id, body, form.get("virtual_key", "")
        )
        results = answer.get("results", []) if isinstance(answer, dict) and status == 200 else []
        return self._page(
            request,
            "_playground.html",
            caller,
            results=results,
            error=None if status == 200 else _message(answer),
        )

    # -- configs ----------------------------------------------------------------------------

    async def _configs(self, request: Request, caller: Caller) -> Response:
        errors: dict[str, str] = {}
        form: dict[str, str] = {}
        if request.method == "POST":
            form = request.state.form
            done, errors = await self._save_config(
                request, caller, "POST", "/v1/configs", form.get("config", ""), {"name": form.get("name", "")}
            )
            if done is not None:
                return done
        status, answer = await self._api(caller, "GET", "/v1/configs")
        configs = answer.get("data", []) if status == 200 else []
        return self._page(
            request,
            "configs.html",
            caller,
            configs=configs,
            errors=errors,
            form=form,
            status=400 if errors else 200,
        )

    async def _config(self, request: Request, caller: Caller) -> Response:
        slug = request.path_params["slug"]
        errors: dict[str, str] = {}
        draft = None
        if request.method == "POST":
            draft = request.state.form.get("config", "")
            done, errors = await self._save_config(request, caller, "PUT", f"/v1/configs/{slug}", draft, {})
            if done is not None:
                return done
        status, saved = await self._api(caller, "GET", f"/v1/configs/{slug}")
        if status != 200:
            return self._page(request, "error.html", caller, status=status, message=_message(saved))
        _, versions = await self._api(caller, "GET", f"/v1/configs/{slug}/versions")
        text = draft if draft is not None else json.dumps(json.loads(saved["config"]), indent=2)
        return self._page(
            request,
            "config.html",
            caller,
            saved=saved,
            text=text,
            versions=(versions or {}).get("data", []),
            errors=errors,
            status=400 if errors else 200,
        )

    # -- keys -------------------------------------------------------------------------------

    async def _keys(self, request: Request, caller: Caller) -> Response:
        created = None
        error = None
        if request.method == "POST":
            form = request.state.form
            role = form.get("role", "member")
            kind = "organisation" if role in ("owner", "admin") else "workspace"
            body: dict[str, Any] = {"name": form.get("name", ""), "role": role}
            if form.get("workspace_id"):
                body["workspace_id"] = form["workspace_id"]
            status, answer = await self._api(caller, "POST", f"/v1/api-keys/{kind}/service", body=body)
            if status in REFUSED:
                return self._refused(request, caller, status, answer)
            if status == 200:
                created = answer["key"]
            else:
                error = _message(answer)
        return await self._keys_page(
            request, caller, created=created, error=error, status=400 if error else 200
        )

    async def _keys_page(
        self, request: Request, caller: Caller, status: int = 200, **values: Any
    ) -> Response:
        ok_keys, keys = await self._api(caller, "GET", "/v1/api-keys")
        ok_vks, vks = await self._api(caller, "GET", "/v1/virtual-keys")
        usage = await self.host.budget_usage(caller.principal)
        return self._page(
            request,
            "keys.html",
            caller,
            status=status,
            keys=keys.get("data", []) if ok_keys == 200 else None,
            virtual_keys=vks.get("data", []) if ok_vks == 200 else None,
            usage=usage,
            **values,
        )

    async def _revoke(self, request: Request, caller: Caller) -> Response:
        status, answer = await self._api(caller, "DELETE", f"/v1/api-keys/{request.path_params['key_id']}")
        if status != 200:
            return await self._keys_page(request, caller, status=status, error=_message(answer))
        return RedirectResponse("/console/keys", status_code=303)

    async def _virtual_keys(self, request: Request, caller: Caller) -> Response:
        form = request.state.form
        body: dict[str, Any] = {
            "name": form.get("name", ""),
            "provider": form.get("provider", ""),
            "key": form.get("key", ""),
        }
        if form.get("budget_usd"):
            body["usage_limits"] = {
                "type": "cost",
                "credit_limit": form["budget_usd"],
                "periodic_reset": form.get("reset") or None,
            }
        if form.get("rpm"):
            body["rate_limits"] = [
                {"type": "requests", "unit": "rpm", "value": _int(form["rpm"], 0, 0, 10**9)}
            ]
        status, answer = await self._api(caller, "POST", "/v1/virtual-keys", body=body)
        if status != 200:
            return await self._keys_page(request, caller, status=status, vk_error=_message(answer))
        return await self._keys_page(request, caller, vk_created=answer.get("slug"))

    async def _audit(self, request: Request, caller: Caller) -> Response:
        query = urlencode(
            {k: v for k, v in request.query_params.items() if k in ("resource_type", "action") and v}
        )
        status, answer = await self._api(caller, "GET", "/v1/audit-logs", query=query)
        if status != 200:
            return self._page(request, "error.html", caller, status=status, message=_message(answer))
        return self._page(request, "audit.html", caller, entries=answer["data"])


# -- helpers ----------------------------------------------------------------------------------------


def _client(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _secure(response: Response) -> None:
    response.headers["content-security-policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; style-src-attr 'unsafe-inline'; "
        "script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    )
    response.headers["x-content-type-options"] = "nosniff"
    response.headers["x-frame-options"] = "DENY"
    response.headers["referrer-policy"] = "same-origin"
    response.headers["cache-control"] = "no-store"


def _message(answer: Any) -> str:
    if isinstance(answer, dict):
        message = str(answer.get("message") or answer.get("error") or answer)
        errors = answer.get("errors")
        if errors and isinstance(errors, list):
            message += ": " + "; ".join(
                str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors
            )
        return message
    return str(answer)


def _field_errors(answer: Any) -> dict[str, str]:
    """The errors of a failed change by field: ``path: targets,0,provider, message: ...`` lines of
    the config validator go to the ``config`` field with their path; others to ``form``."""
    errors: dict[str, str] = {}
    if isinstance(answer, dict):
        lines = []
        for item in answer.get("errors") or []:
            text = item.get("message", str(item)) if isinstance(item, dict) else str(item)
            lines.append(text)
        message = str(answer.get("message", ""))
        if lines:
            errors["config"] = "; ".join(lines)
        else:
            errors["form"] = message
    return errors


def _parse_json(text: str) -> tuple[Any, str | None]:
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"


def _json_field(text: str | None) -> Any:
    if not text or not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _pretty_text(text: Any) -> str | None:
    if text is None:
        return None
    if not isinstance(text, str):
        return _pretty(text)
    try:
        return _pretty(json.loads(text))
    except json.JSONDecodeError:
        return text


_MUSTACHE = re.compile(r"\{\{\{?[^}]*\}?\}\}")
_VARIABLE = re.compile(r"\{\{\{?\s*[&#^]?\s*([A-Za-z_][\w.-]*)\s*\}?\}\}")


def _variable_names(template: str) -> list[str]:
    """The variables a mustache template reads (``{{name}}``, ``{{&name}}``, sections), in order."""
    names: list[str] = []
    for name in _VARIABLE.findall(template):
        if name not in names:
            names.append(name)
    return names


def _highlight_variables(text: str) -> Markup:
    """``text`` escaped, with each mustache tag (``{{name}}``, ``{{#list}}``...) in a ``<mark>``."""
    out: list[str] = []
    position = 0
    for match in _MUSTACHE.finditer(text):
        out.append(str(escape(text[position : match.start()])))
        out.append(f'<mark class="var">{escape(match.group(0))}</mark>')
        position = match.end()
    out.append(str(escape(text[position:])))
    return Markup("".join(out))


def _usd(value: Any) -> str:
    if value in (None, ""):
        return "–"
    return "$" + (format(value, "f") if isinstance(value, Decimal) else str(value))


def _when(value: str | None) -> str:
    if not value:
        return ""
    return value.replace("T", " ")[:19]


def _int(text: str | None, default: int, low: int, high: int) -> int:
    try:
        return max(low, min(high, int(text or default)))
    except ValueError:
        return default


def _number(value: Any) -> float:
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


def _label(timestamp: str, hours: int) -> str:
    return timestamp[5:10] + " " + timestamp[11:16] if hours <= 48 else timestamp[5:10]


def _variables(params: Any) -> dict[str, str]:
    return {key[4:]: value for key, value in params.items() if key.startswith("var.")}


def _version_diff(
    versions: list[dict[str, Any]], a: str | None, b: str | None
) -> list[dict[str, str]] | None:
    """Two versions side by side, line by line (``a`` and ``b`` are version numbers)."""
    if not a or not b:
        return None
    by_number = {str(v.get("prompt_version") or v.get("version")): v for v in versions}
    left, right = by_number.get(a), by_number.get(b)
    if left is None or right is None:
        return None
    old = _template_text(left).splitlines()
    new = _template_text(right).splitlines()
    rows = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new).get_opcodes():
        for k in range(max(i2 - i1, j2 - j1)):
            rows.append(
                {
                    "kind": tag,
                    "left": old[i1 + k] if i1 + k < i2 else "",
                    "right": new[j1 + k] if j1 + k < j2 else "",
                }
            )
    return rows


def _template_text(version: dict[str, Any]) -> str:
    template = (version.get("prompt_template") or {}).get("string") or version.get("string")
    if isinstance(template, str):
        return template
    return json.dumps(template, indent=2)


def _timeline(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each request of a trace as a bar: its offset and width in percent of the trace's span."""
    if not logs:
        return []
    starts = [
        datetime.fromisoformat(log["created_at"]) - timedelta(milliseconds=log["latency_ms"]) for log in logs
    ]
    begin = min(starts)
    end = max(s + timedelta(milliseconds=log["latency_ms"]) for s, log in zip(starts, logs, strict=True))
    total = max((end - begin).total_seconds() * 1000, 1.0)
    return [
        {
            "log": log,
            "offset": round((start - begin).total_seconds() * 1000 / total * 100, 2),
            "width": max(round(log["latency_ms"] / total * 100, 2), 0.5),
            "start_ms": round((start - begin).total_seconds() * 1000),
        }
        for start, log in zip(starts, logs, strict=True)
    ]
