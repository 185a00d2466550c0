"""Static checks of the deployment files: docker-compose.yml, .env.example, the Dockerfiles,
terraform/ (python-hcl2 + checkov), scripts/deploy.sh and the Makefile targets the docs name.

Nothing here needs Docker, terraform or a cloud account. Where a command the deployment runs
exists on this machine (``mlflow server``, the ``airflow`` subcommands, ``python -m
gradio_app``, the images' numba warm-up), it is run here with ``--help`` or for real.
checkov runs from its own venv (.venv-checkov: it cannot share .venv with Airflow 3.3);
it is created with ``make .venv-checkov/.installed`` when missing.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import hcl2
import pytest
import yaml

from core.config import REPO_ROOT

pytestmark = pytest.mark.unit

COMPOSE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
DEPLOY = REPO_ROOT / "deploy"
TERRAFORM = REPO_ROOT / "terraform"
DOCKERFILES = {name: DEPLOY / f"{name}.Dockerfile" for name in ("app", "mlflow", "airflow")}
VAR_IN_COMPOSE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")
ALLOWED_CONDITIONS = {"service_healthy", "service_completed_successfully"}
BIN = Path(sys.executable).parent


# --- helpers ------------------------------------------------------------------------------------


@cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict[str, dict]:
    return compose()["services"]


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f".env.example: not KEY=VALUE: {line!r}"
            values[key.strip()] = value.strip()
    return values


def one_shot(name: str) -> bool:
    """A service that runs to completion: restart "no" and awaited with completed_successfully."""
    service = services()[name]
    awaited = any(
        (spec or {}).get("condition") == "service_completed_successfully"
        for other in services().values()
        for dep, spec in (other.get("depends_on") or {}).items()
        if dep == name
    )
    return str(service.get("restart", "no")) == "no" and awaited


def unquote(value):
    """python-hcl2 keeps the quotes of strings and keys: strip them, drop its bookkeeping."""
    if isinstance(value, dict):
        return {
            unquote(k): unquote(v)
            for k, v in value.items()
            if k not in ("__is_block__", "__comments__", "__start_line__", "__end_line__")
        }
    if isinstance(value, list):
        return [unquote(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


@cache
def tf_files() -> dict[str, dict]:
    parsed = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open() as handle:
            parsed[path.name] = unquote(hcl2.load(handle))
    return parsed


def tf_blocks(kind: str) -> list[dict]:
    return [block for doc in tf_files().values() for block in doc.get(kind, [])]


def tf_resource(rtype: str, name: str) -> dict:
    for block in tf_blocks("resource"):
        if rtype in block and name in block[rtype]:
            return block[rtype][name]
    raise AssertionError(f"terraform: no resource {rtype}.{name}")


def tf_variables() -> dict[str, dict]:
    return {name: spec for block in tf_blocks("variable") for name, spec in block.items()}


def tf_text_without_comments() -> str:
    text = "\n".join(p.read_text() for p in sorted(TERRAFORM.glob("*.tf")))
    return "\n".join(re.sub(r"(^|\s)(#|//).*$", "", line) for line in text.splitlines())


def requirements(path: Path) -> list[str]:
    return [
        line.strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def runtime_requirements() -> list[str]:
    """What deploy/airflow.Dockerfile installs: requirements.txt above its "# Tooling" line."""
    lines = (REPO_ROOT / "requirements.txt").read_text().splitlines()
    assert "# Tooling" in lines, 'requirements.txt lost its "# Tooling" section header'
    kept = lines[: lines.index("# Tooling")]
    return [line.strip() for line in kept if line.strip() and not line.strip().startswith("#")]


def split_requirement(line: str) -> tuple[str, str, str]:
    """'psycopg[binary]==3.3.9  # why' -> ('psycopg[binary]', '==3.3.9', marker)."""
    spec, _, marker = line.split("#", 1)[0].partition(";")
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+(?:\[[^\]]+\])?)\s*(.*)$", spec)
    assert match, line
    return match.group(1).lower(), match.group(2).replace(" ", ""), marker.strip()


def dockerfile_lines(path: Path) -> list[str]:
    """Instructions with continuation lines joined."""
    joined, current = [], ""
    for raw in path.read_text().splitlines():
        line = raw.rstrip()
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        joined.append((current + line).strip())
        current = ""
    return joined


def run(command: list[str], timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT, **kwargs
    )


# --- docker-compose.yml and .env.example --------------------------------------------------------


def test_compose_parses_and_has_the_platform():
    assert isinstance(compose(), dict)
    assert set(services()) >= {
        "postgres",
        "mlflow",
        "airflow-init",
        "airflow-api-server",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "app",
    }


def test_every_service_has_a_healthcheck_or_is_a_one_shot_init():
    for name, service in services().items():
        if one_shot(name):
            assert "healthcheck" not in service, f"{name}: a one-shot needs no healthcheck"
            continue
        check = service.get("healthcheck")
        assert check and check.get("test"), f"{name}: no healthcheck and not a one-shot init"
        assert not check.get("disable"), name


def test_depends_on_names_existing_services_with_a_usable_condition():
    names = set(services())
    for name, service in services().items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on must use conditions"
        for dep, spec in depends.items():
            assert dep in names, f"{name} depends on unknown service {dep}"
            assert dep != name, f"{name} depends on itself"
            condition = (spec or {}).get("condition")
            assert condition in ALLOWED_CONDITIONS, f"{name} -> {dep}: condition {condition}"
            if condition == "service_healthy":
                assert "healthcheck" in services()[dep], f"{name} waits for {dep}'s health"
            else:
                assert str(services()[dep].get("restart", "no")) == "no", (
                    f"{name} waits for {dep} to complete but {dep} restarts"
                )
    # No cycles: a topological order exists.
    pending = {n: set(s.get("depends_on") or {}) for n, s in services().items()}
    while pending:
        ready = [n for n, deps in pending.items() if not deps & set(pending)]
        assert ready, f"depends_on cycle among {sorted(pending)}"
        for n in ready:
            del pending[n]


def test_init_service_migrates_and_creates_the_admin():
    init = services()["airflow-init"]
    script = "\n".join(init["command"]) if isinstance(init["command"], list) else init["command"]
    assert "airflow db migrate" in script
    assert "AIRFLOW_ADMIN_PASSWORD" in script
    assert "SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" in script
    assert one_shot("airflow-init")
    for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor"):
        condition = services()[name]["depends_on"]["airflow-init"]["condition"]
        assert condition == "service_completed_successfully", name


def test_images_are_pinned_never_latest():
    for name, service in services().items():
        image = service.get("image")
        assert image, f"{name}: no image (built services need a tagged image name)"
        # ${IMAGE_TAG:?message} -> <IMAGE_TAG>, so the ":" inside does not count as the tag.
        image = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}", r"<\1>", image)
        repository, sep, tag = image.rpartition(":")
        assert sep and "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag.lower() != "latest" and "latest" not in tag.lower(), f"{name}: {image}"
        if "build" in service:
            assert repository.startswith("composer-id/"), name
            assert tag == "<IMAGE_TAG>", f"{name}: built images are tagged ${{IMAGE_TAG}}"
        else:
            assert re.match(r"^\d+\.\d+", tag), f"{name}: {image} is not an exact version"
    assert env_example()["IMAGE_TAG"] not in ("", "latest")


def test_every_compose_variable_is_documented_in_env_example():
    used = set(VAR_IN_COMPOSE.findall(COMPOSE.read_text()))
    documented = set(env_example())
    assert used, "no ${VAR} found: the regex or the file changed"
    assert used <= documented, f"not in .env.example: {sorted(used - documented)}"
    assert documented <= used, f".env.example documents unused: {sorted(documented - used)}"
    # Each documented variable has a comment right above it (or in the block above).
    text = ENV_EXAMPLE.read_text().splitlines()
    for key in documented:
        index = next(i for i, line in enumerate(text) if line.startswith(f"{key}="))
        above = [line for line in text[max(0, index - 12) : index] if line.startswith("#")]
        assert above, f".env.example: {key} has no comment"


def test_env_example_commits_no_secret():
    for key, value in env_example().items():
        if re.search(r"PASSWORD|SECRET|FERNET|KEY|AUTH", key):
            assert value == "" or value.startswith("change-me"), f"{key} looks like a secret"
    ignored = (REPO_ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in [line.strip() for line in ignored]
    # In compose, every secret-looking setting and every password in a URL is a ${VAR}.
    for name, service in services().items():
        environment = service.get("environment") or {}
        for key, value in environment.items():
            value = str(value)
            if re.search(r"PASSWORD|SECRET|FERNET", key) and not key.endswith("_FILE"):
                assert re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*[^}]*\}", value), f"{name}: {key}"
            for password in re.findall(r"://[^:/@\s]+:([^@\s]+)@", value):
                assert password.startswith("${"), f"{name}: {key} has a literal password"


def test_dockerfiles_and_build_contexts_exist():
    built = {}
    for name, service in services().items():
        build = service.get("build")
        if not build:
            continue
        context = REPO_ROOT / build.get("context", ".")
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert context.is_dir(), f"{name}: build context {context} missing"
        assert dockerfile.is_file(), f"{name}: {dockerfile} missing"
        built[name] = dockerfile.resolve()
    assert set(built.values()) == {p.resolve() for p in DOCKERFILES.values()}


def test_volumes_are_named_or_repository_paths():
    declared = set(compose().get("volumes") or {})
    used = set()
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (REPO_ROOT / source).exists(), f"{name}: bind mount {source} missing"
                assert not source.startswith("/"), f"{name}: absolute host path {source}"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
    assert declared == used, f"declared but unused volumes: {sorted(declared - used)}"


def test_published_ports_bind_to_the_configured_address():
    for name, service in services().items():
        for port in service.get("ports", []):
            assert str(port).startswith("${BIND_ADDRESS"), f"{name}: {port} binds to every host"


def test_postgres_init_script_creates_the_three_databases():
    postgres = services()["postgres"]
    mounts = [v for v in postgres["volumes"] if "docker-entrypoint-initdb.d" in v]
    assert mounts and mounts[0].startswith("./deploy/postgres-init.sql:")
    sql = (DEPLOY / "postgres-init.sql").read_text()
    for database in ("airflow", "mlflow", "predictions"):
        assert f"('{database}'," in sql
    for variable in ("AIRFLOW_DB_PASSWORD", "MLFLOW_DB_PASSWORD", "APP_DB_PASSWORD"):
        assert re.search(rf"^\\getenv \w+ {variable}$", sql, re.M), variable
        assert variable in postgres["environment"], f"postgres does not receive {variable}"
    # The URLs in compose use the roles and databases the script creates.
    text = COMPOSE.read_text()
    assert "airflow:${AIRFLOW_DB_PASSWORD" in text and "@postgres:5432/airflow" in text
    assert "mlflow:${MLFLOW_DB_PASSWORD}@postgres:5432/mlflow" in text
    assert "composer_app:${APP_DB_PASSWORD" in text and "@postgres:5432/predictions" in text


def test_mlflow_service_flags():
    command = services()["mlflow"]["command"]
    for flag in ("--serve-artifacts", "--artifacts-destination", "--allowed-hosts", "--workers"):
        assert flag in command
    assert command[command.index("--workers") + 1] == "1"
    assert services()["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"].startswith(
        "postgresql+psycopg://"
    )
    volumes = services()["mlflow"]["volumes"]
    destination = command[command.index("--artifacts-destination") + 1]
    assert any(v == f"mlflow-artifacts:{destination}" for v in volumes)


def test_airflow_uses_the_local_executor_and_mounts_dags_and_plugins():
    for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor"):
        service = services()[name]
        assert service["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert "./dags:/opt/airflow/dags:ro" in service["volumes"]
        assert "./plugins:/opt/airflow/plugins:ro" in service["volumes"]


# --- Dockerfiles --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_pins_its_base_and_runs_as_a_non_root_user(name):
    lines = dockerfile_lines(DOCKERFILES[name])
    bases = [line.split()[1] for line in lines if line.upper().startswith("FROM ")]
    assert bases, "no FROM"
    for base in bases:
        image, _, tag = base.partition(":")
        assert tag and "latest" not in tag, base
        if image == "python":
            assert re.fullmatch(r"3\.11\.\d+-slim-bookworm", tag), base
        elif image == "apache/airflow":
            assert tag == "3.3.2-python3.11", base
        else:
            raise AssertionError(f"unexpected base image {base}")
    users = [line.split()[1] for line in lines if line.upper().startswith("USER ")]
    assert users, "no USER: the image would run as root"
    assert users[-1] not in ("root", "0", "0:0"), f"runs as {users[-1]}"
    for line in lines:
        if line.upper().startswith(("COPY ", "ADD ")):
            assert ".env" not in line.split(), line
            assert not re.search(r"(^|\s)\.(\s|$)", line.split(None, 1)[1]), (
                f"{line}: copies the whole context"
            )


def test_app_image_is_app_only():
    app = DOCKERFILES["app"].read_text()
    app_requirements = requirements(REPO_ROOT / "requirements-app.txt")
    assert not any("airflow" in line.lower() for line in dockerfile_lines(DOCKERFILES["app"]))
    assert not any("airflow" in line.lower() for line in app_requirements)
    assert "COPY dags" not in app and "COPY plugins" not in app
    assert "requirements-app.txt" in app
    assert re.search(r"apt-get install[^\n]*ffmpeg[^\n]*libsndfile1", app)
    # Same pins as requirements.txt, line for line.
    full = requirements(REPO_ROOT / "requirements.txt")
    for line in app_requirements:
        assert line in full, f"requirements-app.txt: {line!r} is not in requirements.txt"
    names = {split_requirement(line)[0] for line in app_requirements}
    assert {"gradio", "mlflow", "librosa", "psycopg[binary]", "sqlalchemy"} <= names


def test_app_code_imports_no_airflow_and_no_cloud_client():
    """What the app image runs loads neither Airflow nor the Cloud Run client."""
    code = (
        "import sys, gradio_app.app; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'airflow' "
        "or m.startswith('google.cloud.run')); print(bad); sys.exit(1 if bad else 0)"
    )
    done = run([sys.executable, "-c", code], timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]


@pytest.mark.parametrize("name", ["app", "airflow"])
def test_images_warm_the_numba_cache_at_build(name):
    text = DOCKERFILES[name].read_text()
    assert "NUMBA_CACHE_DIR=/opt/numba-cache" in text
    warm = [
        line
        for line in dockerfile_lines(DOCKERFILES[name])
        if line.startswith("RUN python -c") and "features.extract" in line
    ]
    assert len(warm) == 1
    # The command itself runs here (cwd = the repository, as /app or /opt/composer-id in the
    # image): a typo would otherwise only show up in a docker build.
    argv = shlex.split(warm[0].removeprefix("RUN "))
    assert argv[0] == "python"
    argv[0] = sys.executable
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = run(argv, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "numba cache warm" in done.stdout


def test_airflow_image_installs_the_runtime_requirements_only():
    text = DOCKERFILES["airflow"].read_text()
    assert "sed '/^# Tooling/,$d' /tmp/requirements.txt" in text
    assert '"apache-airflow==3.3.2"' in text
    runtime = {split_requirement(line)[0] for line in runtime_requirements()}
    assert {"apache-airflow", "mlflow", "evidently", "google-cloud-run"} <= runtime
    assert not runtime & {"pytest", "ruff", "playwright", "python-hcl2", "checkov"}


def test_dockerignore_keeps_secrets_and_local_state_out():
    ignored = {
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for entry in (".env", "var/", ".venv/", ".pytest_cache/", ".ruff_cache/", "**/__pycache__/"):
        assert entry in ignored, f".dockerignore lacks {entry}"


# --- the commands the services run, run here ----------------------------------------------------


def test_mlflow_server_accepts_every_flag_used():
    flags = {a for a in services()["mlflow"]["command"] if a.startswith("--")}
    run_tf = tf_resource("google_cloud_run_v2_service", "mlflow")
    container = run_tf["template"][0]["containers"][0]
    flags |= {a for a in container["args"] if a.startswith("--")}
    assert container["command"] == ["mlflow"] and container["args"][0] == "server"
    done = run([str(BIN / "mlflow"), "server", "--help"], timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    for flag in sorted(flags):
        assert re.search(rf"(^|\s){re.escape(flag)}[\s,/=]", done.stdout), f"mlflow server {flag}"


def test_airflow_subcommands_used_exist(tmp_path):
    """Every airflow command line in compose (services, init, healthchecks) is accepted."""
    commands: list[list[str]] = []
    for name, service in services().items():
        if not name.startswith("airflow-"):
            continue
        command = service["command"]
        if name == "airflow-init":
            commands.append(["db", "migrate"])
        else:
            commands.append(list(command))
        test = (service.get("healthcheck") or {}).get("test", [])
        joined = " ".join(test)
        if "airflow jobs check" in joined:
            commands.append(["jobs", "check", "--job-type", "--hostname"])
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    procs = []
    for command in commands:
        words = [w for w in command if not w.startswith("-") and not w.isdigit()]
        flags = [w for w in command if w.startswith("--")]
        proc = subprocess.Popen(
            [str(BIN / "airflow"), *words, "--help"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        procs.append((words, flags, proc))
    for words, flags, proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"airflow {' '.join(words)} --help: {err[-2000:]}"
        for flag in flags:
            assert flag in out, f"airflow {' '.join(words)} has no {flag}"
    assert {tuple(w for w in c if not w.startswith("-") and not w.isdigit()) for c in commands} >= {
        ("api-server",),
        ("scheduler",),
        ("dag-processor",),
        ("triggerer",),
        ("db", "migrate"),
    }


def test_gradio_app_command_works():
    command = services()["app"]["command"]
    assert command[:3] == ["python", "-m", "gradio_app"]
    done = run([sys.executable, "-m", "gradio_app", "--help"], timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for flag in (a for a in command if a.startswith("--")):
        assert flag in done.stdout, f"python -m gradio_app has no {flag}"
    # The image's default command is the same module.
    assert 'CMD ["python", "-m", "gradio_app"]' in DOCKERFILES["app"].read_text()


# --- terraform ----------------------------------------------------------------------------------


def test_every_tf_file_parses():
    assert {"versions.tf", "variables.tf", "outputs.tf", "main.tf"} <= set(tf_files())
    for name, doc in tf_files().items():
        assert doc, f"{name} parsed to nothing"


def test_providers_and_terraform_are_pinned():
    (settings,) = tf_blocks("terraform")
    assert settings["required_version"].startswith(">=")
    providers = settings["required_providers"][0]
    assert set(providers) >= {"google", "random"}
    for name, spec in providers.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", spec["version"]), f"{name}: {spec['version']}"


def test_variables_are_described_validated_declared_and_used():
    declared = tf_variables()
    text = tf_text_without_comments()
    used = set(re.findall(r"\bvar\.([A-Za-z_][A-Za-z0-9_]*)", text))
    assert used <= set(declared), f"undeclared: {sorted(used - set(declared))}"
    assert set(declared) <= used, f"declared but unused: {sorted(set(declared) - used)}"
    for name, spec in declared.items():
        assert len(spec.get("description", "")) > 10, f"var.{name} has no description"
        if spec.get("type") != "bool":
            assert spec.get("validation"), f"var.{name} has no validation"
    assert declared["app_public"]["default"] is False
    assert declared["mlflow_ingress"]["default"] == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    assert re.fullmatch(
        r"composer-3-airflow-3\.\d+\.\d+(-build\.\d+)?",
        declared["composer_image_version"]["default"],
    )


def test_outputs_expose_urls_and_buckets_but_no_secret():
    outputs = {name: spec for block in tf_blocks("output") for name, spec in block.items()}
    assert {"app_url", "mlflow_url", "composer_airflow_uri", "buckets"} <= set(outputs)
    for name, spec in outputs.items():
        assert spec.get("description"), f"output {name} has no description"
        value = json.dumps(spec["value"])
        assert "random_password" not in value and "secret_data" not in value, name
        assert "secret_version" not in value, name


def test_cloud_run_services():
    app = tf_resource("google_cloud_run_v2_service", "app")
    template = app["template"][0]
    assert template["session_affinity"] is True
    assert template["scaling"][0]["min_instance_count"] == "${var.app_min_instances}"
    assert template["scaling"][0]["max_instance_count"] == "${var.app_max_instances}"
    public = tf_resource("google_cloud_run_v2_service_iam_member", "app_public")
    assert public["member"] == "allUsers"
    assert public["count"] == "${var.app_public ? 1 : 0}"

    mlflow = tf_resource("google_cloud_run_v2_service", "mlflow")
    assert mlflow["ingress"] == "${var.mlflow_ingress}"
    assert mlflow["template"][0]["volumes"][0]["cloud_sql_instance"]
    args = mlflow["template"][0]["containers"][0]["args"]
    assert "--serve-artifacts" in args
    assert args[args.index("--artifacts-destination") + 1].startswith("gs://")
    invokers = tf_resource("google_cloud_run_v2_service_iam_member", "mlflow_invokers")
    assert invokers["for_each"] == '${toset(["app", "composer"])}'
    assert invokers["role"] == "roles/run.invoker"
    # Only these bindings grant run.invoker, and only the app's may be allUsers.
    text = tf_text_without_comments()
    assert text.count('"roles/run.invoker"') == 2
    assert text.count('"allUsers"') == 1
    assert "allAuthenticatedUsers" not in text
    # No secret in plain env: the password arrives through Secret Manager.
    for service in (app, mlflow):
        for env in service["template"][0]["containers"][0]["env"]:
            if "PASSWORD" in env["name"]:
                assert "value_source" in env and "value" not in env, env["name"]


def test_cloud_sql_is_private_backed_up_and_protected():
    sql = tf_resource("google_sql_database_instance", "main")
    settings = sql["settings"][0]
    ip = settings["ip_configuration"][0]
    assert ip["ipv4_enabled"] is False
    assert "authorized_networks" not in ip
    assert ip["private_network"]
    assert settings["backup_configuration"][0]["enabled"] is True
    assert settings["backup_configuration"][0]["point_in_time_recovery_enabled"] is True
    assert sql["deletion_protection"] == "${var.deletion_protection}"
    assert tf_variables()["deletion_protection"]["default"] is True
    secret = tf_resource("google_secret_manager_secret_version", "db_password")
    assert secret["secret_data"] == "${random_password.db.result}"


def test_buckets_are_private_uniform_and_versioned():
    for name in ("buckets", "access_logs"):
        bucket = tf_resource("google_storage_bucket", name)
        assert bucket["uniform_bucket_level_access"] is True, name
        assert bucket["public_access_prevention"] == "enforced", name
        assert bucket["versioning"][0]["enabled"] is True, name
    locals_ = {k: v for block in tf_blocks("locals") for k, v in block.items()}
    assert set(locals_["buckets"]) == {"artifacts", "data", "reports"}


def test_composer_environment():
    env = tf_resource("google_composer_environment", "main")
    software = env["config"][0]["software_config"][0]
    assert software["image_version"] == "${var.composer_image_version}"
    variables = software["env_variables"]
    for key in ("COMPOSER_MLFLOW_TRACKING_URI", "COMPOSER_DATABASE_URL", "COMPOSER_DEPLOY_TARGET"):
        assert key in variables
    assert "PASSWORD" not in json.dumps(
        {k: v for k, v in variables.items() if k != "COMPOSER_DATABASE_PASSWORD_SECRET"}
    )
    # Composer refuses Airflow settings as variables and its own reserved names.
    reserved = {
        "COMPOSER_AGENT_BUILD_SERVICE_ACCOUNT", "COMPOSER_ENVIRONMENT", "COMPOSER_ENVIRONMENT_SIZE",
        "COMPOSER_GKE_LOCATION", "COMPOSER_GKE_NAME", "COMPOSER_GKE_ZONE", "COMPOSER_LOCATION",
        "COMPOSER_OPERATION_UUID", "COMPOSER_PYTHON_VERSION", "COMPOSER_VERSION", "GCS_BUCKET",
        "DAGS_FOLDER", "GCP_PROJECT", "PATH", "AIRFLOW_HOME",
    }  # fmt: skip
    for key in variables:
        assert re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", key) and key not in reserved, key
        assert not re.fullmatch(r"AIRFLOW__[A-Z0-9_]+__[A-Z0-9_]+", key), key
    node = env["config"][0]["node_config"][0]
    assert node["service_account"] == '${google_service_account.sa["composer"].email}'


APP_ONLY = ("gradio", "gradio_client", "fastapi", "uvicorn", "starlette")  # pyproject's "app"


def test_composer_pypi_packages_follow_requirements():
    locals_ = {k: v for block in tf_blocks("locals") for k, v in block.items()}
    packages = {k.lower(): v for k, v in locals_["composer_pypi_packages"].items()}
    wanted = {}
    for line in runtime_requirements():
        name, spec, marker = split_requirement(line)
        if name.startswith("apache-airflow") or name in APP_ONLY:
            continue  # Composer provides Airflow; only the app needs Gradio and its server
        if marker and "3.12" in marker and ">=" in marker:
            continue  # Composer 3 runs Python 3.11: the "< 3.12" line applies
        wanted[name] = spec
    assert packages == wanted


def test_image_names_match_between_deploy_script_and_terraform():
    script = (REPO_ROOT / "scripts" / "deploy.sh").read_text()
    assert "for image in app mlflow; do" in script
    locals_ = {k: v for block in tf_blocks("locals") for k, v in block.items()}
    assert locals_["images"]["app"].endswith("/app:${var.image_tag}")
    assert locals_["images"]["mlflow"].endswith("/mlflow:${var.image_tag}")
    assert "deploy/${image}.Dockerfile" in script


@cache
def checkov_report() -> dict:
    checkov = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
    if not checkov.exists():
        made = run(["make", "-s", ".venv-checkov/.installed"], timeout=900)
        assert made.returncode == 0, f"installing checkov failed:\n{made.stderr[-3000:]}"
    done = run(
        [
            str(checkov),
            "-d",
            "terraform",
            "--framework",
            "terraform",
            "--quiet",
            "--compact",
            "-o",
            "json",
        ],
        timeout=600,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": ""},
    )
    assert done.stdout.strip(), done.stderr[-3000:]
    report = json.loads(done.stdout)
    return report[0] if isinstance(report, list) else report


def test_checkov_finds_nothing_unexplained():
    """No severities without a Prisma key, so every failed check counts: fix it or skip it
    inline (#checkov:skip=CKV_...: reason) with a written reason."""
    report = checkov_report()
    summary = report["summary"]
    assert summary["parsing_errors"] == 0, summary
    assert summary["resource_count"] >= 30, summary
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
        for c in report["results"].get("failed_checks", [])
    ]
    assert summary["failed"] == 0 and not failed, "\n".join(failed)
    assert summary["passed"] > 0
    skips = re.findall(r"#checkov:skip=(CKV2?_[A-Z]+_\d+):(.*)", tf_text_with_comments())
    assert len(skips) == summary["skipped"], (skips, summary)
    for check, reason in skips:
        assert len(reason.strip()) >= 40, f"{check}: the skip needs a real reason"


