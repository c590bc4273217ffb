"""config.py against real files on disk: the example config, .env files, bad values of every key."""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path

import pytest
import yaml

from keboola_sync import config as cfgmod
from keboola_sync.config import Config, check_writable_dir, defaults, load_config
from keboola_sync.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config.yaml.example"
TOKEN = "kbc-unit-test-token-4f1c"


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def load_yaml(tmp_path: Path, text: str, **kw) -> Config:
    return load_config(write(tmp_path / "config.yaml", text), environ={}, **kw)


def schema() -> list[tuple[str, str, typing.Any, typing.Any]]:
    rows = []
    for section, cls in cfgmod._SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            rows.append((section, f.name, hints[f.name], f.default))
    return rows


def test_example_config_is_exactly_the_schema_with_its_defaults(tmp_path: Path) -> None:
    example = yaml.safe_load(EXAMPLE.read_text())
    declared = {(s, k) for s, k, _, _ in schema()}
    assert {(s, k) for s, keys in example.items() for k in keys} == declared
    loaded = load_config(EXAMPLE, environ={})
    for section in cfgmod._SECTIONS:
        assert getattr(loaded, section) == getattr(defaults(), section), section
    assert loaded.source == EXAMPLE


def test_missing_default_config_means_all_defaults(tmp_path: Path) -> None:
    loaded = load_config(tmp_path / "config.yaml", env_file=tmp_path / ".env", environ={})
    assert loaded.source is None
    assert loaded.upload == defaults().upload
    assert loaded.token is None
    assert loaded.warnings == ()


def test_missing_named_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "nope.yaml", environ={}, config_path_explicit=True)
    assert err.value.key == str(tmp_path / "nope.yaml")
    assert "config file not found" in str(err.value)


def test_empty_and_partial_config(tmp_path: Path) -> None:
    assert load_yaml(tmp_path, "").watch == defaults().watch
    loaded = load_yaml(tmp_path, "upload:\n  gzip_threshold_mb: 1\nkeboola:\n")
    assert loaded.upload.gzip_threshold_mb == 1.0
    assert loaded.upload.gzip_threshold_bytes == 1024 * 1024
    assert loaded.upload.gzip_level == "auto"
    assert loaded.keboola == defaults().keboola


def test_values_are_read_and_typed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    loaded = load_yaml(
        tmp_path,
        f"""
keboola: {{url: "http://127.0.0.1:8080/", stage: out, request_timeout_seconds: 5}}
watch:
  path: {data}
  stable_seconds: 0.5
  csv_extensions: [".csv", ".TSV"]
  ignore_patterns: ["*.bak"]
  observer: polling
csv: {{delimiters: ",;", sniff_bytes: 4096}}
logging: {{level: debug, format: json, console: false, file: {tmp_path}/logs/x.log}}
upload: {{spool_dir: {tmp_path}/spool}}
state: {{path: {tmp_path}/state/state.db}}
daemon: {{health_file: {tmp_path}/state/health.json}}
""",
    )
    assert loaded.keboola.url == "http://127.0.0.1:8080"
    assert loaded.keboola.stage == "out"
    assert loaded.keboola.request_timeout_seconds == 5.0
    assert isinstance(loaded.keboola.request_timeout_seconds, float)
    assert loaded.watch.path == data
    assert loaded.watch.csv_extensions == (".csv", ".TSV")
    assert loaded.watch.ignore_patterns == ("*.bak",)
    assert loaded.csv.delimiters == ",;"
    assert loaded.logging.level == "DEBUG"
    assert loaded.logging.console is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.watch.path = Path("/x")  # type: ignore[misc]


def test_relative_paths_are_made_absolute_from_the_working_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    loaded = load_yaml(tmp_path, "watch: {path: ./data}\nstate: {path: state/s.db}\n")
    assert loaded.watch.path == tmp_path / "data"
    assert loaded.state.path == tmp_path / "state/s.db"


def _bad_type_values(hint: typing.Any) -> list[typing.Any]:
    if hint is bool:
        return [1, "true", None]
    if hint is int:
        return ["5", True, 1.5, None]
    if hint is float:
        return ["5", True, None, [1]]
    if hint is str:
        return [5, True, None, ["a"]]
    if hint is Path:
        return [5, "", None, ["/x"]]
    return ["*.csv", [1], {"a": 1}, None]  # tuple[str, ...]


BAD_TYPES = [
    pytest.param(section, name, value, id=f"{section}.{name}={value!r}")
    for section, name, hint, _ in schema()
    for value in _bad_type_values(hint)
]


