#!/usr/bin/env python3
"""Checks the deployments' task environments against the real `ward` binary.

    check_tasks.py WARD_BIN [FILE ...]     (default: deploy/aws/*.yaml and deploy/compose.yaml)

For every container of every AWS::ECS::TaskDefinition in the CloudFormation templates, and every
ward service in a compose file, it builds the environment the task would get (intrinsic functions
resolved to plausible values, secrets given plausible values, the token keys a real pair from
`ward keys generate`), then:
  1. every variable must be one ward reads: `WARD_<SECTION>__<KEY>` naming a key that
     `ward config` prints (or RUST_LOG / OTEL_*); ward itself silently ignores a variable whose
     section it does not know, so only this step catches `WARD_SERVR__...`;
  2. `ward <command> --check` with exactly that environment (plus PATH, and WARD_CONFIG as the
     image sets it) must exit 0;
  3. its health check and entrypoint must be runnable in deploy/Dockerfile's image (a shell only
     if the image has one, `ward <subcommand>` only if this ward has it).
Templates are checked twice: with the parameters' defaults, and with every option switched on.
A self-test first proves that a misspelt variable is refused, or the check proves nothing.
Run with cfn-lint's venv: the templates are read with cfn-lint's own parser (`cfnlint.decode`).
"""

import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml
from cfnlint.decode import decode

REPO = Path(__file__).resolve().parents[2]
# The image runs with WARD_CONFIG=/etc/ward/config/production.toml (deploy/Dockerfile).
IMAGE_CONFIG = REPO / "config" / "production.toml"
ALLOWED_OTHER = re.compile(r"^(RUST_LOG|OTEL_[A-Z0-9_]+)$")

PSEUDO = {
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "ward-prod",
}
# "Every option on": the values an operator would pass that switch on conditional settings.
OPTIONS_ON = {
    "OtlpEndpoint": "http://otel-collector.ward.internal:4318",
    "KafkaBrokerCount": "4",
    "MultiAz": "false",
    # A real public key (biscuit's one-line form), as an operator passes during a key rotation.
    "TrustedPublicKeys": "ed25519/54e95af44feafdbd0962678366041dec38ac8963320ed61cca78fd9f4b5e2249",
}
# Secret values shaped like the real ones: an RDS-managed password has punctuation, a SCRAM
# password may be all digits (ward must keep it as text).
DB_PASSWORD = "kQ3:x#9%v!Lz_7@w"
SCRAM_PASSWORD = "4815162342"


class Placeholders:
    """Plausible text for the attributes of a stack's resources."""

    @staticmethod
    def get_att(resource, attribute):
        if attribute == "Endpoint.Address":
            return f"{resource.lower()}.c9akciq32.eu-west-1.rds.amazonaws.com"
        if attribute == "SaslScram":
            return ",".join(
                f"b-{n}.ward.x1y2z3.c2.kafka.eu-west-1.amazonaws.com:9096" for n in (1, 2)
            )
        if attribute.endswith("Arn"):
            return f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:{resource}-AbCdEf"
        return f"{resource}-{attribute}".lower()


