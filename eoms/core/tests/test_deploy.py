"""The deployment files in deploy/ parse and hold together.

No Docker engine or cluster runs here, so these tests read the files (PyYAML and the standard
library only) and check what a broken deployment would get wrong: probes, resources, non-root,
selectors that match, kustomization listing, no committed secrets, the compose wiring and the image.
"""

import json
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
K8S = DEPLOY / "k8s" / "base"
WEB_LABELS = {"app.kubernetes.io/name": "eoms", "app.kubernetes.io/component": "web"}
WORKER_LABELS = {"app.kubernetes.io/name": "eoms", "app.kubernetes.io/component": "worker"}
BEAT_LABELS = {"app.kubernetes.io/name": "eoms", "app.kubernetes.io/component": "beat"}
METRICS_PORT = 9102  # `--metrics-port` of the relay and the workers (eoms.core.process_metrics)
KEYS = (
    "EOMS_SECRET_KEY",
    "EOMS_AUDIT_KEY",
    "EOMS_FIELD_KEYS",
    "EOMS_BLIND_INDEX_KEY",
    "EOMS_JWT_KEYS",
    "EOMS_METRICS_TOKEN",
)
SECRET_KEYS = {*KEYS, "DATABASE_URL", "REDIS_URL", "BROKER_URL"}


