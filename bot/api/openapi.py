"""The OpenAPI 3.1 document of ``/api/v1``, generated from ``bot.api.routes.ROUTES`` and the
pydantic models in ``bot.api.schemas`` (the same models every response is validated against)."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from bot.api import schemas as s
from bot.api.routes import ROUTES, Route

PREFIX = "/api/v1"
REF = "#/components/schemas/{model}"


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}}}


def _parameters(route: Route) -> list[dict[str, Any]]:
    if route.query is None:
        return []
    schema = route.query.model_json_schema(ref_template=REF)
    required = set(schema.get("required", ()))
    return [{"name": name, "in": "query", "required": name in required, "schema": prop,
             **({"description": prop["description"]} if "description" in prop else {})}
            for name, prop in schema["properties"].items()]


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.handler.__name__, "summary": route.summary, "tags": [route.tag],
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {
                "schema": {"$ref": REF.format(model=route.response.__name__)}}}},
            "400": _error("invalid query or body"),
            "401": _error("a bearer token is required or was wrong"),
            "429": _error("too many failed logins from this address"),
        },
    }
    params = _parameters(route)
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": REF.format(model=route.body.__name__)}}}}
        op["responses"]["409"] = _error("the action cannot apply (nothing changed)")
    return op


def openapi_document(version: str = "0.1.0") -> dict[str, Any]:
    models = {r.response for r in ROUTES} | {r.body for r in ROUTES if r.body} | {s.Error, s.LoginBody, s.LoginOut}
    _, defs = models_json_schema([(m, "serialization") for m in sorted(models, key=lambda m: m.__name__)],
                                 ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(PREFIX + route.path, {})[route.method.lower()] = _operation(route)
    paths[PREFIX + "/login"] = {"post": {
        "operationId": "login", "summary": "Exchange the bearer token for a session cookie (the dashboard)",
        "tags": ["auth"], "security": [],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": REF.format(model="LoginBody")}}}},
        "responses": {"200": {"description": "OK", "content": {"application/json": {
            "schema": {"$ref": REF.format(model="LoginOut")}}}},
            "401": _error("wrong token"), "429": _error("too many failed logins from this address")}}}
    paths[PREFIX + "/stream"] = {"get": {
        "operationId": "stream", "summary": "Live updates as server-sent events (signal, order, fill, denial,"
        " position, equity, state, action)", "tags": ["read"],
        "responses": {"200": {"description": "an endless text/event-stream",
                              "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                      "401": _error("a bearer token is required or was wrong")}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "neuralbot cockpit API", "version": version,
                 "description": "Read the daemon's state and operate it. Off loopback every request needs"
                 " `Authorization: Bearer <token>` (or the session cookie from /login)."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": defs.get("$defs", {}),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}, {}],
    }
