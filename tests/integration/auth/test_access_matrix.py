"""Every route of the API x every kind of caller, with keys required: the status each must get, derived from the
route's own rule. The table is generated from the route list, so a new route is in it the day it is added, and one
without a rule fails here.

What a caller gets: 401 with no key (on routes that need one) or a key that is expired or revoked; 403 with a role
below the rule's, or a narrowed key on a route that needs every grant; the very 404 of a missing name for a
collection or dataset it is not granted; otherwise the request passes the check, and the route answers as it
answers the same request on an open server (the status of the open server is the reference).
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.auth.principal import Role
from app.auth.rules import Rule, api_routes, rule_of
from app.config import Settings
from app.console import session
from app.db.models import Collection, Dataset
from app.db.repository import missing
from app.training.finetune.repository import no_job
from tests.integration.auth.conftest import (
    CALLERS,
    COLLECTION,
    DATASET,
    DOCUMENT,
    KEY_NAMES,
    SNAPSHOT,
    Seeded,
)

ROLES = {"read": Role.read, "write": Role.write, "admin": Role.admin, "other": Role.admin}
ROUTES = [
    (method, route)
    for route in api_routes(create_app(Settings(database_url="postgresql://localhost/unused")))
    for method in sorted(route.methods or ())
]
NAMED = [(method, route) for method, route in ROUTES if (rule := rule_of(route)) and (rule.collection or rule.dataset)]


def expected(route: APIRoute, rule: Rule, caller: str) -> int | str:
    """401, 403, 404, or "passes" (the route's own answer) for CALLER on ROUTE with RULE."""
    if caller in ("expired", "revoked"):
        return 401  # a key sent must be live, on any route
    if caller == "none":
        return "passes" if rule.role is None else 401
    if rule.role is not None and ROLES[caller] < rule.role:
        return 403
    if caller == "other":
        if rule.unrestricted:
            return 403
        if rule.collection is not None or rule.dataset is not None:
            return 404
        if route.path == "/v1/finetune/jobs/{job}":  # the job's dataset is not granted: the route's own 404
            return 404
    return "passes"


def url_of(route: APIRoute, rule: Rule, seeded: Seeded) -> str:
    """ROUTE's path with its parameters naming seeded rows."""
    values: dict[str, Any] = {
        "external_id": DOCUMENT, "snapshot": SNAPSHOT, "example_id": seeded.example_id, "job": seeded.job_id,
        "number": 1, "run": seeded.run_id,
    }  # fmt: skip
    if rule.collection == "name":
        values["name"] = COLLECTION
    elif rule.dataset == "name":
        values["name"] = DATASET
    elif route.path.startswith("/v1/keys"):
        values["name"] = KEY_NAMES["read"]
    elif route.path.startswith("/docs/assets"):
        values["name"] = "favicon.png"
    elif route.path.startswith("/console/static"):
        values["name"] = "console.css"
    path = route.path.replace("{external_id:path}", "{external_id}")
    return path.format(**values)


# Valid requests where the route takes a body or a parameter, so that passing the check reaches the route's work
# (a 2xx); other routes get an empty body, and answer with their own 422. Names made are "other-" ones, which the
# narrowed key is granted too. A body that names seeded rows is made from them (a function of Seeded).
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/datasets/{name}/duplicates/resolve"): lambda seeded: {
        "keep": seeded.example_ids[:1],
        "drop": seeded.example_ids[1:2],
    },
    ("POST", "/v1/collections"): {"name": "other-new", "embedding_provider": "hashing", "dimensions": 8},
    ("POST", "/v1/collections/{name}/documents"): {"external_id": "new", "content": "A new document."},
    ("POST", "/v1/collections/{name}/embeddings"): {"metric": "l2"},
    ("PATCH", "/v1/collections/{name}/embeddings/{number}"): {"status": "building"},
    ("POST", "/v1/collections/{name}/feedback"): {"query": "aardvark", "external_id": DOCUMENT, "relevant": True},
    ("POST", "/v1/collections/{name}/search"): {"query": "aardvark", "mode": "text"},
    ("POST", "/v1/collections/{name}/answer"): {"question": "What does the aardvark eat?", "mode": "text"},
    ("POST", "/v1/datasets"): {"name": "other-new", "task": "classification"},
    ("POST", "/v1/datasets/{name}/examples"): {"text": "a new example", "label": "spam"},
    ("POST", "/v1/datasets/{name}/snapshots"): {"name": "v2"},
    ("POST", "/v1/keys"): {"name": "new-key", "role": "read"},
}
FORMS: dict[str, Any] = {
    "/console/collections": {"name": "other-form", "embedding_provider": "hashing", "dimensions": "8"},
    "/console/sign-in": lambda seeded: {"key": seeded.secrets["read"]},
    "/console/collections/{name}/answer": {"question": "What does the aardvark eat?", "mode": "text"},
    "/console/datasets/{name}/split": {"train": "0.8", "validation": "0.1", "test": "0.1"},
    "/console/datasets/{name}/snapshots": {"snapshot": "v2"},
    "/console/datasets/{name}/duplicates/resolve": lambda seeded: {
        "members": seeded.example_ids[:2],
        "drop": seeded.example_ids[1:2],
    },
}
FILES = {
    "/console/datasets/{name}/import": {"file": ("new.jsonl", b'{"text": "new", "label": "spam"}\n', "text/plain")}
}
PARAMS = {
    ("GET", "/v1/datasets/{name}/export"): {"format": "jsonl"},
    ("GET", "/v1/collections/{name}/chunks"): {"document": DOCUMENT},
    ("GET", "/console/collections/{name}/document"): {"id": DOCUMENT},
    ("GET", "/console/collections/{name}/search"): {"query": "aardvark", "mode": "text"},
    ("GET", "/v1/datasets/{name}/snapshots/{snapshot}/diff"): {"against": SNAPSHOT},
    ("GET", "/console/datasets/{name}/export"): {"format": "jsonl"},
}


