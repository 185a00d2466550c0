"""core.deploy.roll_out against a local server that speaks the Cloud Run Admin API v2 (REST).

The real ``run_v2.ServicesClient`` with the REST transport and anonymous credentials talks to a
threaded ``http.server`` on 127.0.0.1 (``api_endpoint="http://..."``: the transport keeps an
explicit scheme). The server implements the three calls a roll-out makes:

* ``GET   /v2/projects/p/locations/l/services/s``      -> the Service
* ``PATCH /v2/projects/p/locations/l/services/s``      -> a long-running Operation (not done)
* ``GET   /v2/projects/p/locations/l/operations/<id>`` -> done, the Service in ``response``

and records every request so the tests can check what the client really sent.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import run_v2

from core.deploy import DeployError, RolloutResult, roll_out, roll_out_if_configured

pytestmark = pytest.mark.integration

SERVICE = "projects/p/locations/l/services/s"
IMAGE = "europe-west1-docker.pkg.dev/p/composer-id/app:3f2a9c1"
SERVICE_TYPE = "type.googleapis.com/google.cloud.run.v2.Service"


def initial_service() -> dict:
    return {
        "name": SERVICE,
        "uid": "2b8c5f0e-0000-4000-8000-000000000001",
        "generation": "4",
        "etag": '"etag-4"',
        "uri": "https://s-abc123-ew.a.run.app",
        "latestReadyRevision": f"{SERVICE}/revisions/s-00004-aaa",
        "latestCreatedRevision": f"{SERVICE}/revisions/s-00004-aaa",
        "template": {
            "serviceAccount": "composer-app@p.iam.gserviceaccount.com",
            "revision": "s-00004-aaa",
            "sessionAffinity": True,
            "scaling": {"minInstanceCount": 0, "maxInstanceCount": 3},
            "containers": [
                {
                    "name": "app",
                    "image": IMAGE,
                    "ports": [{"name": "http1", "containerPort": 8080}],
                    "env": [
                        {"name": "COMPOSER_MLFLOW_TRACKING_URI", "value": "https://mlflow.example"},
                        {"name": "COMPOSER_MODEL_VERSION", "value": "3"},
                        {
                            "name": "PGPASSWORD",
                            "valueSource": {
                                "secretKeyRef": {"secret": "db-password", "version": "latest"}
                            },
                        },
                        {"name": "COMPOSER_APP_HOST", "value": "0.0.0.0"},
                    ],
                    "volumeMounts": [{"name": "cloudsql", "mountPath": "/cloudsql"}],
                }
            ],
            "volumes": [
                {
                    "name": "cloudsql",
                    "cloudSqlInstance": {"instances": ["p:l:composer-id"]},
                }
            ],
        },
    }


@dataclass
class FakeCloudRun:
    """State of the fake API plus every request it received."""

    services: dict[str, dict] = field(default_factory=dict)
    operations: dict[str, dict] = field(default_factory=dict)
    requests: list[dict] = field(default_factory=list)
    errors: dict[tuple[str, str], tuple[int, dict]] = field(default_factory=dict)
    operation_error: dict | None = None  # the failed revision's google.rpc.Status
    never_done: bool = False
    base_url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def requests_of(self, method: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == method]


def make_handler(state: FakeCloudRun) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep the test output clean
            pass

        def _reply(self, status: int, body: dict) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _record(self) -> tuple[str, dict, dict | None]:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            query = parse_qs(parts.query, keep_blank_values=True)
            with state.lock:
                state.requests.append(
                    {
                        "method": self.command,
                        "path": parts.path,
                        "query": query,
                        "body": body,
                        "headers": dict(self.headers),
                    }
                )
            return parts.path, query, body

        def _error_for(self, path: str) -> bool:
            key = (self.command, path)
            if key in state.errors:
                status, body = state.errors[key]
                self._reply(status, body)
                return True
            return False

        def do_GET(self) -> None:
            path, _, _ = self._record()
            if self._error_for(path):
                return
            name = path.removeprefix("/v2/")
            if name in state.services:
                self._reply(200, state.services[name])
            elif name in state.operations:
                self._reply(200, state.operations[name])
            else:
                self._reply(404, not_found(name))

        def do_PATCH(self) -> None:
            path, _, body = self._record()
            if self._error_for(path):
                return
            name = path.removeprefix("/v2/")
            if name not in state.services:
                self._reply(404, not_found(name))
                return
            location = name.split("/services/")[0]
            op_name = f"{location}/operations/op-{len(state.operations) + 1}"
            updated = copy.deepcopy(body)
            updated["name"] = name  # the REST transcoding moves `service.name` into the URL
            generation = int(state.services[name]["generation"]) + 1
            revision = f"{name}/revisions/s-{generation:05d}-bbb"
            updated.update(
                generation=str(generation),
                etag=f'"etag-{generation}"',
                latestCreatedRevision=revision,
                latestReadyRevision=revision,
                uri=state.services[name]["uri"],
            )
            done: dict = {"name": op_name, "done": True}
            if state.operation_error:
                done["error"] = state.operation_error
            else:
                done["response"] = {"@type": SERVICE_TYPE, **updated}
                state.services[name] = updated
            pending = {"name": op_name, "done": False}
            state.operations[op_name] = pending if state.never_done else done
            # The PATCH itself answers with the operation still running: the client must poll.
            self._reply(200, pending)

    return Handler


def not_found(name: str) -> dict:
    return {
        "error": {
            "code": 404,
            "message": f"Resource '{name.rsplit('/', 1)[-1]}' of kind 'SERVICE' in region 'l' "
            "in project 'p' does not exist.",
            "status": "NOT_FOUND",
        }
    }


@pytest.fixture()
def cloud_run() -> Iterator[FakeCloudRun]:
    state = FakeCloudRun(services={SERVICE: initial_service()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture()
def client(cloud_run: FakeCloudRun) -> run_v2.ServicesClient:
    return run_v2.ServicesClient(
        credentials=AnonymousCredentials(),
        transport="rest",
        client_options=ClientOptions(api_endpoint=cloud_run.base_url),
    )


def env_of(service_json: dict) -> list[dict]:
    return service_json["template"]["containers"][0]["env"]


def test_roll_out_sets_the_version_and_keeps_everything_else(cloud_run, client):
    result = roll_out(SERVICE, "7", client=client, timeout=30)

    assert isinstance(result, RolloutResult)
    assert result.revision == "s-00005-bbb"
    assert result.latest_created_revision == "s-00005-bbb"
    assert result.ready
    assert result.uri == "https://s-abc123-ew.a.run.app"
    assert result.previous_value == "3"
    assert result.changed
    assert result.as_dict()["model_version"] == "7"

    methods = [(r["method"], r["path"]) for r in cloud_run.requests]
    assert methods[0] == ("GET", f"/v2/{SERVICE}")
    assert methods[1] == ("PATCH", f"/v2/{SERVICE}")
    assert ("GET", "/v2/projects/p/locations/l/operations/op-1") in methods[2:]

    (patch,) = cloud_run.requests_of("PATCH")
    sent = patch["body"]
    before = initial_service()
    # The service is named by the URL (the REST transcoding moves `service.name` there).
    assert patch["path"] == f"/v2/{SERVICE}"
    assert sent.get("name", SERVICE) == SERVICE
    assert sent["etag"] == before["etag"]  # optimistic concurrency: a concurrent edit fails
    container = sent["template"]["containers"][0]
    assert container["image"] == IMAGE
    assert container["name"] == "app"
    assert container["volumeMounts"] == before["template"]["containers"][0]["volumeMounts"]
    # The variable is replaced in place; every other one is kept, in order, secrets included.
    assert [e["name"] for e in container["env"]] == [e["name"] for e in env_of(before)]
    by_name = {e["name"]: e for e in container["env"]}
    assert by_name["COMPOSER_MODEL_VERSION"] == {"name": "COMPOSER_MODEL_VERSION", "value": "7"}
    assert by_name["COMPOSER_MLFLOW_TRACKING_URI"]["value"] == "https://mlflow.example"
    assert by_name["COMPOSER_APP_HOST"]["value"] == "0.0.0.0"
    assert by_name["PGPASSWORD"]["valueSource"] == {
        "secretKeyRef": {"secret": "db-password", "version": "latest"}
    }
    assert sent["template"]["sessionAffinity"] is True
    assert sent["template"]["scaling"]["maxInstanceCount"] == 3
    assert sent["template"]["volumes"] == before["template"]["volumes"]
    # The whole service is sent (no partial update): no updateMask, or one that covers it.
    mask = patch["query"].get("updateMask")
    assert mask is None or any("template" in m for m in mask)
    # A fixed revision name would collide with the existing revision: it is cleared.
    assert "revision" not in sent["template"]
    # The fake now serves the new revision.
    assert cloud_run.services[SERVICE]["latestReadyRevision"].endswith("s-00005-bbb")


def test_roll_out_appends_a_missing_variable(cloud_run, client):
    service = cloud_run.services[SERVICE]
    service["template"]["containers"][0]["env"] = [
        e for e in env_of(service) if e["name"] != "COMPOSER_MODEL_VERSION"
    ]

    result = roll_out(SERVICE, "12", client=client, env_var="COMPOSER_MODEL_VERSION", timeout=30)

    assert result.previous_value is None
    assert result.changed
    (patch,) = cloud_run.requests_of("PATCH")
    env = env_of(patch["body"])
    assert env[-1] == {"name": "COMPOSER_MODEL_VERSION", "value": "12"}
    assert len(env) == 4


def test_same_version_is_reported_as_unchanged(cloud_run, client):
    result = roll_out(SERVICE, "3", client=client, timeout=30)
    assert not result.changed
    assert result.previous_value == "3"


@pytest.mark.parametrize(
    ("status", "grpc_status", "message", "expected"),
    [
        (
            403,
            "PERMISSION_DENIED",
            "Permission 'run.services.get' denied on resource 'projects/p/locations/l/services/s'",
            "roles/run.developer",
        ),
        (404, "NOT_FOUND", "Resource 's' of kind 'SERVICE' does not exist.", "check the project"),
    ],
)
def test_api_errors_on_read_surface_as_deploy_error(
    cloud_run, client, status, grpc_status, message, expected
):
    cloud_run.errors[("GET", f"/v2/{SERVICE}")] = (
        status,
        {"error": {"code": status, "message": message, "status": grpc_status}},
    )
    with pytest.raises(DeployError) as caught:
        roll_out(SERVICE, "7", client=client, timeout=30)
    error = caught.value
    assert error.status == status
    assert error.service == SERVICE
    text = str(error)
    assert SERVICE in text
    assert f"HTTP {status}" in text
    assert message in text
    assert expected in text
    assert not cloud_run.requests_of("PATCH")


def test_permission_denied_on_update_surfaces_as_deploy_error(cloud_run, client):
    cloud_run.errors[("PATCH", f"/v2/{SERVICE}")] = (
        403,
        {
            "error": {
                "code": 403,
                "message": "Permission 'iam.serviceaccounts.actAs' denied on service account "
                "composer-app@p.iam.gserviceaccount.com",
                "status": "PERMISSION_DENIED",
            }
        },
    )
    with pytest.raises(DeployError, match=r"updating failed with HTTP 403") as caught:
        roll_out(SERVICE, "7", client=client, timeout=30)
    assert caught.value.status == 403
    assert "iam.serviceaccounts.actAs" in str(caught.value)


def test_failed_revision_surfaces_as_deploy_error(cloud_run, client):
    cloud_run.operation_error = {
        "code": 9,  # FAILED_PRECONDITION
        "message": "Revision 's-00005-bbb' is not ready and cannot serve traffic. "
        "The user-provided container failed to start and listen on the port.",
    }
    with pytest.raises(DeployError) as caught:
        roll_out(SERVICE, "7", client=client, timeout=30)
    text = str(caught.value)
    assert SERVICE in text
    assert "HTTP 400" in text  # FAILED_PRECONDITION maps to 400
    assert "failed to start" in text
    assert caught.value.status == 400


def test_timeout_surfaces_as_deploy_error(cloud_run, client):
    cloud_run.never_done = True
    with pytest.raises(DeployError, match=r"not ready after 0\.5 s"):
        roll_out(SERVICE, "7", client=client, timeout=0.5)


def test_bad_service_name_is_rejected_before_any_call(cloud_run, client):
    with pytest.raises(DeployError, match="projects/PROJECT/locations/REGION/services/SERVICE"):
        roll_out("s", "7", client=client)
    with pytest.raises(DeployError, match="empty model version"):
        roll_out(SERVICE, " ", client=client)
    assert cloud_run.requests == []


def test_roll_out_if_configured(cloud_run, client):
    assert roll_out_if_configured(None, "7", client=client) is None
    assert roll_out_if_configured("", "7", client=client) is None
    assert cloud_run.requests == []
    result = roll_out_if_configured(SERVICE, "8", client=client, timeout=30)
    assert result is not None and result.model_version == "8"
