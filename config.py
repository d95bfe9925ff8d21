"""The ticketlint configuration file: discovery, ``${VAR}`` substitution and strict validation.

Every boolean key is strict: ``true`` or ``false``, as YAML booleans or as that text (what
``${VAR}`` substitution gives: ``enabled: ${WRITEBACK}``), never ``"yes"``, ``"on"`` or
``1``; the error names the file and the key path.

Found by ``--config``, ``$TICKETLINT_CONFIG``, ``./ticketlint.yaml``, then the user config
directory. Validated with ``extra="forbid"``: a typo is a :class:`ConfigError` that names
the file, the key path and what was expected (exit code 2). Secrets are read from the
environment through ``${VAR}`` and never printed: ``redacted()`` is what ``config show``
prints.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    StrictBool,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails

from ticketlint.mapping.common import MappingOptions
from ticketlint.redact import redact, redact_data

ENV_VAR = "TICKETLINT_CONFIG"
DEFAULT_NAME = "ticketlint.yaml"
DEFAULT_DATABASE = "sqlite:///.ticketlint/ticketlint.db"
_BARE_VAR_VALUE = re.compile(
    r"((?:^|[:\[,{])[ \t]*)(\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}\n]*)?\})(?=[ \t]*(?:[,}\]]|#|$))",
    re.MULTILINE,
)
_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
PROCESS_NAMES = ("incident", "service_request", "problem", "change", "release", "ci")
_BOOLEAN_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "y", "n", "1", "0"})
_BOOLEAN_TEXT = {"true": True, "false": False}


def _bool_text(value: Any) -> Any:
    """``"true"``/``"false"`` (any case: a substituted ``${VAR}`` is text) as booleans;
    everything else goes on to the strict check unchanged."""
    if isinstance(value, str):
        return _BOOLEAN_TEXT.get(value.strip().casefold(), value)
    return value


ConfigBool = Annotated[StrictBool, BeforeValidator(_bool_text)]
"""A strict boolean that also takes the text ``true``/``false`` (see the module docstring)."""


def _verify_value(value: Any) -> Any:
    """``verify``: true, false or a CA bundle path; never a number, and never another
    boolean word as text (``"no"`` would otherwise be read as a file named no)."""
    value = _bool_text(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value.strip().casefold() in _BOOLEAN_WORDS:
            raise ValueError(
                "a boolean written as text: write true or false, or give a CA bundle path"
            )
        return value
    raise ValueError("expected true, false or the path of a CA bundle")


Verify = Annotated[bool | str, BeforeValidator(_verify_value)]
"""True, False (warned about) or a CA bundle path; strict (:func:`_verify_value`)."""


class ConfigError(Exception):
    """The configuration is missing, unreadable or invalid. Exit code 2."""

    exit_code = 2

    def __init__(self, path: Path | str | None, problems: list[str]) -> None:
        where = str(path) if path else "configuration"
        # A malformed value is echoed to help the user: never with its credentials.
        problems = [redact(p) for p in problems]
        super().__init__("\n".join(f"{where}: {p}" for p in problems))
        self.path = path
        self.problems = problems


class _Strict(BaseModel):
    # Validators are built when a configuration is first validated, not at import:
    # about the same work, paid only by a run that reads a configuration.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)


class _EnvBound(_Strict):
    """A part of the configuration whose secrets are read when it is contacted."""

    _config: Any = PrivateAttr(default=None)
    _env_prefix: str = PrivateAttr(default="")

    def bind_env(self, config: Any, prefix: str) -> None:
        """Remember the configuration and this part's key path for :meth:`require_env`."""
        self._config, self._env_prefix = config, prefix

    def require_env(self) -> None:
        """Raise :class:`ConfigError` when a secret of this part names an environment
        variable that is not set: called just before it is contacted, so commands that
        do not contact it work without the variable."""
        if self._config is not None:
            name = getattr(self, "name", "")
            kind = "destination" if self._env_prefix.startswith("notify") else "source"
            require_env(self._config, self._env_prefix, f"{kind} {name!r}")


HttpUrlText = Annotated[str, Field(pattern=r"^https?://[^\s/]+", description="http(s) base URL")]


class TLSOptions(_Strict):
    verify: Verify = True
    """True, False (warned about) or a CA bundle path."""