def send(client: TestClient, method: str, route: APIRoute, url: str, headers: dict[str, str], seeded: Seeded) -> Any:
    body = BODIES.get((method, route.path), {} if method in ("POST", "PUT", "PATCH") else None)
    body = body(seeded) if callable(body) else body
    params = PARAMS.get((method, route.path))
    if route.path.startswith("/console") and method == "POST":  # forms, with the CSRF pair a console page holds
        cookie = "c" * 32
        token = session.token_for(client.app.state.settings, cookie)
        headers = {**headers, "Cookie": f"{session.CSRF_COOKIE}={cookie}", session.CSRF_HEADER: token}
        form = FORMS.get(route.path, {})
        data = form(seeded) if callable(form) else form
        files = FILES.get(route.path)
        return client.request(
            method, url, data=data, files=files, params=params, headers=headers, follow_redirects=False
        )
    return client.request(method, url, json=body, params=params, headers=headers)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("method", "route"), ROUTES, ids=[f"{m} {r.path}" for m, r in ROUTES])
def test_route_x_caller(
    keyed: TestClient, open_api: TestClient, seeded: Seeded, method: str, route: APIRoute, caller: str
) -> None:
    rule = rule_of(route)
    assert rule is not None, f"{method} {route.path} declares no access rule (app/auth/rules.py needs())"
    url = url_of(route, rule, seeded)

    response = send(keyed, method, route, url, seeded.headers(caller), seeded)

    want = expected(route, rule, caller)
    if want == "passes":
        reference = send(open_api, method, route, url, {}, seeded)
        assert response.status_code not in (401, 403), response.text
        assert response.status_code == reference.status_code, (response.text, reference.text)
    else:
        assert response.status_code == want, response.text
    if want == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    if want == 403:
        assert response.json()["error"]["code"] == "forbidden"
    if want == 404 and route.path == "/v1/finetune/jobs/{job}":
        assert response.json() == no_job(str(seeded.job_id)).to_dict()
    elif want == 404:
        model, name = (Collection, COLLECTION) if rule.collection else (Dataset, DATASET)
        assert response.json() == missing(model, name).to_dict()


@pytest.mark.parametrize(("method", "route"), NAMED, ids=[f"{m} {r.path}" for m, r in NAMED])
def test_a_name_not_granted_is_the_404_of_a_missing_one(
    keyed: TestClient, seeded: Seeded, method: str, route: APIRoute
) -> None:
    """A narrowed key gets the same answer for a seeded name it is not granted as for a name that does not exist;
    and, where the request is otherwise valid (no body to get wrong), the answer a key granted everything gets for
    a missing name: nothing tells them apart."""
    rule = rule_of(route)
    assert rule is not None
    real_name = COLLECTION if rule.collection else DATASET
    real = url_of(route, rule, seeded)
    ghost = real.replace(f"/{real_name}", "/ghost", 1)

    hidden = send(keyed, method, route, real, seeded.headers("other"), seeded)
    hidden_ghost = send(keyed, method, route, ghost, seeded.headers("other"), seeded)

    assert hidden.status_code == hidden_ghost.status_code == 404
    assert hidden.json() == _renamed(hidden_ghost.json(), "ghost", real_name)
    assert hidden.headers.keys() == hidden_ghost.headers.keys()
    if method in ("GET", "DELETE") or (method, route.path) in BODIES:
        absent = send(keyed, method, route, ghost, seeded.headers("admin"), seeded)
        assert hidden.json() == _renamed(absent.json(), "ghost", real_name)


def _renamed(body: Any, old: str, new: str) -> Any:
    return {"error": {**body["error"], "message": body["error"]["message"].replace(repr(old), repr(new))}}


def test_the_table_covers_every_operation_of_the_spec() -> None:
    spec = create_app(Settings(database_url="postgresql://localhost/unused")).openapi()
    documented = {(method.upper(), path) for path, operations in spec["paths"].items() for method in operations}
    tabled = {(method, route.path_format) for method, route in ROUTES}

    assert documented <= tabled
    assert ("GET", "/v1/keys") in documented


def test_the_spec_documents_401_and_403_everywhere() -> None:
    spec = create_app(Settings(database_url="postgresql://localhost/unused")).openapi()

    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert {"401", "403"} <= operation["responses"].keys(), f"{method} {path}"