def tf_text_with_comments() -> str:
    return "\n".join(p.read_text() for p in sorted(TERRAFORM.glob("*.tf")))


# --- scripts/deploy.sh and the Makefile ---------------------------------------------------------


def test_deploy_script_is_strict_and_names_every_missing_tool(tmp_path):
    script = REPO_ROOT / "scripts" / "deploy.sh"
    text = script.read_text()
    assert "set -euo pipefail" in text
    assert run(["bash", "-n", str(script)]).returncode == 0
    # A PATH with nothing but dirname: every tool is missing and each one is named.
    (tmp_path / "dirname").symlink_to("/usr/bin/dirname")
    done = run(["/bin/bash", str(script)], env={"PATH": str(tmp_path), "HOME": str(tmp_path)})
    assert done.returncode == 1
    for tool in ("docker", "gcloud", "terraform", "git"):
        assert re.search(rf"^\s+- {tool}\b.*https?://|^\s+- {tool}\b", done.stderr, re.M), (
            f"{tool} not reported: {done.stderr}"
        )
    assert "Install" in done.stderr
    for step in ("terraform init", "docker build", "docker push", "gcloud storage rsync"):
        assert step.split()[0] in text and step.split()[1] in text, step


def makefile_targets() -> dict[str, str]:
    targets = {}
    for line in (REPO_ROOT / "Makefile").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_./-]+):(?!=)(.*)$", line)
        if match:
            targets[match.group(1)] = match.group(2)
    return targets


def test_makefile_has_the_deploy_targets():
    targets = makefile_targets()
    text = (REPO_ROOT / "Makefile").read_text()
    phony = next(line for line in text.splitlines() if line.startswith(".PHONY:")).split()[1:]
    for name in ("deploy", "deploy-check"):
        assert name in targets and name in phony, name
        assert "## " in targets[name], f"{name} has no help text"
    assert "scripts/deploy.sh" in text
    assert re.search(r"^CHECKOV_VERSION := \d+\.\d+\.\d+$", text, re.M)


def test_make_targets_named_in_the_docs_exist():
    docs = [DEPLOY / "README.md", TERRAFORM / "README.md", REPO_ROOT / "README.md"]
    targets = makefile_targets()
    named = set()
    for doc in docs:
        if doc.exists():
            named |= set(re.findall(r"`make ([a-z][a-z0-9-]*)", doc.read_text()))
            named |= set(re.findall(r"^\s*(?:\$ )?make ([a-z][a-z0-9-]*)", doc.read_text(), re.M))
    assert {"deploy", "deploy-check"} <= named, "the deploy docs should name their targets"
    missing = sorted(n for n in named if n not in targets)
    assert not missing, f"make targets named in docs but not in the Makefile: {missing}"