class JiraCloudAuth(_Strict):
    email: str
    token: SecretStr


class JiraPatAuth(_Strict):
    pat: SecretStr


class BasicAuth(_Strict):
    user: str
    password: SecretStr


class OAuthPassword(_Strict):
    client_id: str
    client_secret: SecretStr
    user: str
    password: SecretStr


class ServiceNowOAuth(_Strict):
    oauth: OAuthPassword


class AssetsOptions(_Strict):
    """JSM Assets (Insight) as the CI source of a Jira site."""

    url: HttpUrlText | None = None
    workspace_id: str | None = None
    aql: str = "objectType IS NOT EMPTY"
    key_attribute: str = "Key"


class _SourceBase(_EnvBound):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    url: HttpUrlText
    fields: dict[str, str] = Field(default_factory=dict)
    status_map: dict[str, dict[str, str]] = Field(default_factory=dict)
    verify: Verify = True
    timeout: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=6, ge=1, le=20)
    retry_after_max: float = Field(default=120.0, gt=0)
    lookback_minutes: int = Field(default=10, ge=0)
    page_size: int | None = Field(default=None, ge=1)

    @field_validator("fields")
    @classmethod
    def _canonical_fields(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            process, _, name = key.partition(".")
            if process not in PROCESS_NAMES or not name:
                raise ValueError(
                    f"key {key!r} must be <process>.<field> with process one of {', '.join(PROCESS_NAMES)}"
                )
        return value

    @field_validator("status_map")
    @classmethod
    def _known_processes(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for process in value:
            if process not in PROCESS_NAMES:
                raise ValueError(f"process {process!r} is not one of {', '.join(PROCESS_NAMES)}")
        return value


class JiraSource(_SourceBase):
    type: Literal["jira"]
    auth: JiraCloudAuth | JiraPatAuth | BasicAuth
    jql: str | None = None
    issue_types: dict[str, list[str]] = Field(default_factory=dict)
    priority_map: dict[str, int] = Field(default_factory=dict)
    assets: AssetsOptions | None = None

    @field_validator("issue_types")
    @classmethod
    def _issue_type_processes(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for process in value:
            if process not in (*PROCESS_NAMES, "review"):
                raise ValueError(
                    f"process {process!r} is not one of {', '.join(PROCESS_NAMES)}, review"
                )
        return value

    def mapping_options(self) -> MappingOptions:
        return MappingOptions(
            source=self.name,
            base_url=self.url.rstrip("/"),
            fields=self.fields,
            status_map=self.status_map,
            issue_types=self.issue_types,
            priority_map=self.priority_map,
        )


class ServiceNowSource(_SourceBase):
    type: Literal["servicenow"]
    auth: BasicAuth | ServiceNowOAuth
    tables: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str] = Field(default_factory=dict)
    related_chunk: int | None = Field(default=None, ge=1, le=10_000)
    """Ids per ``sysapprovalIN`` / ``taskIN`` query; default 300 (URL and Link header size)."""

    @field_validator("tables", "query")
    @classmethod
    def _table_processes(cls, value: dict[str, str]) -> dict[str, str]:
        for process in value:
            if process not in PROCESS_NAMES:
                raise ValueError(f"process {process!r} is not one of {', '.join(PROCESS_NAMES)}")
        return value

    def mapping_options(self) -> MappingOptions:
        return MappingOptions(
            source=self.name,
            base_url=self.url.rstrip("/"),
            fields=self.fields,
            status_map=self.status_map,
            tables=self.tables,
        )


Source = Annotated[JiraSource | ServiceNowSource, Field(discriminator="type")]


class RulesOptions(_Strict):
    select: list[str] = Field(default_factory=lambda: ["ALL"])
    ignore: list[str] = Field(default_factory=list)
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    severity: dict[str, Literal["info", "low", "medium", "high", "critical"]] = Field(
        default_factory=dict
    )
    paths: list[str] = Field(default_factory=list)
    """Files or directories of declarative YAML rules."""


class Waiver(_Strict):
    rule: str
    key: str
    reason: Annotated[str, Field(min_length=1)]
    owner: Annotated[str, Field(min_length=1)]
    expires: date
    source: str | None = None


class NotifyDestination(_EnvBound):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    type: Literal["slack", "teams", "mattermost", "googlechat", "webhook"]
    url: SecretStr
    secret: SecretStr | None = None
    min_severity: Literal["info", "low", "medium", "high", "critical"] = "low"
    processes: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    rules: list[str] = Field(default_factory=list)
    always: ConfigBool = False
    report_url: str | None = None
    max_findings: int = Field(default=10, ge=1, le=100)


class WritebackOptions(_Strict):
    enabled: ConfigBool = False
    label: str = "ticketlint"
    comment: ConfigBool = True


class ServeOptions(_Strict):
    jira_secret: SecretStr | None = None
    servicenow_secret: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    connection_limit: int = Field(default=1000, ge=10, le=100_000)
    """Connections waitress holds open at once (its default, 100, lets 100 slow clients
    block /healthz and every webhook)."""
    channel_timeout: float = Field(default=15.0, gt=0, le=3600)
    """Seconds an idle or trickling connection is kept before waitress closes it."""
    reread_interval: float = Field(default=1.0, ge=0, le=3600)
    """Least seconds between two re-reads of one ticket, over every replica sharing the
    store (0: no limit); a re-check that comes sooner waits, it is not dropped."""


class AuditOptions(_Strict):
    """What the certification body's auditor samples: ``ticketlint exposure`` reads it."""

    sample: dict[str, Annotated[int, Field(strict=True, ge=1, le=1_000_000)]] = Field(
        default_factory=dict
    )
    """Records sampled per process (``default`` for the others); 25 when not given."""
    target: Annotated[float, Field(gt=0, le=1)] = 0.10
    """The exposure to get under: ``exposure --target`` overrides it."""
    period: str | None = None
    """The audit period ``FROM..TO`` (ISO dates) when ``--period`` is not given."""

    @field_validator("sample")
    @classmethod
    def _sample_processes(cls, value: dict[str, int]) -> dict[str, int]:
        for process in value:
            if process not in (*PROCESS_NAMES, "default"):
                raise ValueError(
                    f"process {process!r} is not one of {', '.join(PROCESS_NAMES)}, default"
                )
        return value

    @field_validator("period")
    @classmethod
    def _period_text(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(
            r"(\d{4}-\d{2}-\d{2})?\.\.(\d{4}-\d{2}-\d{2})?", value.strip()
        ):
            raise ValueError(f"{value!r} is not FROM..TO with ISO dates (2026-07-01..2026-09-30)")
        return value


class CheckOptions(_Strict):
    """Options of ``ticketlint check``."""

    fail_on_unchecked: ConfigBool = False
    """Exit 2 when any record of the input could not be checked or was skipped (the
    command line's ``--fail-on-unchecked``); without it, only a run that checked none of
    the records it read exits 2."""


class SyncSettings(_Strict):
    """How ``sync`` reads: incremental, with a full reconcile every ``reconcile_every`` runs."""

    reconcile_every: int = Field(default=10, ge=0, le=10_000, strict=True)
    """Every Nth run of a source re-reads it whole (as ``sync --full``): records deleted at
    the source or moved out of the configured JQL / encoded query, which an incremental
    read cannot see, end their findings as "gone". 0 = only when ``--full`` is given."""


class Config(_Strict):
    database: str = DEFAULT_DATABASE
    sources: list[Source] = Field(default_factory=list)
    rules: RulesOptions = Field(default_factory=RulesOptions)
    waivers: list[Waiver] = Field(default_factory=list)
    notify: list[NotifyDestination] = Field(default_factory=list)
    writeback: WritebackOptions = Field(default_factory=WritebackOptions)
    serve: ServeOptions = Field(default_factory=ServeOptions)
    audit: AuditOptions = Field(default_factory=AuditOptions)
    check: CheckOptions = Field(default_factory=CheckOptions)
    sync: SyncSettings = Field(default_factory=SyncSettings)
    report_url: str | None = None

    path: Path | None = Field(default=None, exclude=True)
    unresolved_env: dict[str, str] = Field(default_factory=dict, exclude=True)
    """Secrets whose ``${VAR}`` was not set (key path -> variable): an error only when
    the command contacts what needs them (:func:`require_env`)."""

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, value: list[Any]) -> list[Any]:
        seen: set[str] = set()
        for src in value:
            if src.name in seen:
                raise ValueError(f"source name {src.name!r} is used twice")
            seen.add(src.name)
        return value

    def source(self, name: str) -> JiraSource | ServiceNowSource:
        for src in self.sources:
            if src.name == name:
                return src
        known = ", ".join(s.name for s in self.sources) or "none configured"
        raise ConfigError(self.path, [f"sources: no source named {name!r} (known: {known})"])

    def redacted(self) -> dict[str, Any]:
        """The effective configuration with every secret replaced: secret fields dump as
        ``**********`` (SecretStr), and every other string (the database URL, source URLs)
        goes through :func:`ticketlint.redact.redact` for passwords and tokens inside it."""
        dumped = self.model_dump(mode="json", exclude={"path", "unresolved_env"})
        return {key: redact_data(value) for key, value in dumped.items()}


def find_config(explicit: str | Path | None = None) -> Path | None:
    """The config path by precedence, or None when there is none (an empty config)."""
    if explicit:
        return Path(explicit)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    local = Path(DEFAULT_NAME)
    if local.exists():
        return local
    user = _user_config_dir() / DEFAULT_NAME
    return user if user.exists() else None


def _user_config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "ticketlint"


def substitute_env(
    value: Any,
    path: str = "",
    problems: list[str] | None = None,
    deferred: dict[str, str] | None = None,
) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of the parsed YAML.

    An unset variable is a problem, except in a secret's place (:func:`is_secret_path`)
    when ``deferred`` is given: the secret is then recorded there (key path -> variable)
    and checked only when that source or destination is contacted."""
    problems = problems if problems is not None else []
    if isinstance(value, dict):
        return {
            k: substitute_env(v, f"{path}.{k}" if path else str(k), problems, deferred)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [substitute_env(v, f"{path}[{i}]", problems, deferred) for i, v in enumerate(value)]
    if isinstance(value, str):

        def repl(m: re.Match[str]) -> str:
            name, default = m.group("name"), m.group("default")
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            if deferred is not None and is_secret_path(path):
                deferred[path] = name
                return ""
            problems.append(f"{path}: environment variable {name} is not set")
            return ""

        return _VAR.sub(repl, value)
    return value


_SECRET_PATH = re.compile(
    r"^(sources\[\d+\]\.auth(\.oauth)?\.(token|pat|password|client_secret)"
    r"|notify\[\d+\]\.(url|secret)"
    r"|serve\.(jira_secret|servicenow_secret))$"
)


def is_secret_path(path: str) -> bool:
    """A key whose ``${VAR}`` is read only when it is used (a source's credentials, a
    chat destination's URL or signing secret, a webhook secret)."""
    return bool(_SECRET_PATH.match(path))


def require_env(config: Config, prefix: str, what: str) -> None:
    """Raise :class:`ConfigError` when a ``${VAR}`` under ``prefix`` (``sources[0].``)
    was not set at load: the moment ``what`` (a source, a destination) is contacted."""
    missing = {p: v for p, v in config.unresolved_env.items() if p.startswith(prefix)}
    if missing:
        raise ConfigError(
            config.path,
            [
                f"{p}: environment variable {v} is not set (needed to contact {what})"
                for p, v in missing.items()
            ],
        )


def load_config(explicit: str | Path | None = None, *, required: bool = False) -> Config:
    path = find_config(explicit)
    if path is None:
        if required:
            raise ConfigError(
                None,
                [
                    (
                        f"no configuration found (--config, ${ENV_VAR}, ./{DEFAULT_NAME} or "
                        f"{_user_config_dir() / DEFAULT_NAME}); `ticketlint init` writes a starter file"
                    )
                ],
            )
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, [f"cannot read: {exc.strerror or exc}"]) from exc
    return parse_config(text, path)


def parse_config(text: str, path: Path | str | None = None) -> Config:
    # `token: ${JIRA_API_TOKEN}` inside `{...}` is not valid YAML (a bare `{` starts a
    # mapping); documentation examples write it so, so quote such whole-value uses.
    text = _BARE_VAR_VALUE.sub(r'\1"\2"', text)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(path, [f"{where}not valid YAML: {getattr(exc, 'problem', exc)}"]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, [f"expected a mapping at the top level, got {type(data).__name__}"])
    problems: list[str] = []
    deferred: dict[str, str] = {}
    data = substitute_env(data, "", problems, deferred)
    if problems:
        raise ConfigError(path, problems)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        errors = _closest_union_member(exc.errors())
        messages = list(dict.fromkeys(_describe(err, data) for err in errors))
        raise ConfigError(path, messages) from None
    config.path = Path(path) if path else None
    config.unresolved_env = deferred
    for i, src in enumerate(config.sources):
        src.bind_env(config, f"sources[{i}].")
    for i, dest in enumerate(config.notify):
        dest.bind_env(config, f"notify[{i}].")
    if config.path is not None:
        resolve_relative_paths(config, config.path.parent)
    return config


def resolve_relative_paths(config: Config, base: Path) -> None:
    """Make the relative paths of a configuration file relative to its own directory, so
    that every command finds the same store, rules and CA bundles from any working
    directory: the SQLite file of ``database``, ``rules.paths`` and a source's ``verify``
    CA bundle. Absolute paths, URLs and in-memory databases are left as they are."""
    config.database = sqlite_url_relative_to(config.database, base)
    config.rules.paths = [_absolute(p, base) for p in config.rules.paths]
    for src in config.sources:
        if isinstance(src.verify, str):
            src.verify = _absolute(src.verify, base)


def _absolute(path: str, base: Path) -> str:
    expanded = os.path.expanduser(path)
    return expanded if os.path.isabs(expanded) else os.path.normpath(base.absolute() / expanded)


def sqlite_url_relative_to(url: str, base: Path) -> str:
    """``sqlite:///rel/t.db`` as ``sqlite:////<base>/rel/t.db``; other URLs unchanged."""
    prefix = next((p for p in ("sqlite+pysqlite:///", "sqlite:///") if url.startswith(p)), None)
    if prefix is None:
        return url
    rest = url[len(prefix) :]
    file, sep, query = rest.partition("?")
    if not file or file == ":memory:" or file.startswith(("/", "file:")):
        return url
    return f"{prefix}{_absolute(file, base)}{sep}{query}"


_PATTERN_WORDS = {
    r"^https?://[^\s/]+": "must be an http(s) base URL such as https://acme.atlassian.net",
    r"^[A-Za-z0-9][A-Za-z0-9_.-]*$": "must start with a letter or digit and hold only "
    "letters, digits, '_', '.' and '-'",
}
"""Plain words for the patterns of the models, instead of the regular expression."""


def _closest_union_member(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """For a value that matches no member of a union (``auth``), keep only the errors of
    the member it came closest to, instead of every member's complaints."""
    groups: dict[tuple[int | str, ...], dict[int | str, list[ErrorDetails]]] = {}
    plain: list[ErrorDetails] = []
    for err in errors:
        loc = err["loc"]
        tag_at = next(
            (i for i, part in enumerate(loc) if isinstance(part, str) and part[:1].isupper()), None
        )
        if tag_at is None:
            plain.append(err)
        else:
            groups.setdefault(loc[:tag_at], {}).setdefault(loc[tag_at], []).append(err)
    for members in groups.values():
        closest = min(members.values(), key=len)
        plain.extend(closest)
    return plain


def _describe(err: ErrorDetails, data: Any) -> str:
    loc = _key_path(err["loc"], data)
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif err["type"] == "missing":
        msg = "required key is missing"
    elif err["type"] == "string_pattern_mismatch":
        msg = _PATTERN_WORDS.get(str((err.get("ctx") or {}).get("pattern")), msg)
    value = err.get("input")
    shown = (
        ""
        if err["type"] in ("missing", "extra_forbidden") or isinstance(value, (dict, list))
        else f" (got {value!r})"
    )
    return f"{loc}: {msg}{shown}"


def _key_path(loc: tuple[Any, ...], data: Any) -> str:
    """``('sources', 0, 'jira', 'auth')`` -> ``sources[0].auth`` (drops union tags)."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
            node = node[item] if isinstance(node, list) and item < len(node) else None
        elif isinstance(node, dict) and item in node:
            parts.append(("." if parts else "") + str(item))
            node = node[item]
        elif isinstance(node, dict) or node is None:
            if item in ("jira", "servicenow") or "[" in str(item) or str(item)[:1].isupper():
                continue  # a union member's tag, not a key the user wrote
            parts.append(("." if parts else "") + str(item))
            node = None
    return "".join(parts) or "(top level)"