@pytest.mark.parametrize(("section", "name", "value"), BAD_TYPES)
def test_every_key_rejects_a_wrong_type(tmp_path: Path, section: str, name: str, value: typing.Any) -> None:
    text = yaml.safe_dump({section: {name: value}})
    with pytest.raises(ConfigError) as err:
        load_yaml(tmp_path, text)
    key = f"{section}.{name}"
    assert err.value.key == key
    message = str(err.value)
    assert message.startswith(key)
    assert "must be" in message


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("keboola: {url: connection.keboola.com}", "keboola.url", "http:// or https://"),
        ("keboola: {url: 'ftp://x'}", "keboola.url", "http:// or https://"),
        ("keboola: {stage: sys}", "keboola.stage", "one of: in, out"),
        ("keboola: {request_timeout_seconds: 0}", "keboola.request_timeout_seconds", "greater than 0"),
        ("keboola: {job_timeout_seconds: -1}", "keboola.job_timeout_seconds", "greater than 0"),
        ("watch: {stable_seconds: -0.5}", "watch.stable_seconds", ">= 0"),
        ("watch: {rescan_seconds: 0}", "watch.rescan_seconds", "greater than 0"),
        ("watch: {observer: inotify}", "watch.observer", "auto, native, polling"),
        ("watch: {csv_extensions: ['csv']}", "watch.csv_extensions", 'start with "."'),
        ("watch: {csv_extensions: []}", "watch.csv_extensions", "at least one"),
        ("watch: {ignore_patterns: ['']}", "watch.ignore_patterns", "non-empty"),
        ("mapping: {on_invalid_name: fix}", "mapping.on_invalid_name", "sanitize, reject"),
        ("csv: {on_header_change: merge}", "csv.on_header_change", "skip, load"),
        ("csv: {sniff_bytes: 10}", "csv.sniff_bytes", "1024"),
        ("csv: {delimiters: ''}", "csv.delimiters", "one or more"),
        ("csv: {delimiters: ',,'}", "csv.delimiters", "each delimiter once"),
        ("csv: {delimiters: ',\"'}", "csv.delimiters", "not letters"),
        ("keboola: {max_requests_per_second: -1}", "keboola.max_requests_per_second", "0 (no limit)"),
        ("keboola: {max_requests_per_second: 1e9}", "keboola.max_requests_per_second", "10000"),
        ("upload: {gzip_level: 10}", "upload.gzip_level", "from 0 to 9"),
        ("upload: {gzip_level: -1}", "upload.gzip_level", "from 0 to 9"),
        ("upload: {gzip_level: fast}", "upload.gzip_level", "from 0 to 9, or auto"),
        ("upload: {gzip_level: 1.5}", "upload.gzip_level", "a whole number or a text value"),
        ("upload: {gzip_level: true}", "upload.gzip_level", "a whole number or a text value"),
        ("upload: {gzip_threshold_mb: -1}", "upload.gzip_threshold_mb", ">= 0"),
        ("upload: {concurrency: 0}", "upload.concurrency", ">= 1"),
        ("upload: {multipart_chunk_mb: 1}", "upload.multipart_chunk_mb", "at least 5 MB"),
        ("upload: {multipart_concurrency: 0}", "upload.multipart_concurrency", ">= 1"),
        ("retry: {max_attempts: 0}", "retry.max_attempts", ">= 1"),
        ("retry: {initial_backoff_seconds: 10, max_backoff_seconds: 5}", "retry.max_backoff_seconds", ">="),
        (
            "daemon: {heartbeat_seconds: 60, health_max_age_seconds: 30}",
            "daemon.health_max_age_seconds",
            "greater",
        ),
        ("logging: {level: VERBOSE}", "logging.level", "DEBUG, INFO"),
        ("logging: {format: xml}", "logging.format", "text, json"),
        ("logging: {max_bytes: 0}", "logging.max_bytes", ">= 1024"),
        ("logging: {backup_count: 0}", "logging.backup_count", "never rotate"),
        ("logging: {progress_seconds: 0}", "logging.progress_seconds", "greater than 0"),
        ("monitoring: {listen: '8484'}", "monitoring.listen", "HOST:PORT, e.g. 127.0.0.1:8484"),
        ("monitoring: {listen: 'localhost:99999'}", "monitoring.listen", "HOST:PORT"),
        ("notify: {urls: ['hooks.slack.com/x']}", "notify.urls", "Apprise URLs"),
    ],
)
def test_impossible_values_name_key_value_and_what_is_allowed(
    tmp_path: Path, text: str, key: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_yaml(tmp_path, text)
    assert err.value.key == key
    assert fragment in str(err.value)


def test_error_shows_the_bad_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_yaml(tmp_path, "upload:\n  gzip_level: 12\n")
    assert str(err.value) == "upload.gzip_level is 12; it must be a whole number from 0 to 9."
    with pytest.raises(ConfigError) as err:
        load_yaml(tmp_path, "watch:\n  stable_seconds: '2'\n")
    assert str(err.value) == "watch.stable_seconds is '2'; it must be a number (e.g. stable_seconds: 2)."


def test_an_int_is_fine_for_a_float(tmp_path: Path) -> None:
    assert load_yaml(tmp_path, "watch: {stable_seconds: 3}").watch.stable_seconds == 3.0


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("keboola: {urll: x}", "keboola.urll"),
        ("watch: {stable_second: 2}", "watch.stable_second"),
        ("uploads: {gzip_level: 1}", "uploads"),
        ("watch: [1, 2]", "watch"),
    ],
)
def test_unknown_keys_and_bad_sections(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_yaml(tmp_path, text)
    assert err.value.key == key
    assert key in str(err.value)


def test_a_token_in_the_config_is_refused_without_echoing_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_yaml(tmp_path, f"keboola:\n  token: {TOKEN}\n")
    assert err.value.key == "keboola.token"
    assert "KBC_STORAGE_API_TOKEN in .env" in str(err.value)
    assert TOKEN not in str(err.value)


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_yaml(tmp_path, "watch:\n  path: /data\n  stable_seconds: [2\nlogging:\n  level: INFO\n")
    assert err.value.key == str(tmp_path / "config.yaml")
    assert "YAML syntax error at line" in str(err.value)
    assert str(tmp_path / "config.yaml") in str(err.value)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must be a mapping of sections"):
        load_yaml(tmp_path, "- a\n- b\n")


@pytest.mark.parametrize(
    ("key", "yaml_text"),
    [
        ("upload.spool_dir", "upload: {spool_dir: WATCH/.spool}"),
        ("state.path", "state: {path: WATCH/state.db}"),
        ("logging.file", "logging: {file: WATCH/sub/log.txt}"),
        ("daemon.health_file", "daemon: {health_file: WATCH/health.json}"),
        ("upload.spool_dir", "upload: {spool_dir: WATCH}"),
    ],
)
def test_nothing_we_write_may_live_inside_the_watched_folder(tmp_path: Path, key: str, yaml_text: str) -> None:
    watch = tmp_path / "data"
    text = f"watch: {{path: {watch}}}\n" + yaml_text.replace("WATCH", str(watch))
    with pytest.raises(ConfigError) as err:
        load_yaml(tmp_path, text)
    assert err.value.key == key
    assert "never writes into the watched folder" in str(err.value)


def test_token_and_host_from_env_file_and_environment(tmp_path: Path) -> None:
    env_file = write(tmp_path / ".env", f"KBC_STORAGE_API_TOKEN={TOKEN}\nKBC_STORAGE_API_HOST=http://127.0.0.1:9/\n")
    before = dict(os.environ)
    loaded = load_config(None, env_file=env_file, environ={})
    assert dict(os.environ) == before  # never mutates the process environment
    assert loaded.require_token() == TOKEN
    assert loaded.keboola.url == "http://127.0.0.1:9"
    assert TOKEN not in repr(loaded)
    assert TOKEN not in str(loaded)
    # The real environment wins over .env.
    env = {"KBC_STORAGE_API_TOKEN": "from-env", "KBC_STORAGE_API_HOST": "https://connection.eu-central-1.keboola.com"}
    loaded = load_config(None, env_file=env_file, environ=env)
    assert loaded.token == "from-env"
    assert loaded.keboola.url == "https://connection.eu-central-1.keboola.com"


def test_host_env_overrides_config_and_accepts_a_bare_host(tmp_path: Path) -> None:
    write(tmp_path / "config.yaml", "keboola: {url: 'https://connection.keboola.com'}\n")
    loaded = load_config(tmp_path / "config.yaml", environ={"KBC_STORAGE_API_HOST": "connection.keboola.com"})
    assert loaded.keboola.url == "https://connection.keboola.com"
    loaded = load_config(tmp_path / "config.yaml", environ={"KBC_STORAGE_API_HOST": "  "})
    assert loaded.keboola.url == "https://connection.keboola.com"
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "config.yaml", environ={"KBC_STORAGE_API_HOST": "ftp://x"})
    assert err.value.key == "KBC_STORAGE_API_HOST"


