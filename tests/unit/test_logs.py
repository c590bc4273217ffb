"""logs.py: real log files on disk, real rotation, and the token never reaching a line."""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from keboola_sync import logs
from keboola_sync.config import LoggingConfig
from keboola_sync.errors import ConfigError
from keboola_sync.logs import add_secret, reset_logging, setup_logging

TOKEN = "kbc-logs-test-token-9d2e61"
LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (\w+) ([\w.]+): (.*)$")


@pytest.fixture(autouse=True)
def clean_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    reset_logging()
    root.setLevel(level)
    with logs._secrets_lock:
        logs._secrets.clear()
    for name in (*logs.NOISY_LOGGERS, *logs.AWS_LOGGERS):
        logging.getLogger(name).setLevel(logging.NOTSET)


def cfg(tmp_path: Path, **kw) -> LoggingConfig:
    return replace(LoggingConfig(file=tmp_path / "logs" / "keboola-sync.log", console=False), **kw)


def read_lines(path: Path) -> list[str]:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return path.read_text(encoding="utf-8").splitlines()


def test_text_lines_with_extra_fields(tmp_path: Path) -> None:
    c = cfg(tmp_path)
    setup_logging(c)
    assert c.file.parent.is_dir()  # the directory is created
    log = logging.getLogger("keboola_sync.sync")
    log.info("loaded %s", "sales/orders.csv", extra={"rows": 12, "table": "in.c-sales.orders", "note": "a b"})
    log.debug("not shown at INFO")
    lines = read_lines(c.file)
    assert len(lines) == 1
    match = LINE.match(lines[0])
    assert match, lines[0]
    assert match.groups() == (
        "INFO",
        "keboola_sync.sync",
        'loaded sales/orders.csv rows=12 table=in.c-sales.orders note="a b"',
    )