class Resolver:
    """Evaluates the intrinsic functions of one template for one set of parameter values."""

    def __init__(self, template, overrides):
        self.params = {
            name: str(spec.get("Default", f"{name.lower()}-value"))
            for name, spec in (template.get("Parameters") or {}).items()
        }
        self.params.update({k: v for k, v in overrides.items() if k in self.params})
        self.conditions = template.get("Conditions") or {}
        self.resources = template.get("Resources") or {}

    def ref(self, name):
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.params:
            return self.params[name]
        if name in self.resources:
            kind = self.resources[name]["Type"]
            if kind == "AWS::SecretsManager::Secret":
                return f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:{name}-AbCdEf"
            return f"{name.lower()}-id"
        raise ValueError(f"Ref to unknown {name}")

    def condition(self, name):
        return bool(self.value(self.conditions[name]))

    def value(self, node):
        if isinstance(node, list):
            items = [self.value(item) for item in node]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) != 1:
            return {k: self.value(v) for k, v in node.items()}
        (key, arg), = node.items()
        if key == "Ref":
            return NO_VALUE if arg == "AWS::NoValue" else self.ref(arg)
        if key == "Fn::GetAtt":
            resource, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return Placeholders.get_att(resource, attribute)
        if key == "Fn::Sub":
            text, names = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            return re.sub(r"\$\{([^}!]+)\}", lambda m: self.sub_var(m.group(1), names), text)
        if key == "Fn::Join":
            return arg[0].join(str(self.value(part)) for part in self.value(arg[1]))
        if key == "Fn::Select":
            return self.value(arg[1])[int(self.value(arg[0]))]
        if key == "Fn::If":
            return self.value(arg[1] if self.condition(arg[0]) else arg[2])
        if key == "Fn::Equals":
            return str(self.value(arg[0])) == str(self.value(arg[1]))
        if key == "Fn::Not":
            return not self.value(arg[0])
        if key == "Fn::And":
            return all(self.value(a) for a in arg)
        if key == "Fn::Or":
            return any(self.value(a) for a in arg)
        if key == "Condition":
            return self.condition(arg)
        if key == "Fn::ImportValue":
            return f"import-{self.value(arg)}"
        return {key: self.value(arg)}

    def sub_var(self, name, names):
        if name in names:
            return str(self.value(names[name]))
        if "." in name:
            resource, attribute = name.split(".", 1)
            return Placeholders.get_att(resource, attribute)
        return str(self.ref(name))


NO_VALUE = object()


class Task:
    def __init__(self, origin, env, command, is_ward=True, programs=()):
        self.origin = origin
        self.env = env
        self.command = command
        self.is_ward = is_ward
        # What the container runs besides ward's command: its health check, its entrypoint.
        self.programs = [list(program) for program in programs]


def secret_value(name, keys):
    if name == "WARD_AUTH__PRIVATE_KEY":
        return keys["private"]
    if name == "WARD_AUTH__PUBLIC_KEY":
        return keys["public"]
    if name.startswith("WARD_DATABASE__") and name.endswith("_PASSWORD"):
        return DB_PASSWORD
    if name == "WARD_EVENTS__SASL_PASSWORD":
        return SCRAM_PASSWORD
    if name == "WARD_EVENTS__SASL_USERNAME":
        return "ward"
    return "secret-value"


def cfn_tasks(path, keys):
    template, matches = decode(str(path))
    if template is None:
        raise SystemExit(f"{path}: cannot parse: {matches}")
    for label, overrides in (("defaults", {}), ("options on", OPTIONS_ON)):
        resolver = Resolver(template, overrides)
        for name, resource in template["Resources"].items():
            if resource.get("Type") != "AWS::ECS::TaskDefinition":
                continue
            for container in resolver.value(resource["Properties"]["ContainerDefinitions"]):
                env = {item["Name"]: str(item["Value"]) for item in container.get("Environment", [])}
                for item in container.get("Secrets", []):
                    env[item["Name"]] = secret_value(item["Name"], keys)
                origin = f"{path.name} {name}/{container['Name']} ({label})"
                health = (container.get("HealthCheck") or {}).get("Command") or []
                command = [str(part) for part in container.get("Command", [])]
                yield Task(origin, env, command, programs=[health] if health else [])


def compose_tasks(path, keys):
    """Services running the ward image; their key files (the `keys` volume) are the temp pair."""
    document = yaml.safe_load(path.read_text())
    for name, service in document["services"].items():
        if "ward" not in str(service.get("image", "")):
            continue
        raw = service.get("environment") or {}
        if isinstance(raw, list):
            raw = dict(item.split("=", 1) for item in raw)
        env = {key: expand_compose(str(value)) for key, value in raw.items()}
        for key, value in env.items():
            if key == "WARD_AUTH__PRIVATE_KEY_FILE":
                env[key] = keys["private_file"]
            elif key == "WARD_AUTH__PUBLIC_KEY_FILE":
                env[key] = keys["public_file"]
        command = service.get("command") or []
        if isinstance(command, str):
            command = command.split()
        is_ward = "entrypoint" not in service
        programs = []
        health = service.get("healthcheck") or {}
        if health.get("test") and not health.get("disable"):
            programs.append(health["test"])
        if not is_ward:
            programs.append(service["entrypoint"])
        command = [str(part) for part in command]
        yield Task(f"{path.name} {name}", env, command, is_ward, programs)