@pytest.mark.parametrize("value", ["", "   ", None])
def test_missing_or_blank_token_is_a_clear_error(tmp_path: Path, value: str | None) -> None:
    env = {} if value is None else {"KBC_STORAGE_API_TOKEN": value}
    loaded = load_config(None, env_file=tmp_path / "missing.env", environ=env)
    with pytest.raises(ConfigError) as err:
        loaded.require_token()
    assert err.value.key == "KBC_STORAGE_API_TOKEN"
    assert ".env" in str(err.value)


def test_a_blank_token_variable_does_not_hide_the_env_file(tmp_path: Path) -> None:
    env_file = write(tmp_path / ".env", f"KBC_STORAGE_API_TOKEN={TOKEN}\n", mode=0o600)
    assert load_config(None, env_file=env_file, environ={"KBC_STORAGE_API_TOKEN": " "}).token == TOKEN
    assert load_config(None, env_file=env_file, environ={"KBC_STORAGE_API_TOKEN": "other"}).token == "other"


def test_an_env_file_readable_by_others_gives_a_warning_and_config_yaml_none(tmp_path: Path) -> None:
    """.env holds the token; config.yaml never does, and must stay readable for a container's daemon."""
    config_file = write(tmp_path / "config.yaml", "", mode=0o644)
    env_file = write(tmp_path / ".env", f"KBC_STORAGE_API_TOKEN={TOKEN}\n", mode=0o640)
    loaded = load_config(config_file, env_file=env_file, environ={})
    assert loaded.warnings == (f"{env_file} is readable by other users (mode 0640); run chmod 600 {env_file}",)
    env_file.chmod(0o600)
    assert load_config(config_file, env_file=env_file, environ={}).warnings == ()


