"""Config validation names the file, the key path and what was expected."""

import pytest

from ticketlint.config import ConfigError, parse_config

GOOD = """
sources:
  - name: jira-prod
    type: jira
    url: https://example.atlassian.net
    auth: {email: ops@example.com, token: "${JIRA_API_TOKEN}"}
    fields: {change.backout_plan: "Rollback plan"}
  - name: snow-prod
    type: servicenow
    url: https://example.service-now.com
    auth: {oauth: {client_id: id, client_secret: "${SNOW_SECRET:-fallback}", user: u, password: p}}
rules: {ignore: [CHG010], params: {INC006: {stale_days: 21}}}
waivers:
  - {rule: CHG006, key: "OPS-1*", reason: r, owner: j.doe, expires: 2027-01-31}
notify:
  - {name: ops, type: slack, url: "https://hooks.slack.com/services/T/B/secret"}
"""


def test_good_config_and_redaction(monkeypatch):
    monkeypatch.setenv("JIRA_API_TOKEN", "tok-123")
    cfg = parse_config(GOOD, "t.yaml")
    assert cfg.source("jira-prod").auth.token.get_secret_value() == "tok-123"
    assert cfg.source("snow-prod").auth.oauth.client_secret.get_secret_value() == "fallback"
    shown = str(cfg.redacted())
    assert "tok-123" not in shown and "hooks.slack.com" not in shown and "fallback" not in shown
    assert cfg.source("jira-prod").mapping_options().fields == {
        "change.backout_plan": "Rollback plan"
    }


@pytest.mark.parametrize(
    "text, expected",
    [
        ("rulez: {}\n", "t.yaml: rulez: unknown key"),
        (
            "sources: [{name: a, type: jira, url: https://x, auth: {email: e, tokn: t}}]\n",
            "t.yaml: sources[0].auth.tokn: unknown key",
        ),
        (
            "sources: [{name: a, type: jira, url: ftp://x, auth: {pat: p}}]\n",
            "t.yaml: sources[0].url",
        ),
        (
            # not a secret's place: an unset variable is an error at load
            'sources: [{name: a, type: jira, url: https://x, jql: "${NOPE_NOT_SET}", auth: {pat: p}}]\n',
            "environment variable NOPE_NOT_SET is not set",
        ),
        (
            "sources: [{name: a, type: jira, url: https://x, auth: {pat: p}, fields: {chnage.risk: x}}]\n",
            "sources[0].fields",
        ),
        (
            "waivers: [{rule: CHG006, key: K, owner: o, expires: 2027-01-01}]\n",
            "waivers[0].reason: required key is missing",
        ),
        ("audit: {sample: {chnage: 40}}\n", "t.yaml: audit.sample: Value error, process 'chnage'"),
        (
            "audit: {sample: {change: '40'}}\n",
            "audit.sample.change: Input should be a valid integer",
        ),
        (
            "audit: {sample: {change: 4.5}}\n",
            "audit.sample.change: Input should be a valid integer",
        ),
        (
            "audit: {sample: {change: true}}\n",
            "audit.sample.change: Input should be a valid integer",
        ),
        ("audit: {sample: {change: 0}}\n", "audit.sample.change: Input should be greater than"),
        ("audit: {target: 0}\n", "audit.target: Input should be greater than 0"),
        ("audit: {target: 1.5}\n", "audit.target: Input should be less than or equal to 1"),
        ("audit: {period: 2026-07-01}\n", "audit.period"),
        ("audit: {period: 'Q3'}\n", "audit.period: Value error, 'Q3' is not FROM..TO"),
        ("audit: {sampel: {}}\n", "t.yaml: audit.sampel: unknown key"),
        ("sources: [\n", "t.yaml: line"),
        ("- a\n", "expected a mapping"),
    ],
)
def test_errors_name_file_and_key_path(monkeypatch, text, expected):
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    with pytest.raises(ConfigError) as err:
        parse_config(text, "t.yaml")
    assert expected in str(err.value)
    assert err.value.exit_code == 2


def test_unknown_source_name_lists_known(monkeypatch):
    monkeypatch.setenv("JIRA_API_TOKEN", "x")
    with pytest.raises(ConfigError, match="known: jira-prod, snow-prod"):
        parse_config(GOOD, "t.yaml").source("nope")


def test_bare_env_references_as_in_design_md_parse(monkeypatch):
    monkeypatch.setenv("JIRA_API_TOKEN", "t0k")
    monkeypatch.setenv("SNOW_PASSWORD", "pw")
    text = (
        "sources:\n"
        "  - name: jira-prod\n    type: jira\n    url: https://example.atlassian.net\n"
        "    auth: {email: ops@example.com, token: ${JIRA_API_TOKEN}}   # comment\n"
        "  - name: snow\n    type: servicenow\n    url: https://x.service-now.com\n"
        "    auth:\n      user: svc\n      password: ${SNOW_PASSWORD}\n"
    )
    cfg = parse_config(text, "t.yaml")
    assert cfg.source("jira-prod").auth.token.get_secret_value() == "t0k"
    assert cfg.source("snow").auth.password.get_secret_value() == "pw"


def test_audit_section_defaults_and_values():
    assert parse_config("").audit.sample == {} and parse_config("").audit.target == 0.1
    cfg = parse_config(
        "audit: {sample: {change: 40, default: 20}, target: 0.05, period: 2026-07-01..2026-09-30}\n"
    )
    assert cfg.audit.sample == {"change": 40, "default": 20}
    assert cfg.audit.target == 0.05 and cfg.audit.period == "2026-07-01..2026-09-30"


def test_an_unset_secret_is_an_error_only_when_its_source_is_contacted(monkeypatch):
    """Issue 17 item 6: offline commands work without JIRA_API_TOKEN set."""
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    cfg = parse_config(
        'sources: [{name: a, type: jira, url: https://x, auth: {pat: "${NOPE_NOT_SET}"}},\n'
        "          {name: b, type: jira, url: https://y, auth: {pat: set}}]\n",
        "t.yaml",
    )
    cfg.sources[1].require_env()  # its own secrets are there
    with pytest.raises(ConfigError) as err:
        cfg.sources[0].require_env()
    assert str(err.value) == (
        "t.yaml: sources[0].auth.pat: environment variable NOPE_NOT_SET is not set "
        "(needed to contact source 'a')"
    )


def test_a_bad_url_is_explained_in_words_not_a_regex():
    with pytest.raises(ConfigError) as err:
        parse_config(
            "sources: [{name: a, type: jira, url: acme.atlassian.net, auth: {pat: x}}]\n", "t.yaml"
        )
    assert str(err.value) == (
        "t.yaml: sources[0].url: must be an http(s) base URL such as "
        "https://acme.atlassian.net (got 'acme.atlassian.net')"
    )
    assert "^https?" not in str(err.value)