def _docs(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


@pytest.fixture(scope="module")
def k8s() -> dict[tuple[str, str], dict]:
    """Every object of the kustomization, by (kind, name)."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    objects = {}
    for name in kustomization["resources"]:
        for doc in _docs(K8S / name):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in objects, f"{key} defined twice"
            objects[key] = doc
    return objects


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def _pod_specs(objects):
    for (kind, name), obj in objects.items():
        if kind in {"Deployment", "Job"}:
            yield kind, name, obj["spec"]["template"]["spec"]
        elif kind == "CronJob":
            yield kind, name, obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def _containers(pod_spec):
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def test_every_yaml_file_in_deploy_parses():
    files = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
    assert {f.relative_to(DEPLOY).as_posix() for f in files} >= {
        "docker-compose.yml",
        "k8s/base/kustomization.yaml",
        "k8s/base/web-deployment.yaml",
        "k8s/base/tick-cronjob.yaml",
        "k8s/base/worker-deployment.yaml",
        "k8s/base/beat-deployment.yaml",
        "k8s/base/secret.example.yaml",
    }
    for path in files:
        assert _docs(path), f"{path} is empty"


def test_kustomization_lists_exactly_the_manifests_present_except_the_example_secret():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert sorted(kustomization["resources"]) == sorted(present)
    assert len(kustomization["resources"]) == len(set(kustomization["resources"]))
    assert "secret.example.yaml" not in kustomization["resources"]


def test_the_base_holds_the_expected_objects(k8s):
    assert sorted(k8s) == [
        ("ConfigMap", "eoms-config"),
        ("CronJob", "eoms-tick"),
        ("Deployment", "eoms-beat"),
        ("Deployment", "eoms-relay"),
        ("Deployment", "eoms-web"),
        ("Deployment", "eoms-worker"),
        ("HorizontalPodAutoscaler", "eoms-web"),
        ("HorizontalPodAutoscaler", "eoms-worker"),
        ("Job", "eoms-migrate"),
        ("PersistentVolumeClaim", "eoms-audit"),
        ("PersistentVolumeClaim", "eoms-media"),
        ("PodDisruptionBudget", "eoms-web"),
        ("PodDisruptionBudget", "eoms-worker"),
        ("Service", "eoms-web"),
    ]
    for obj in k8s.values():
        assert "namespace" not in obj["metadata"], "the base is namespace-less; overlays set it"


def test_http_deployments_probe_healthz_for_liveness_and_readyz_for_readiness(k8s):
    http_containers = 0
    for (kind, name), obj in k8s.items():
        if kind != "Deployment":
            continue
        for container in obj["spec"]["template"]["spec"]["containers"]:
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            if "http" not in ports:
                continue
            http_containers += 1
            for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                get = container[probe]["httpGet"]
                assert get["path"] == path, f"{name}/{container['name']} {probe}"
                port = ports.get(get["port"], get["port"])
                assert port == 8000, f"{name}/{container['name']} {probe} probes port {get['port']}"
                assert {"name": "Host", "value": "localhost"} in get["httpHeaders"]
    assert http_containers == 1


def test_metrics_ports_serve_the_counters_and_are_not_probed(k8s):
    """The relay and the workers serve their counters with --metrics-port on a port named "metrics";
    it answers only with the bearer token, which a kubelet probe cannot send, so it is not probed."""
    served = []
    for (kind, name), obj in k8s.items():
        if kind != "Deployment":
            continue
        for container in obj["spec"]["template"]["spec"]["containers"]:
            ports = container.get("ports", [])
            if not any(p["name"] == "metrics" for p in ports):
                continue
            served.append(name)
            assert ports == [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}], name
            command = container["command"]
            assert command[command.index("--metrics-port") + 1] == str(METRICS_PORT), name
            assert not {"livenessProbe", "readinessProbe", "startupProbe"} & set(container), name
    assert sorted(served) == ["eoms-relay", "eoms-worker"]


def test_probe_host_is_an_allowed_host(k8s):
    allowed = k8s[("ConfigMap", "eoms-config")]["data"]["EOMS_ALLOWED_HOSTS"].split(",")
    assert "localhost" in allowed


def test_web_runs_eoms_serve_on_8000_and_waits_for_migrations(k8s):
    spec = k8s[("Deployment", "eoms-web")]["spec"]
    assert "replicas" not in spec, "the HPA owns the replica count"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    (web,) = pod["containers"]
    assert web["command"] == ["eoms", "serve", "--bind", "0.0.0.0:8000"]
    assert web["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    (init,) = pod["initContainers"]
    assert "eoms migrate --check" in init["command"][-1]


def test_every_container_has_requests_limits_and_a_locked_down_security_context(k8s):
    seen = []
    for kind, name, pod in _pod_specs(k8s):
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        tmp_volumes = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        for container in _containers(pod):
            seen.append(f"{kind}/{name}/{container['name']}")
            resources = container["resources"]
            assert set(resources["requests"]) == {"cpu", "memory"}, container["name"]
            assert set(resources["limits"]) == {"cpu", "memory"}, container["name"]
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert len(tmp) == 1 and tmp[0]["name"] in tmp_volumes, f"{name}/{container['name']} needs /tmp"
    assert sorted(seen) == [
        "CronJob/eoms-tick/tick",
        "Deployment/eoms-beat/beat",
        "Deployment/eoms-relay/relay",
        "Deployment/eoms-web/wait-for-migrations",
        "Deployment/eoms-web/web",
        "Deployment/eoms-worker/wait-for-migrations",
        "Deployment/eoms-worker/worker",
        "Job/eoms-migrate/migrate",
    ]


def test_web_keeps_attachments_on_the_shared_claim(k8s):
    pod = k8s[("Deployment", "eoms-web")]["spec"]["template"]["spec"]
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v
    }
    assert claims == {"media": "eoms-media", "audit": "eoms-audit"}
    (web,) = pod["containers"]
    assert {"name": "media", "mountPath": "/data/media"} in web["volumeMounts"]
    assert k8s[("ConfigMap", "eoms-config")]["data"]["EOMS_MEDIA_DIR"] == "/data/media"
    assert k8s[("PersistentVolumeClaim", "eoms-media")]["spec"]["accessModes"] == ["ReadWriteMany"]


def test_the_audit_checkpoints_live_on_a_shared_claim_wherever_the_job_runs_or_verify_reads(k8s):
    assert k8s[("ConfigMap", "eoms-config")]["data"]["EOMS_AUDIT_CHECKPOINT_FILE"] == "/data/audit/checkpoints.jsonl"
    assert k8s[("PersistentVolumeClaim", "eoms-audit")]["spec"]["accessModes"] == ["ReadWriteMany"]
    mounted = []
    for kind, name, pod in _pod_specs(k8s):
        claims = {
            v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v
        }
        for container in pod["containers"]:
            if {"name": "audit", "mountPath": "/data/audit"} in container["volumeMounts"]:
                assert claims["audit"] == "eoms-audit"
                mounted.append(f"{kind}/{name}/{container['name']}")
    # The worker, relay and tick run the periodic job that writes them; the web pods run `eoms audit verify`.
    assert sorted(mounted) == [
        "CronJob/eoms-tick/tick",
        "Deployment/eoms-relay/relay",
        "Deployment/eoms-web/web",
        "Deployment/eoms-worker/worker",
    ]


@pytest.mark.parametrize("name", ["eoms-web", "eoms-worker"])
def test_hpa_scales_the_web_and_worker_deployments_on_cpu(k8s, name):
    hpa = k8s[("HorizontalPodAutoscaler", name)]
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == ("apps/v1", "Deployment", name)
    assert ("Deployment", target["name"]) in k8s
    assert "replicas" not in k8s[("Deployment", name)]["spec"], "the HPA owns the replica count"
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    # Utilization is measured against the request: every container of the pod must have one.
    for container in k8s[("Deployment", name)]["spec"]["template"]["spec"]["containers"]:
        assert container["resources"]["requests"]["cpu"], container["name"]
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300


def test_pdb_service_and_deployment_select_the_web_pods(k8s):
    web = k8s[("Deployment", "eoms-web")]
    pod_labels = web["spec"]["template"]["metadata"]["labels"]
    assert pod_labels == WEB_LABELS
    assert web["spec"]["selector"]["matchLabels"] == WEB_LABELS
    pdb = k8s[("PodDisruptionBudget", "eoms-web")]
    assert pdb["spec"]["selector"]["matchLabels"] == WEB_LABELS
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["minAvailable"] < k8s[("HorizontalPodAutoscaler", "eoms-web")]["spec"]["minReplicas"]
    service = k8s[("Service", "eoms-web")]
    assert service["spec"]["selector"] == WEB_LABELS
    (port,) = service["spec"]["ports"]
    container_ports = {p["name"] for p in web["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert port["targetPort"] in container_ports
    # The other pods must not be picked up by the web selectors.
    for other in ("eoms-relay", "eoms-worker", "eoms-beat"):
        labels = k8s[("Deployment", other)]["spec"]["template"]["metadata"]["labels"]
        assert not WEB_LABELS.items() <= labels.items(), other


def test_pdb_and_deployment_select_the_worker_pods_only(k8s):
    worker = k8s[("Deployment", "eoms-worker")]
    assert worker["spec"]["template"]["metadata"]["labels"] == WORKER_LABELS
    assert worker["spec"]["selector"]["matchLabels"] == WORKER_LABELS
    pdb = k8s[("PodDisruptionBudget", "eoms-worker")]
    assert pdb["spec"]["selector"]["matchLabels"] == WORKER_LABELS
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["minAvailable"] < k8s[("HorizontalPodAutoscaler", "eoms-worker")]["spec"]["minReplicas"]
    for (kind, name), obj in k8s.items():
        if kind == "Deployment" and name != "eoms-worker":
            labels = obj["spec"]["template"]["metadata"]["labels"]
            assert not WORKER_LABELS.items() <= labels.items(), name
    assert ("PodDisruptionBudget", "eoms-beat") not in k8s, "one beat: a PDB would block every drain"


def test_worker_consumes_with_a_grace_period_and_waits_for_migrations(k8s):
    spec = k8s[("Deployment", "eoms-worker")]["spec"]
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= 30, "the message in hand is finished on SIGTERM"
    (worker,) = pod["containers"]
    assert worker["command"] == ["eoms", "worker", "--metrics-port", str(METRICS_PORT)]
    (init,) = pod["initContainers"]
    assert "eoms migrate --check" in init["command"][-1]
    (web_init,) = k8s[("Deployment", "eoms-web")]["spec"]["template"]["spec"]["initContainers"]
    assert init == web_init
    assert pod["securityContext"] == k8s[("Deployment", "eoms-relay")]["spec"]["template"]["spec"]["securityContext"]


def test_one_beat_that_never_overlaps(k8s):
    beat = k8s[("Deployment", "eoms-beat")]["spec"]
    assert beat["replicas"] == 1
    assert beat["strategy"] == {"type": "Recreate"}
    assert beat["selector"]["matchLabels"] == BEAT_LABELS
    assert beat["template"]["metadata"]["labels"] == BEAT_LABELS
    pod = beat["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= 30
    (container,) = pod["containers"]
    assert container["command"] == ["eoms", "beat"]
    assert "ports" not in container
    assert not {"livenessProbe", "readinessProbe", "startupProbe"} & set(container)
    assert not [
        hpa
        for (kind, _n), hpa in k8s.items()
        if kind == "HorizontalPodAutoscaler" and hpa["spec"]["scaleTargetRef"]["name"] == "eoms-beat"
    ]
    (relay,) = k8s[("Deployment", "eoms-relay")]["spec"]["template"]["spec"]["containers"]
    for key in ("image", "envFrom", "env", "securityContext"):
        assert container[key] == relay[key], key


def test_one_relay_that_never_overlaps_and_a_migration_job(k8s):
    relay = k8s[("Deployment", "eoms-relay")]["spec"]
    assert relay["replicas"] == 1
    assert relay["strategy"] == {"type": "Recreate"}
    assert relay["template"]["spec"]["terminationGracePeriodSeconds"] >= 30
    (container,) = relay["template"]["spec"]["containers"]
    assert container["command"] == ["eoms", "relay", "--metrics-port", str(METRICS_PORT)]
    job = k8s[("Job", "eoms-migrate")]["spec"]
    assert job["template"]["spec"]["restartPolicy"] == "Never"
    (migrate,) = job["template"]["spec"]["containers"]
    assert migrate["command"] == ["eoms", "migrate", "--noinput"]


def test_tick_runs_every_minute_one_at_a_time_like_the_relay(k8s):
    cron = k8s[("CronJob", "eoms-tick")]
    assert cron["apiVersion"] == "batch/v1"
    spec = cron["spec"]
    assert spec["schedule"] == "* * * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert 0 < spec["startingDeadlineSeconds"] < 60, "a missed minute is skipped, not run late"
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0, "the next minute's tick is the retry"
    assert job["activeDeadlineSeconds"] > 0
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (tick,) = pod["containers"]
    assert tick["command"] == ["eoms", "tick"]
    assert "ports" not in tick
    assert not {"livenessProbe", "readinessProbe", "startupProbe"} & set(tick)
    (relay,) = k8s[("Deployment", "eoms-relay")]["spec"]["template"]["spec"]["containers"]
    for key in ("image", "envFrom", "env", "securityContext"):
        assert tick[key] == relay[key], key
    assert pod["securityContext"] == k8s[("Deployment", "eoms-relay")]["spec"]["template"]["spec"]["securityContext"]
    labels = job["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "tick"
    assert not WEB_LABELS.items() <= labels.items()


def test_config_and_secrets_come_from_the_configmap_and_the_named_secret(k8s):
    config = k8s[("ConfigMap", "eoms-config")]["data"]
    assert config["EOMS_MODE"] == "production"
    assert config["EOMS_RELAY_IN_PROCESS"] == "false"
    assert not SECRET_KEYS & set(config), "secrets do not belong in the ConfigMap"
    for _kind, _name, pod in _pod_specs(k8s):
        for container in _containers(pod):
            assert container["envFrom"] == [{"configMapRef": {"name": "eoms-config"}}]
            refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
            assert set(refs) == SECRET_KEYS, container["name"]
            for env_name, ref in refs.items():
                assert ref == {"name": "eoms-secrets", "key": env_name}
            assert all("value" not in e for e in container["env"]), "no literal values beside secretKeyRef"


def test_no_secret_with_real_values_is_committed():
    secrets = []
    for path in sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")]):
        for doc in _docs(path):
            if isinstance(doc, dict) and doc.get("kind") == "Secret":
                secrets.append((path.relative_to(DEPLOY).as_posix(), doc))
    assert [p for p, _ in secrets] == ["k8s/base/secret.example.yaml"]
    ((_, example),) = secrets
    assert "data" not in example
    values = example["stringData"]
    assert set(values) == SECRET_KEYS
    for key in KEYS:
        assert values[key] == "REPLACE_ME"
    for key in ("DATABASE_URL", "REDIS_URL", "BROKER_URL"):
        assert urlsplit(values[key]).password in (None, "REPLACE_ME"), key


def test_compose_builds_one_image_and_uses_pinned_images(compose):
    services = compose["services"]
    assert sorted(services) == ["beat", "db", "migrate", "nginx", "rabbitmq", "redis", "relay", "web", "worker"]
    images = {name: s["image"] for name, s in services.items()}
    assert images["db"] == "postgres:16"
    assert images["redis"] == "redis:7"
    assert images["rabbitmq"] == "rabbitmq:3-management"
    for name, service in services.items():
        if "build" in service:
            context = (DEPLOY / service["build"]["context"]).resolve()
            assert context.is_dir(), name
            assert (context / service["build"]["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
            assert (context / "pyproject.toml").is_file()
            assert service["image"] == "eoms:${EOMS_TAG:-latest}"
        else:
            assert re.fullmatch(r"[a-z0-9./-]+:[0-9][\w.-]*(-management)?", service["image"]), name
    assert {n for n, s in services.items() if "build" in s} == {"migrate", "web", "relay", "worker", "beat"}


def test_compose_web_waits_for_migrations_and_a_healthy_database(compose):
    services = compose["services"]
    web = services["web"]
    assert web["command"] == ["eoms", "serve", "--bind", "0.0.0.0:8000"]
    assert "/healthz" in " ".join(web["healthcheck"]["test"])
    assert web["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert web["depends_on"]["db"] == {"condition": "service_healthy"}
    assert services["migrate"]["command"] == ["eoms", "migrate", "--noinput"]
    assert services["migrate"]["restart"] == "no"
    assert services["relay"]["command"] == ["eoms", "relay", "--metrics-port", str(METRICS_PORT)]
    for name in ("relay", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
        assert services[name]["depends_on"]["rabbitmq"] == {"condition": "service_healthy"}, name
    for name in ("db", "redis", "rabbitmq"):
        assert services[name]["healthcheck"]["test"], name
        for dependent in ("web", "relay", "worker", "beat", "migrate"):
            condition = services[dependent]["depends_on"].get(name)
            assert condition in (None, {"condition": "service_healthy"})
    assert services["db"]["volumes"] == ["postgres-data:/var/lib/postgresql/data"]
    assert services["nginx"]["depends_on"]["web"] == {"condition": "service_healthy"}
    for volume in ("postgres-data", "rabbitmq-data", "eoms-media", "eoms-audit"):
        assert volume in compose["volumes"]
    for name in ("web", "relay", "worker", "beat", "migrate"):
        assert "eoms-audit:/data/audit" in services[name]["volumes"], name
        assert services[name]["environment"]["EOMS_AUDIT_CHECKPOINT_FILE"] == "/data/audit/checkpoints.jsonl"


def _seconds(duration: str) -> int:
    """A compose duration ("1m30s", "40s") in seconds."""
    assert re.fullmatch(r"(\d+m)?(\d+s)?", duration) and duration, duration
    minutes, seconds = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration).groups()
    return int(minutes or 0) * 60 + int(seconds or 0)


def test_compose_runs_a_worker_and_exactly_one_beat(compose):
    services = compose["services"]
    worker, beat = services["worker"], services["beat"]
    assert worker["command"] == ["eoms", "worker", "--metrics-port", str(METRICS_PORT)]
    assert worker["expose"] == services["relay"]["expose"] == [str(METRICS_PORT)]
    assert _seconds(worker["stop_grace_period"]) >= 30, "the message in hand is finished on SIGTERM"
    assert worker["depends_on"]["db"] == {"condition": "service_healthy"}
    assert "deploy" not in worker, "workers scale with --scale worker=N"
    assert beat["command"] == ["eoms", "beat"]
    assert beat["deploy"] == {"replicas": 1}
    assert "expose" not in beat and "ports" not in beat
    assert _seconds(beat["stop_grace_period"]) >= 30
    for name in ("relay", "worker", "beat"):
        assert "ports" not in services[name], f"{name}'s counters are for Prometheus, not published"
        assert services[name]["environment"] == services["web"]["environment"], name
        assert services[name]["read_only"] is True and services[name]["security_opt"] == ["no-new-privileges:true"]


def test_compose_takes_secrets_only_from_the_environment(compose):
    required = re.compile(r"\$\{(\w+):\?[^}]+\}")
    for name in ("migrate", "web", "relay", "worker", "beat"):
        env = compose["services"][name]["environment"]
        assert env["EOMS_MODE"] == "production"
        assert env["EOMS_RELAY_IN_PROCESS"] == "false"
        for key in KEYS:
            assert required.fullmatch(env[key]).group(1) == key
        for key in ("DATABASE_URL", "BROKER_URL"):
            (password,) = re.findall(r"^\w+://eoms:(.+?)@[\w.-]+:\d+/", env[key])
            assert required.fullmatch(password), f"{key} carries a literal password"
        # (not urlsplit: the "?" of the ${VAR:?message} in the password would start a query)
        assert re.findall(r"^amqp://eoms:.+@([\w.-]+:\d+)/", env["BROKER_URL"]) == ["rabbitmq:5672"]
    assert "rabbitmq" in compose["services"]
    assert required.fullmatch(compose["services"]["db"]["environment"]["POSTGRES_PASSWORD"])
    assert required.fullmatch(compose["services"]["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_PASS"])


def _nginx() -> str:
    return (DEPLOY / "nginx" / "eoms.conf").read_text()


def test_nginx_forwards_to_web_with_the_client_address_and_the_upload_limit(compose, k8s):
    conf = _nginx()
    mount = compose["services"]["nginx"]["volumes"][0].split(":")
    assert (DEPLOY / mount[0]).resolve() == DEPLOY / "nginx" / "eoms.conf"
    assert mount[1] == "/etc/nginx/conf.d/default.conf"
    assert "set $eoms_web http://web:8000;" in conf
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in conf
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in conf
    (limit,) = re.findall(r"client_max_body_size (\d+)m;", conf)
    assert int(limit) == 20
    assert compose["services"]["web"]["environment"]["EOMS_ATTACHMENT_MAX_MB"] == limit
    assert k8s[("ConfigMap", "eoms-config")]["data"]["EOMS_ATTACHMENT_MAX_MB"] == limit
    static = conf[conf.index("location /static/") :]
    static = static[: static.index("}")]
    assert "expires" in static and 'Cache-Control "public"' in static
    assert "location = /metrics {\n        return 404;" in conf
    assert conf.count("{") == conf.count("}")


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines if line and not line.startswith("#")
    ]


def test_dockerfile_is_multi_stage_non_root_and_serves_with_eoms_serve():
    instructions = _dockerfile()
    froms = [args for op, args in instructions if op == "FROM"]
    assert len(froms) >= 2
    assert froms[-1] == "python:3.11-slim AS runtime"
    assert any(op == "COPY" and args.startswith("--from=builder /opt/eoms") for op, args in instructions)
    runs = " ".join(args for op, args in instructions if op == "RUN")
    assert 'pip install ".[postgres]"' in runs
    users = [args for op, args in instructions if op == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert ("EXPOSE", "8000") in instructions
    (healthcheck,) = [args for op, args in instructions if op == "HEALTHCHECK"]
    assert "/healthz" in healthcheck
    (cmd,) = [args for op, args in instructions if op == "CMD"]
    assert json.loads(cmd) == ["eoms", "serve", "--bind", "0.0.0.0:8000"]
    assert not [args for op, args in instructions if op == "ENTRYPOINT"]
    assert "migrate" not in cmd
    env = " ".join(args for op, args in instructions if op == "ENV")
    assert "EOMS_MODE=production" in shlex.split(env)
    # The runtime stage starts from a clean base: nothing of the build tools but the venv.
    runtime = instructions[[i for i, (op, _) in enumerate(instructions) if op == "FROM"][-1] :]
    assert [args for op, args in runtime if op == "COPY"] == ["--from=builder /opt/eoms /opt/eoms"]


def test_readme_says_the_files_are_not_run_here():
    readme = (DEPLOY / "README.md").read_text()
    assert "cannot run here" in readme
    assert "eoms/core/tests/test_deploy.py" in readme


# ------------------------------------------------- the top-level README, the operator's reference

README = DEPLOY.parent / "README.md"
CODE = DEPLOY.parent / "eoms"
# Read by the tests only, and documented under the table.
TEST_ONLY_VARIABLES = {"EOMS_CHROMIUM", "EOMS_TEST_DB_SUFFIX"}


def _readme_section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_readme_configuration_table_lists_every_variable_the_code_reads():
    read = set()
    for path in CODE.rglob("*.py"):
        if "tests" not in path.parts and "testing" not in path.parts:
            read |= set(re.findall(r"\b(EOMS_[A-Z][A-Z0-9_]*[A-Z0-9])\b", path.read_text(encoding="utf-8")))
    settings = (CODE / "settings.py").read_text(encoding="utf-8")
    read |= set(re.findall(r"""env(?:\.\w+)?\(\s*["']([A-Z][A-Z0-9_]*)["']""", settings))
    assert {"BROKER_URL", "DATABASE_URL", "REDIS_URL", "EOMS_LOG_FORMAT", "EOMS_BROKER_MAX_ATTEMPTS"} <= read
    table = set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", _readme_section("Configuration"), re.MULTILINE))
    assert sorted(read - TEST_ONLY_VARIABLES - table) == []
    assert sorted(table - read) == [], "documented but read nowhere"


def _command_parser(name: str):
    from django.core.management import get_commands, load_command_class

    return load_command_class(get_commands()[name], name).create_parser("eoms", name)


def test_readme_commands_exist_with_the_options_they_show():
    rows = re.findall(r"^\| `eoms ([^`]+)` \|", _readme_section("Operator commands"), re.MULTILINE)
    shown = {row.split()[0] for row in rows}
    assert {"run", "relay", "worker", "beat", "tick", "outbox", "serve"} <= shown
    assert "outbox status" in [" ".join(row.split()[:2]) for row in rows]
    for row in rows:
        name, *rest = row.split()
        parser = _command_parser(name)
        known = {option for action in parser._actions for option in action.option_strings}
        for option in re.findall(r"(--[a-z][a-z0-9-]*)", row):
            assert option in known, f"eoms {name} has no option {option}"
        # Words outside brackets, in lower case, are sub-commands (`outbox status`, `audit verify`).
        words = [w for w in re.sub(r"\[[^\]]*\]", " ", " ".join(rest)).split() if w.islower()]
        if words:
            parser.parse_args(words)  # raises CommandError on an unknown sub-command