def test_json_lines(tmp_path: Path) -> None:
    c = cfg(tmp_path, format="json", level="DEBUG")
    setup_logging(c)
    log = logging.getLogger("keboola_sync.storage")
    log.debug("job %d done", 7, extra={"job_id": 7, "columns": ["a", "b"]})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    lines = read_lines(c.file)
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "DEBUG"
    assert first["logger"] == "keboola_sync.storage"
    assert first["message"] == "job 7 done"
    assert first["job_id"] == 7
    assert first["columns"] == ["a", "b"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$", first["ts"])
    assert second["level"] == "ERROR"
    assert "ValueError: boom" in second["exc_info"]
    assert "Traceback" in second["exc_info"]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_token_is_redacted_everywhere(tmp_path: Path, fmt: str) -> None:
    c = cfg(tmp_path, format=fmt)
    setup_logging(c, secrets=[TOKEN])
    log = logging.getLogger("keboola_sync.storage")
    log.info("token in the message " + TOKEN)
    log.info("token in args %s", TOKEN)
    log.info("token in extra", extra={"header": f"X-StorageApi-Token: {TOKEN}", "nested": {"t": TOKEN}})
    try:
        try:
            raise RuntimeError(f"request to https://x/?token={TOKEN} failed")
        except RuntimeError as inner:
            raise ConnectionError(f"wrapped {TOKEN!r}") from inner
    except ConnectionError:
        log.exception("with a traceback")
    text = "\n".join(read_lines(c.file))
    assert TOKEN not in text
    assert text.count(logs.REDACTED) >= 6
    assert "request to https://x/?token=*** failed" in text


def test_add_secret_later_and_short_strings(tmp_path: Path) -> None:
    c = cfg(tmp_path)
    setup_logging(c)
    log = logging.getLogger("keboola_sync.daemon")
    log.info("before %s", TOKEN)
    add_secret(TOKEN)
    add_secret("ab")  # too short to redact safely
    log.info("after %s ab", TOKEN)
    before, after = read_lines(c.file)
    assert TOKEN in before  # only lines formatted after add_secret are redacted
    assert after.endswith("after *** ab")


def test_setup_is_idempotent_and_replaces_only_our_handlers(tmp_path: Path) -> None:
    foreign = logging.NullHandler()
    root = logging.getLogger()
    root.addHandler(foreign)
    try:
        setup_logging(cfg(tmp_path, console=True))
        setup_logging(cfg(tmp_path, console=True))
        ours = [h for h in root.handlers if getattr(h, logs._MARK, False)]
        assert len(ours) == 2
        assert sorted(type(h).__name__ for h in ours) == ["StreamHandler", "WatchedRotatingFileHandler"]
        assert foreign in root.handlers
        setup_logging(cfg(tmp_path, console=False))
        ours = [type(h).__name__ for h in root.handlers if getattr(h, logs._MARK, False)]
        assert ours == ["WatchedRotatingFileHandler"]
    finally:
        root.removeHandler(foreign)


def test_console_goes_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(cfg(tmp_path, console=True), secrets=[TOKEN])
    logging.getLogger("keboola_sync.cli").warning("hello %s", TOKEN)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "WARNING keboola_sync.cli: hello ***" in captured.err


def test_rotation_keeps_backup_count_files(tmp_path: Path) -> None:
    c = cfg(tmp_path, max_bytes=2048, backup_count=2)
    setup_logging(c)
    log = logging.getLogger("keboola_sync.sync")
    for i in range(200):
        log.info("line %03d %s", i, "x" * 60)
    files = sorted(p.name for p in c.file.parent.iterdir())
    assert files == ["keboola-sync.log", "keboola-sync.log.1", "keboola-sync.log.2"]
    for name in files:
        assert (c.file.parent / name).stat().st_size <= 2048
    assert read_lines(c.file)[-1].endswith("line 199 " + "x" * 60)


def test_a_removed_log_directory_is_created_again_and_keeps_every_later_line(tmp_path: Path) -> None:
    c = cfg(tmp_path)
    setup_logging(c)
    log = logging.getLogger("keboola_sync.sync")
    log.info("before the removal")
    shutil.rmtree(c.file.parent)
    log.warning("after the removal")
    log.info("and the next one")
    assert [LINE.match(line).group(3) for line in read_lines(c.file)] == ["after the removal", "and the next one"]


def test_a_log_file_replaced_under_the_daemon_is_reopened(tmp_path: Path) -> None:
    c = cfg(tmp_path)
    setup_logging(c)
    log = logging.getLogger("keboola_sync.sync")
    log.info("first")
    c.file.rename(c.file.with_name("moved-away.log"))  # what logrotate's default (create) mode does
    log.info("second")
    assert [LINE.match(line).group(3) for line in read_lines(c.file)] == ["second"]
    moved = c.file.with_name("moved-away.log").read_text(encoding="utf-8")
    assert moved.endswith("first\n")


def test_rotation_still_happens_after_a_reopen(tmp_path: Path) -> None:
    c = cfg(tmp_path, max_bytes=2048, backup_count=2)
    setup_logging(c)
    log = logging.getLogger("keboola_sync.sync")
    log.info("start")
    shutil.rmtree(c.file.parent)
    for i in range(100):
        log.info("line %03d %s", i, "x" * 60)
    files = sorted(p.name for p in c.file.parent.iterdir())
    assert files == ["keboola-sync.log", "keboola-sync.log.1", "keboola-sync.log.2"]
    assert all((c.file.parent / name).stat().st_size <= 2048 for name in files)
    assert read_lines(c.file)[-1].endswith("line 099 " + "x" * 60)


def test_noisy_libraries_are_quiet_unless_debug(tmp_path: Path) -> None:
    setup_logging(cfg(tmp_path, level="INFO"))
    assert logging.getLogger("botocore").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("urllib3.connectionpool").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("watchdog.observers").getEffectiveLevel() == logging.WARNING
    logging.getLogger("urllib3.connectionpool").info("chatter")
    logging.getLogger("botocore").warning("real problem")
    setup_logging(cfg(tmp_path, level="DEBUG"))
    assert logging.getLogger("urllib3.connectionpool").getEffectiveLevel() == logging.DEBUG
    # The AWS SDK logs signed requests and temporary credentials at DEBUG: it stays at WARNING.
    assert logging.getLogger("botocore").getEffectiveLevel() == logging.WARNING
    text = "\n".join(read_lines(cfg(tmp_path).file))
    assert "chatter" not in text
    assert "WARNING botocore: real problem" in text


def test_unwritable_log_location_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(ConfigError) as err:
        setup_logging(LoggingConfig(file=blocker / "x.log", console=False))
    assert err.value.key == "logging.file"
    assert str(blocker / "x.log") in str(err.value)


def test_a_reloaded_logging_section_changes_the_running_handlers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = cfg(tmp_path, level="DEBUG")
    setup_logging(c, secrets=[TOKEN])
    log = logging.getLogger("keboola_sync.sync")
    log.debug("debug before")
    logs.reconfigure_logging(replace(c, level="INFO", format="json", console=True, max_bytes=4096, backup_count=3))
    log.debug("debug after")
    log.info("info after %s", TOKEN)
    lines = read_lines(c.file)
    assert LINE.match(lines[0]) and lines[0].endswith("debug before")  # the same file, still open
    assert len(lines) == 2
    assert json.loads(lines[1])["message"] == "info after ***"
    assert '"message": "info after ***"' in capsys.readouterr().err  # a console was added
    handler = next(h for h in logging.getLogger().handlers if isinstance(h, logs.WatchedRotatingFileHandler))
    assert (handler.maxBytes, handler.backupCount) == (4096, 3)

    logs.reconfigure_logging(replace(c, console=False))
    log.info("file only")
    assert capsys.readouterr().err == ""
    assert read_lines(c.file)[-1].endswith("file only")


# --- names as people make them (issue 12 item 14): one outcome, one line, nothing raw for the terminal --
ODD_NAMES = {
    "sales/two\nlines.csv": "sales/two\\nlines.csv",
    "sales/\x1b[31mred\x1b[0m.csv": "sales/\\x1b[31mred\\x1b[0m.csv",
    "sales/cr\rtab\t.csv": "sales/cr\\rtab\\t.csv",
    "sales/nel\x85ls\u2028ps\u2029.csv": "sales/nel\\x85ls\\u2028ps\\u2029.csv",
    "sales/\u202eexe.csv": "sales/\\u202eexe.csv",
    "sales/latin\udcfc1.csv": "sales/latin\\udcfc1.csv",  # a name that is not UTF-8 (surrogateescape)
    "Prodej ČR/Tržby 🚀.csv": "Prodej ČR/Tržby 🚀.csv",  # printable text stays as it is
}


@pytest.mark.parametrize(("name", "shown"), ODD_NAMES.items(), ids=[repr(n) for n in ODD_NAMES])
def test_printable_escapes_what_would_break_a_line_or_a_terminal(name: str, shown: str) -> None:
    assert logs.printable(name) == shown


@pytest.mark.parametrize(("name", "shown"), ODD_NAMES.items(), ids=[repr(n) for n in ODD_NAMES])
def test_a_text_log_line_about_an_odd_name_is_one_line(tmp_path: Path, name: str, shown: str) -> None:
    c = cfg(tmp_path)
    setup_logging(c)
    logging.getLogger("keboola_sync.sync").warning("skipped %s: the file is empty", name, extra={"file": name})
    lines = read_lines(c.file)
    assert len(lines) == 1, lines
    assert f"skipped {shown}: the file is empty" in lines[0]
    assert "\x1b" not in lines[0]


@pytest.mark.parametrize(("name", "shown"), ODD_NAMES.items(), ids=[repr(n) for n in ODD_NAMES])
def test_a_json_log_line_keeps_the_real_name_in_its_field(tmp_path: Path, name: str, shown: str) -> None:
    c = cfg(tmp_path, format="json")
    setup_logging(c)
    logging.getLogger("keboola_sync.sync").warning("skipped %s: the file is empty", name, extra={"file": name})
    lines = read_lines(c.file)
    assert len(lines) == 1, lines
    record = json.loads(lines[0])
    assert record["message"] == f"skipped {shown}: the file is empty"
    assert record["file"] == name