def compose_order_problems(path):
    """What `docker compose up` would trip over in the start order, checked without Docker."""
    services = yaml.safe_load(path.read_text())["services"]
    problems = []
    for name, service in services.items():
        for needed, spec in (service.get("depends_on") or {}).items():
            condition = (spec or {}).get("condition", "service_started")
            target = services.get(needed)
            if target is None:
                problems.append(f"{name} depends on {needed}, which is not a service")
            elif condition == "service_healthy" and not (target.get("healthcheck") or {}).get("test"):
                problems.append(f"{name} waits for {needed} to be healthy; it has no healthcheck")
            elif condition == "service_completed_successfully" and target.get("restart", "no") != "no":
                problems.append(f"{name} waits for {needed} to complete; it restarts instead")
    return problems


def expand_compose(value):
    """`${NAME:-default}` as compose interpolates it with NAME unset."""
    return re.sub(r"\$\{[A-Z0-9_]+:?-([^}]*)\}", r"\1", value)


def run(binary, args, env, cwd, image_config=True):
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if image_config:
        base["WARD_CONFIG"] = str(IMAGE_CONFIG)
    return subprocess.run(
        [binary, *args], env={**base, **env}, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def flatten(table, prefix=""):
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        yield dotted
        if isinstance(value, dict):
            yield from flatten(value, dotted + ".")


def known_keys(binary, env, cwd, image_config=True):
    """The dotted keys `ward config` prints with this environment (none if it refuses it)."""
    answer = run(binary, ["config"], env, cwd, image_config)
    if answer.returncode != 0:
        return None
    return set(flatten(tomllib.loads(answer.stdout)))


def unknown_names(binary, env, baseline, cwd):
    """Names ward does not read, and whether `ward config` accepted `env` (when it refuses,
    optional keys such as the passwords cannot be listed)."""
    with_env = known_keys(binary, env, cwd)
    keys = baseline | (with_env or set())
    bad = []
    for name in env:
        if ALLOWED_OTHER.match(name):
            continue
        if not name.startswith("WARD_") or name == "WARD_CONFIG":
            bad.append(name)
            continue
        dotted = name[len("WARD_"):].lower().replace("__", ".")
        if dotted not in keys:
            bad.append(name)
    return bad, with_env is not None


def check_args(task):
    """`serve ... --check` as it is; `migrate` as `serve --roles <its roles> --check` (it opens the
    same databases and topics); any other command (`keys generate`) needs only a configuration
    that loads and validates, which `ward config` checks (exit 2 otherwise)."""
    if task.command[:1] == ["serve"]:
        return [*task.command, "--check"]
    if task.command[:1] != ["migrate"]:
        return ["config"]
    roles = []
    if "--roles" in task.command:
        roles = ["--roles", task.command[task.command.index("--roles") + 1]]
    return ["serve", *roles, "--check"]


def image_has_shell(dockerfile):
    """Whether the image's last stage has bash: distroless and scratch images have no shell."""
    bases = re.findall(r"^FROM\s+(\S+)", dockerfile.read_text(), re.MULTILINE | re.IGNORECASE)
    return bool(bases) and not re.search(r"distroless|scratch|static", bases[-1])


def program_problems(binary, program, has_shell, cwd):
    """A health check or entrypoint must be runnable in the image: a shell only if it has one,
    ward only with a subcommand this ward has."""
    words = [str(word) for word in program]
    if words[:1] in (["CMD"], ["CMD-SHELL"]):
        kind, words = words[0], words[1:]
    else:
        kind = "CMD"
    uses_shell = kind == "CMD-SHELL" or Path(words[0]).name in ("bash", "sh")
    if uses_shell and not has_shell:
        return [f"`{' '.join(words)}` needs a shell, and deploy/Dockerfile's image has none"]
    if Path(words[0]).name == "ward":
        answer = run(binary, [words[1], "--help"], {}, cwd)
        if answer.returncode != 0:
            return [f"`{' '.join(words)}`: this ward has no `{words[1]}` command"]
    return []


def check_task(binary, task, baseline, cwd, has_shell=True):
    """Problems with one task, as text; empty when it passes."""
    problems = []
    for program in task.programs:
        problems.extend(program_problems(binary, program, has_shell, cwd))
    bad, is_accepted = unknown_names(binary, task.env, baseline, cwd)
    if bad:
        hint = "" if is_accepted else " (`ward config` refused the environment; see below)"
        problems.append(f"variables ward does not read: {', '.join(sorted(bad))}{hint}")
    if task.is_ward:
        answer = run(binary, check_args(task), task.env, cwd)
        if answer.returncode != 0:
            problems.append(
                f"`ward {' '.join(check_args(task))}` exited {answer.returncode}: "
                f"{(answer.stderr or answer.stdout).strip()}"
            )
        elif check_args(task) == ["config"]:
            print("    the configuration loads and validates")
        else:
            for line in answer.stdout.strip().splitlines():
                print(f"    {line}")
    return problems


def generate_keys(binary, folder):
    """A real key pair, written by `ward keys generate` through a temporary config file."""
    config = Path(folder) / "keys.toml"
    private, public = Path(folder) / "auth-private.key", Path(folder) / "auth-public.key"
    config.write_text(
        f'[auth]\nprivate_key_file = "{private}"\npublic_key_file = "{public}"\n'
    )
    answer = subprocess.run(
        [binary, "--config", str(config), "keys", "generate"],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if answer.returncode != 0:
        raise SystemExit(f"ward keys generate failed: {answer.stderr.strip()}")
    return {
        "private": private.read_text().strip(),
        "public": public.read_text().strip(),
        "private_file": str(private),
        "public_file": str(public),
    }


def self_test(binary, task, baseline, cwd):
    """A misspelt key inside a known section, and an unknown section, must both be refused."""
    for name in ("WARD_SERVER__HTTP_ADR", "WARD_SERVR__HTTP_ADDR"):
        broken = Task(task.origin, {**task.env, name: "0.0.0.0:8080"}, task.command, task.is_ward)
        problems = check_task(binary, broken, baseline, cwd)
        if not any(name in problem for problem in problems):
            raise SystemExit(f"self-test: {name} was not refused ({problems}); the check is broken")
    print(f"self-test: misspelt variables are refused (checked on {task.origin})")


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    binary = str(Path(argv[1]).resolve())
    files = [Path(f) for f in argv[2:]] or [
        *sorted((REPO / "deploy" / "aws").glob("*.yaml")),
        REPO / "deploy" / "compose.yaml",
    ]
    with tempfile.TemporaryDirectory() as keys_dir, tempfile.TemporaryDirectory() as cwd:
        keys = generate_keys(binary, keys_dir)
        # An empty working directory, as in the image: no config/ward.toml is layered in.
        # Compiled defaults only: production.toml alone may be incomplete (it leaves the secrets
        # to the environment), and the keys are the same.
        baseline = known_keys(binary, {}, cwd, image_config=False) or set()
        if "server.http_addr" not in baseline:
            raise SystemExit("`ward config` printed no server.http_addr; cannot list ward's keys")
        tasks = []
        for path in files:
            if path.suffix in (".yaml", ".yml") and "compose" in path.name:
                tasks.extend(compose_tasks(path, keys))
            else:
                tasks.extend(cfn_tasks(path, keys))
        if not tasks:
            raise SystemExit("no task definitions found")
        order_problems = [
            f"{path.name}: {problem}"
            for path in files
            if "compose" in path.name
            for problem in compose_order_problems(path)
        ]
        for problem in order_problems:
            print(f"FAIL {problem}")
        self_test(binary, next(t for t in tasks if t.is_ward), baseline, cwd)
        has_shell = image_has_shell(REPO / "deploy" / "Dockerfile")
        num_failed = 0
        for task in tasks:
            print(f"{task.origin}: {' '.join(task.command) or '(image default)'}")
            problems = check_task(binary, task, baseline, cwd, has_shell)
            for problem in problems:
                print(f"  FAIL {problem}")
            num_failed += bool(problems)
        print(f"task checks: {len(tasks) - num_failed} passed, {num_failed} failed")
        return 1 if num_failed or order_problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
