"""Every boolean configuration key is strict (issue 19 follow-up): ``true``/``false``
(YAML booleans, or that text, as ``${VAR}`` substitution gives it), never ``"yes"`` or
``1``, and the error names the file and the key path like every other configuration
error. ``verify`` also takes a CA bundle path, but not another boolean word as text
(``"no"`` is not a file named no)."""

from __future__ import annotations

from typing import Annotated, Any, get_args

import pydantic
import pytest
from pydantic import BaseModel, TypeAdapter

from ticketlint import config as config_module
from ticketlint.config import ConfigError, parse_config

SOURCE = "{name: a, type: jira, url: https://x.example, auth: {pat: p}"
NOTIFY = '{name: ops, type: slack, url: "https://hooks.slack.com/services/T/B/x"'
# (where the key sits in a file, as "{}" for its value, and the key path errors name)
KEYS = [
    ("notify: [" + NOTIFY + ", always: {}}]\n", "notify[0].always"),
    ("writeback: {{enabled: {}}}\n", "writeback.enabled"),
    ("writeback: {{comment: {}}}\n", "writeback.comment"),
    ("check: {{fail_on_unchecked: {}}}\n", "check.fail_on_unchecked"),
    ("sources: [" + SOURCE + ", verify: {}}]\n", "sources[0].verify"),
]
BAD = ['"yes"', '"on"', '"no"', "1", "0", "2.5", '"1"']


def _fill(template: str, value: str) -> str:
    return template.replace("{}", value, 1) if "{{" not in template else template.format(value)


@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize("template, key", KEYS, ids=[k for _, k in KEYS])
def test_a_boolean_key_refuses_anything_but_true_or_false(
    template: str, key: str, value: str
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(_fill(template, value), "t.yaml")
    message = str(err.value)
    assert message.startswith(f"t.yaml: {key}: "), message
    assert len(message.splitlines()) == 1
    assert err.value.exit_code == 2


@pytest.mark.parametrize(
    "value, expected",
    [("true", True), ("false", False), ("yes", True), ('"true"', True), ('"False"', False)],
)
@pytest.mark.parametrize("template, key", KEYS, ids=[k for _, k in KEYS])
def test_yaml_booleans_are_accepted(template: str, key: str, value: str, expected: bool) -> None:
    # An unquoted yes is YAML 1.1's own boolean (the parser makes it True), not text;
    # "true" as text is what a substituted ${VAR} gives.
    cfg = parse_config(_fill(template, value), "t.yaml")
    read = {
        "notify[0].always": lambda: cfg.notify[0].always,
        "writeback.enabled": lambda: cfg.writeback.enabled,
        "writeback.comment": lambda: cfg.writeback.comment,
        "check.fail_on_unchecked": lambda: cfg.check.fail_on_unchecked,
        "sources[0].verify": lambda: cfg.sources[0].verify,
    }[key]()
    assert read is expected


def test_verify_still_takes_a_ca_bundle_path(tmp_path: Any) -> None:
    cfg = parse_config("sources: [" + SOURCE + ", verify: /etc/ssl/corp-ca.pem}]\n", "t.yaml")
    assert cfg.sources[0].verify == "/etc/ssl/corp-ca.pem"
    with pytest.raises(ConfigError, match="a boolean written as text"):
        parse_config("sources: [" + SOURCE + ', verify: "no"}]\n', "t.yaml")


def test_a_boolean_from_an_environment_variable_is_read(monkeypatch: Any) -> None:
    monkeypatch.setenv("TL_WRITEBACK", "true")
    monkeypatch.setenv("TL_VERIFY", "false")
    cfg = parse_config(
        "writeback: {enabled: ${TL_WRITEBACK}}\nsources: [" + SOURCE + ", verify: ${TL_VERIFY}}]\n",
        "t.yaml",
    )
    assert cfg.writeback.enabled is True and cfg.sources[0].verify is False
    monkeypatch.setenv("TL_WRITEBACK", "yes")
    with pytest.raises(ConfigError, match=r"writeback\.enabled"):
        parse_config("writeback: {enabled: ${TL_WRITEBACK}}\n", "t.yaml")


def _config_models() -> list[type[BaseModel]]:
    return [
        obj
        for obj in vars(config_module).values()
        if isinstance(obj, type)
        and issubclass(obj, BaseModel)
        and obj.__module__ == "ticketlint.config"
    ]


def _holds_bool(annotation: Any) -> bool:
    return annotation is bool or any(_holds_bool(a) for a in get_args(annotation))


def test_every_boolean_field_of_every_config_model_is_strict() -> None:
    """A boolean key added later must be strict too: each field whose type holds bool
    refuses 1 and "yes"."""
    seen = []
    for model in _config_models():
        for name, info in model.model_fields.items():
            if not _holds_bool(info.annotation):
                continue
            seen.append(f"{model.__name__}.{name}")
            annotated = Annotated.__class_getitem__((info.annotation, *info.metadata))  # type: ignore[attr-defined]
            adapter: TypeAdapter[Any] = TypeAdapter(annotated)
            for bad in (1, "yes", "on", "1"):
                with pytest.raises(pydantic.ValidationError):
                    adapter.validate_python(bad)
            assert adapter.validate_python(True) is True
    assert {"NotifyDestination.always", "WritebackOptions.enabled"} <= set(seen), seen
