"""Roll a model version out to the Cloud Run service that serves the app.

The app serves whatever the ``champion`` alias points at and re-checks the alias every
``app_model_ttl_s`` seconds, so promotion alone is enough for running instances. A roll-out
additionally records the served version on the service itself: it sets one environment variable
(``COMPOSER_MODEL_VERSION`` by default) on the service's container, which makes Cloud Run create
a new revision whose instances start with the new champion already loaded. The previous revision
stays available for a traffic roll-back in the console or with ``gcloud run services
update-traffic``.

Only the Cloud Run Admin API v2 client is used; nothing here imports Airflow or Gradio. The
service to update is an argument (a full resource name), so the caller decides the target: e.g. a
``deploy_target`` setting that is ``None`` locally and the app's service name in the cloud (see
:func:`roll_out_if_configured`).
"""

from __future__ import annotations

import concurrent.futures
import re
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as api_exceptions
from google.cloud import run_v2

DEFAULT_ENV_VAR = "COMPOSER_MODEL_VERSION"
SERVICE_NAME = re.compile(
    r"^projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/services/(?P<service>[^/]+)$"
)


class DeployError(RuntimeError):
    """A roll-out failed. The message names the service and, for API errors, the HTTP status."""

    def __init__(self, message: str, *, service: str, status: int | None = None) -> None:
        super().__init__(message)
        self.service = service
        self.status = status


@dataclass(frozen=True)
class RolloutResult:
    """What a roll-out did: the revision that now serves and how to reach it."""

    service: str
    model_version: str
    env_var: str
    revision: str  # the latest ready revision after the update
    uri: str
    previous_value: str | None  # the variable's value before (None: it was not set)
    latest_created_revision: str
    changed: bool  # False when the variable already had this value (no new revision expected)

    @property
    def ready(self) -> bool:
        """True when the newest revision is the one serving (it became ready)."""
        return bool(self.revision) and self.revision == self.latest_created_revision

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "model_version": self.model_version,
            "env_var": self.env_var,
            "revision": self.revision,
            "uri": self.uri,
            "previous_value": self.previous_value,
            "latest_created_revision": self.latest_created_revision,
            "changed": self.changed,
            "ready": self.ready,
        }


def roll_out(
    service_name: str,
    model_version: str,
    *,
    client: run_v2.ServicesClient | None = None,
    env_var: str = DEFAULT_ENV_VAR,
    timeout: float = 600,
) -> RolloutResult:
    """Set ``env_var=model_version`` on the first container of ``service_name`` and wait.

    ``service_name`` is the full resource name,
    ``projects/PROJECT/locations/REGION/services/SERVICE``. Every other environment variable,
    the image and the rest of the template are sent back unchanged (the service read just
    before, with its ``etag``, so a concurrent change makes the update fail instead of being
    overwritten). Waits up to ``timeout`` seconds for the new revision to become ready.

    Raises :class:`DeployError` for API errors (with the HTTP status), a service without
    containers, a failed revision or a timeout.
    """
    if not SERVICE_NAME.match(service_name):
        raise DeployError(
            f"Cloud Run service name {service_name!r} is not of the form "
            "projects/PROJECT/locations/REGION/services/SERVICE",
            service=service_name,
        )
    version = str(model_version).strip()
    if not version:
        raise DeployError(
            f"Cloud Run service {service_name}: empty model version", service=service_name
        )
    client = client or run_v2.ServicesClient()

    try:
        service = client.get_service(name=service_name)
    except api_exceptions.GoogleAPICallError as error:
        raise _api_error("reading", service_name, error) from error

    containers = service.template.containers
    if not containers:
        raise DeployError(
            f"Cloud Run service {service_name} has no container in its template",
            service=service_name,
        )
    container = containers[0]
    previous = next((env.value for env in container.env if env.name == env_var), None)
    changed = previous != version
    _set_env(container, env_var, version)
    # A fixed revision name (set by an earlier deploy) would collide: let Cloud Run name it.
    service.template.revision = ""

    request = run_v2.UpdateServiceRequest(service=service)
    try:
        operation = client.update_service(request=request)
        updated = operation.result(timeout=timeout)
    except api_exceptions.GoogleAPICallError as error:
        raise _api_error("updating", service_name, error) from error
    except concurrent.futures.TimeoutError as error:
        raise DeployError(
            f"Cloud Run service {service_name}: the new revision was not ready after "
            f"{timeout:g} s (the update may still finish; check the service's revisions)",
            service=service_name,
        ) from error

    return RolloutResult(
        service=service_name,
        model_version=version,
        env_var=env_var,
        revision=_short(updated.latest_ready_revision),
        uri=updated.uri,
        previous_value=previous,
        latest_created_revision=_short(updated.latest_created_revision),
        changed=changed,
    )


def roll_out_if_configured(
    deploy_target: str | None, model_version: str, **kwargs: Any
) -> RolloutResult | None:
    """:func:`roll_out` when a target is configured, else ``None`` (local runs deploy nothing).

    Meant for the promote step: ``deploy_target`` comes from the caller's configuration
    (e.g. a ``COMPOSER_DEPLOY_TARGET`` variable holding the app's full service name).
    """
    if not deploy_target:
        return None
    return roll_out(deploy_target, model_version, **kwargs)


def _set_env(container: run_v2.Container, name: str, value: str) -> None:
    """Replace the variable's value in place (keeping its position), or append it."""
    for env in container.env:
        if env.name == name:
            env.value = value  # `value` and `value_source` are a oneof: a secret ref is dropped
            return
    container.env.append(run_v2.EnvVar(name=name, value=value))


def _short(revision: str) -> str:
    """``projects/.../revisions/NAME`` -> ``NAME`` (the API returns the short name already)."""
    return revision.rsplit("/", 1)[-1] if revision else ""


def _api_error(action: str, service: str, error: api_exceptions.GoogleAPICallError) -> DeployError:
    status = int(error.code) if error.code is not None else None
    reason = getattr(error, "reason", None)
    label = f"HTTP {status}" if status is not None else "no HTTP status"
    hint = {
        403: " (the caller needs roles/run.developer on the service and "
        "roles/iam.serviceAccountUser on its runtime service account)",
        404: " (check the project, region and service name)",
        409: " (the service changed while rolling out; run again)",
        412: " (the service changed while rolling out; run again)",
    }.get(status or 0, "")
    detail = error.message or str(error)
    return DeployError(
        f"Cloud Run service {service}: {action} failed with {label}"
        f"{f' {reason}' if reason else ''}: {detail}{hint}",
        service=service,
        status=status,
    )