def test_config_path_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a file"):
        load_config(tmp_path, environ={})
    with pytest.raises(ConfigError, match="is not a file"):
        load_config(None, env_file=tmp_path, environ={})


def test_check_writable_dir(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    check_writable_dir(target, "upload.spool_dir")
    assert target.is_dir()
    assert list(target.iterdir()) == []  # the probe file is gone
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError) as err:
        check_writable_dir(blocker / "sub", "state.path")
    assert err.value.key == "state.path"
    assert str(blocker / "sub") in str(err.value)


# --- refused at start-up (issue 12 item 16) --------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "key", "lines"),
    [
        ("watch:\n  path: /data\nlogging:\n  level: INFO\nwatch:\n  stable_seconds: 1\n", "watch", "line 1 and line 5"),
        ("watch:\n  stable_seconds: 1\n  stable_seconds: 2\n", "watch.stable_seconds", "line 2 and line 3"),
        ("logging: {level: INFO, level: DEBUG}\n", "logging.level", "line 1 and line 1"),
    ],
)
def test_a_key_or_section_written_twice_is_refused(tmp_path: Path, text: str, key: str, lines: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_yaml(tmp_path, text)
    assert err.value.key == key
    message = str(err.value)
    assert message.startswith(f"{key}: written twice in {tmp_path / 'config.yaml'} ({lines})")
    assert "silently drop the first" in message


def test_the_same_key_in_two_sections_is_fine(tmp_path: Path) -> None:
    loaded = load_yaml(tmp_path, "state: {path: /s/state.db}\nwatch: {path: /w}\n")
    assert (loaded.state.path, loaded.watch.path) == (Path("/s/state.db"), Path("/w"))


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", ".Inf", "+.inf"])
@pytest.mark.parametrize("key", ["watch.stable_seconds", "keboola.request_timeout_seconds", "upload.gzip_threshold_mb"])
def test_infinite_and_nan_numbers_are_refused(tmp_path: Path, key: str, value: str) -> None:
    section, name = key.split(".")
    with pytest.raises(ConfigError) as err:
        load_yaml(tmp_path, f"{section}:\n  {name}: {value}\n")
    assert err.value.key == key
    assert "it must be a finite number" in str(err.value)
    assert str(err.value).startswith(f"{key} is {value.lower().lstrip('+')};")


@pytest.mark.parametrize(
    "key",
    [f"{s}.{n}" for s, n, hint, _ in schema() if hint is float and n.endswith("_seconds")],
)
def test_every_time_has_an_upper_bound(tmp_path: Path, key: str) -> None:
    """A time beyond a year is a typo; far beyond, it would overflow a socket or thread timeout and be
    reported later as somebody else's fault (keboola.url)."""
    section, name = key.split(".")
    with pytest.raises(ConfigError) as err:
        load_yaml(tmp_path, f"{section}:\n  {name}: 1e12\n")
    assert err.value.key == key
    assert f"at most {cfgmod.MAX_SECONDS} (one year)" in str(err.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1e-9", 1e-9), ("5E3", 5000.0), ("2.5e+1", 25.0), ("1.0e1", 10.0), ("-1e0", None), (".5e1", 5.0)],
)
def test_numbers_in_exponent_form_are_numbers(tmp_path: Path, text: str, expected: float | None) -> None:
    if expected is None:
        with pytest.raises(ConfigError, match=r">= 0"):
            load_yaml(tmp_path, f"watch: {{stable_seconds: {text}}}")
        return
    assert load_yaml(tmp_path, f"watch: {{stable_seconds: {text}}}").watch.stable_seconds == expected


def test_a_quoted_exponent_is_still_text(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_yaml(tmp_path, "watch: {stable_seconds: '1e-9'}")
    assert str(err.value) == "watch.stable_seconds is '1e-9'; it must be a number (e.g. stable_seconds: 2)."


@pytest.mark.parametrize(
    ("yaml_text", "key", "other"),
    [
        ("daemon: {health_file: DIR/state.db}", "daemon.health_file", "state.path"),
        ("logging: {file: DIR/state.db}", "logging.file", "state.path"),
        ("logging: {file: DIR/state.db-wal}", "logging.file", "state.path's -wal file"),
        ("logging: {file: DIR/h.json}\ndaemon: {health_file: DIR/h.json}", "daemon.health_file", "logging.file"),
        ("upload: {spool_dir: DIR/state.db}", "upload.spool_dir", "state.path"),
        ("daemon: {health_file: DIR/sub/../state.db}", "daemon.health_file", "state.path"),
    ],
)
def test_each_file_the_daemon_writes_needs_its_own_path(tmp_path: Path, yaml_text: str, key: str, other: str) -> None:
    text = f"state: {{path: {tmp_path}/state.db}}\n" + yaml_text.replace("DIR", str(tmp_path))
    with pytest.raises(ConfigError) as err:
        load_yaml(tmp_path, text)
    assert err.value.key == key
    assert f"the same path as {other}; " in str(err.value)
    assert str(err.value).startswith(f"{key} is ")


def test_anchors_and_aliases_still_load_and_a_recursive_one_is_a_clear_error(tmp_path: Path) -> None:
    text = "watch:\n  csv_extensions: &ext ['.csv', '.tsv']\n  ignore_patterns: *ext\n"
    assert load_yaml(tmp_path, text).watch.ignore_patterns == (".csv", ".tsv")
    with pytest.raises(ConfigError) as err:
        load_yaml(tmp_path, "watch:\n  ignore_patterns: &loop ['a', *loop]\n")
    assert err.value.key == "watch.ignore_patterns"


def test_the_request_rate_defaults_to_ten_and_zero_turns_it_off(tmp_path: Path) -> None:
    assert defaults().keboola.max_requests_per_second == 50.0
    assert load_yaml(tmp_path, "keboola: {max_requests_per_second: 0}").keboola.max_requests_per_second == 0.0
    assert load_yaml(tmp_path, "keboola: {max_requests_per_second: 2.5}").keboola.max_requests_per_second == 2.5


def test_monitoring_and_notify_keys(tmp_path: Path) -> None:
    config = load_yaml(tmp_path, "monitoring:\n  listen: '[::1]:8484'\nnotify:\n  urls: ['json://127.0.0.1:9/x']\n")
    assert config.monitoring.listen == "[::1]:8484"
    assert config.notify.urls == ("json://127.0.0.1:9/x",)
    assert defaults().monitoring.listen == "" and defaults().notify.urls == ()


def test_a_bad_notify_url_is_never_shown(tmp_path: Path) -> None:
    """Notification URLs carry webhook secrets: an error names the key, never the value."""
    secret = "T000/B000/very-secret-webhook-part"
    for text in (f"notify:\n  urls: ['{secret}']\n", f"notify:\n  urls: 'slack://{secret}'\n"):
        with pytest.raises(ConfigError) as err:
            load_yaml(tmp_path, text)
        assert err.value.key == "notify.urls"
        assert secret not in str(err.value) and "not shown" in str(err.value)
