"""The service file of ``brokergate run``: what a valid file gives, and every problem named with
its line and key path (a secret written into the file never shown)."""

from __future__ import annotations

import textwrap
from datetime import time
from pathlib import Path

import pytest

from brokergate.engine.service._file import (
    FileProblem,
    ServiceFileError,
    load_service_file,
)
from brokergate.machines._schedule import schedule_from_mapping
from brokergate.machines._secret import Secret
from brokergate.machines.backoff import Backoff
from brokergate.machines.cqg.config import CqgConfig
from brokergate.machines.firstock.config import FirstockConfig
from brokergate.machines.qst.codec import Coalescing
from brokergate.machines.qst.config import QstConfig

SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"  # a valid TOTP seed (base32, 160 bits)
ENV = {"QST_PASSWORD": "qst-pw", "CQG_OTP_SEED": SEED, "FS_PASSWORD": "fs-pw",
       "FS_API_KEY": "fs-key", "FS_SEED": SEED}
SECRET = "hunter2-do-not-show"


def write(tmp_path: Path, *parts: str, name: str = "sessions.toml") -> Path:
    """The file of ``parts`` one after the other, each dedented (its first line is written on
    the line after the opening quotes)."""
    path = tmp_path / name
    path.write_text("".join(textwrap.dedent(part).lstrip("\n") for part in parts),
                    encoding="utf-8")
    return path


def problems_of(path: Path, environ: dict[str, str] | None = None) -> list[FileProblem]:
    with pytest.raises(ServiceFileError) as caught:
        load_service_file(path, environ=ENV if environ is None else environ)
    assert caught.value.path == path
    return caught.value.problems


def where(problems: list[FileProblem]) -> list[tuple[int, str]]:
    return [(problem.line, problem.field) for problem in problems]


QST = """
    [sessions.quotes]
    broker = "qst"
    url = "wss://qst.example/ws"
    user_name = "alice"
    client_id = "desk-7"
    password_env = "QST_PASSWORD"
"""
ORDERS = """
    [sessions.orders]
    broker = "cqg"
    url = "wss://demoapi.cqg.com"
    user_name = "bob"
    client_app_id = "app-1"
    password_file = "cqg.pw"
"""


# ---------------------------------------------------------------------------------------------
# a valid file


FULL = """
    [service]
    listen = "[::1]:0"
    audit = "logs/audit.jsonl"
    stop_timeout = 4
    account_label = true
    token_dir = "tokens"

    [defaults]
    login_timeout = 15.0
    schedule = { start = "08:00", end = "17:00", timezone = "Europe/Paris", weekdays = "mon-fri" }

    [sessions.quotes]
    broker = "qst"
    url = "qst.example/ws"
    user_name = "alice"
    client_id = "desk-7"
    password_env = "QST_PASSWORD"
    coalescing_interval = "100ms"
    ping_interval = "none"
    ca_file = "certs/ca.pem"
    backoff = { cap = 60.0, max_attempts = 0 }
    schedule = { start = "07:00", end = "16:00", timezone = "Europe/Paris", weekdays = "mon-fri" }

    [sessions.orders]
    broker = "cqg"
    url = "wss://demoapi.cqg.com:443"
    user_name = "bob"
    client_app_id = "app-1"
    password_file = "secrets/cqg.pw"
    otp_seed_env = "CQG_OTP_SEED"
    redirect_hosts = ["cqg.com"]
    restore = false
    schedule = "none"

    [sessions."fs.desk"]
    broker = "firstock"
    base_url = "connect.example.com/api/V3"
    user_id = "U1"
    vendor_code = "V1"
    password_env = "FS_PASSWORD"
    api_key_env = "FS_API_KEY"
    totp_seed_env = "FS_SEED"
    socket = "noren"
    socket_url = "ws.example.com/ws"
    token_expiry = "06:30"
    login_timeout = 20
"""


def test_a_full_file_gives_each_broker_its_configuration(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "cqg.pw").write_text("cqg-pw\nignored second line\n")
    path = write(tmp_path, FULL)
    loaded = load_service_file(path, environ=ENV)

    s = loaded.settings
    assert (s.listen_host, s.listen_port) == ("::1", 0)
    assert s.audit == tmp_path / "logs" / "audit.jsonl"
    assert s.token_dir == tmp_path / "tokens"
    assert (s.stop_timeout, s.account_label, s.coordinator) == (4.0, True, None)
    assert list(loaded.sessions) == ["quotes", "orders", "fs.desk"]  # the file's order
    assert [e.line for e in loaded.sessions.values()] == [12, 24, 35]
    assert [e.broker for e in loaded.sessions.values()] == ["qst", "cqg", "firstock"]

    quotes = loaded.sessions["quotes"]
    assert isinstance(quotes.config, QstConfig)
    assert quotes.config.session_id == "quotes"
    assert quotes.config.url == "wss://qst.example/ws"  # the CLI's default scheme
    assert quotes.config.password == Secret("qst-pw")
    assert quotes.config.login_timeout == 15.0  # from [defaults]
    assert quotes.config.coalescing_interval is Coalescing.MS_100  # the CLI's spelling
    assert quotes.config.ping_interval is None
    assert quotes.config.ca_file == str(tmp_path / "certs" / "ca.pem")
    assert quotes.config.backoff == Backoff(cap=60.0, max_attempts=None)
    assert quotes.schedule == schedule_from_mapping(
        {"start": "07:00", "end": "16:00", "timezone": "Europe/Paris", "weekdays": "mon-fri"})

    orders = loaded.sessions["orders"]
    assert isinstance(orders.config, CqgConfig)
    assert orders.config.password == Secret("cqg-pw")  # the file's first line
    assert orders.config.otp_seed == Secret(SEED)
    assert orders.config.redirect_hosts == ("cqg.com",)
    assert orders.config.restore is False
    assert orders.config.login_timeout == 15.0
    assert orders.schedule is None  # "none" overrides [defaults]

    desk = loaded.sessions["fs.desk"]
    assert isinstance(desk.config, FirstockConfig)
    assert desk.config.session_id == "fs.desk"
    assert desk.config.base_url == "https://connect.example.com/api/V3"
    assert desk.config.socket_url == "wss://ws.example.com/ws"
    assert desk.config.socket == "noren"
    assert desk.config.token_expiry == time(6, 30)
    assert desk.config.login_timeout == 20.0  # its own value wins over [defaults]
    assert (desk.config.api_key, desk.config.totp_seed) == (Secret("fs-key"), Secret(SEED))
    assert desk.schedule == schedule_from_mapping(
        {"start": "08:00", "end": "17:00", "timezone": "Europe/Paris", "weekdays": "mon-fri"})


def test_an_empty_file_is_a_service_with_no_sessions(tmp_path: Path) -> None:
    loaded = load_service_file(write(tmp_path, ""), environ={})
    assert loaded.sessions == {}
    assert (loaded.settings.listen_host, loaded.settings.listen_port) == ("127.0.0.1", 9464)
    assert loaded.settings.audit is None


def test_secrets_come_from_the_process_environment_by_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QST_PASSWORD", "from-os-environ")
    loaded = load_service_file(write(tmp_path, QST))
    config = loaded.sessions["quotes"].config
    assert isinstance(config, QstConfig)
    assert config.password == Secret("from-os-environ")


def test_no_repr_shows_a_secret(tmp_path: Path) -> None:
    (tmp_path / "cqg.pw").write_text(SECRET)
    path = write(tmp_path, QST, ORDERS)
    loaded = load_service_file(path, environ={"QST_PASSWORD": SECRET})
    assert SECRET not in repr(loaded)
    assert "fingerprint" not in repr(loaded.sessions["quotes"])


# ---------------------------------------------------------------------------------------------
# secrets


def test_a_secret_written_into_the_file_is_refused_and_never_shown(tmp_path: Path) -> None:
    path = write(tmp_path, f"""
        [defaults]
        api_key = "{SECRET}"

        [sessions.quotes]
        broker = "qst"
        url = "wss://qst.example/ws"
        user_name = "alice"
        client_id = "desk-7"
        password = "{SECRET}"
        desk_secret = "{SECRET}"

        [sessions.lost]
        broker = "nosuch"
        password = "{SECRET}"
    """)
    with pytest.raises(ServiceFileError) as caught:
        load_service_file(path, environ=ENV)
    error = caught.value
    assert where(error.problems) == [
        (2, "defaults.api_key"), (9, "sessions.quotes.password"),
        (10, "sessions.quotes.desk_secret"), (13, "sessions.lost.broker"),
        (14, "sessions.lost.password")]
    assert error.problems[1].message == (
        'a secret written into the file is refused (the value is not shown): give '
        'password_env = "VARIABLE" or password_file = "PATH"')
    assert str(error).splitlines()[1] == (
        f"{path}:9: sessions.quotes.password: a secret written into the file is refused (the "
        'value is not shown): give password_env = "VARIABLE" or password_file = "PATH"')
    assert "may hold a secret" in error.problems[2].message
    shown = [str(error), repr(error), repr(error.problems), *map(repr, error.args)]
    assert not [text for text in shown if SECRET in text]


def test_a_missing_variable_or_file_is_named_by_its_key(tmp_path: Path) -> None:
    (tmp_path / "empty.pw").write_text("\nsecond line\n")
    path = write(tmp_path, """
        [sessions.orders]
        broker = "cqg"
        url = "wss://demoapi.cqg.com"
        user_name = "bob"
        client_app_id = "app-1"
        password_file = "hunter2-typed-here"
        otp_seed_env = "NOT_SET"

        [sessions.fs]
        broker = "firstock"
        base_url = "https://connect.example.com/api/V3"
        user_id = "U1"
        vendor_code = "V1"
        password_file = "empty.pw"
        api_key_env = "FS_API_KEY"
        totp_seed_env = "FS_SEED"
        totp_env = "FS_SEED"
        api_key_file = "empty.pw"
    """)
    problems = problems_of(path)
    assert [(p.line, p.field, p.message) for p in problems] == [
        (6, "sessions.orders.password_file",
         "no such file (the path is not repeated here in case it is a secret)"),
        (7, "sessions.orders.otp_seed_env", "the environment variable NOT_SET is not set or empty"),
        (14, "sessions.fs.password_file", "the file's first line is empty"),
        (18, "sessions.fs.api_key_file", "give api_key_env or api_key_file, not both"),
    ]
    assert "hunter2-typed-here" not in str(ServiceFileError(path, problems))


def test_an_env_value_that_is_not_a_variable_name_is_not_repeated(tmp_path: Path) -> None:
    path = write(tmp_path, QST.replace('"QST_PASSWORD"', f'"{SECRET} !"'))
    [problem] = problems_of(path)
    assert (problem.line, problem.field) == (6, "sessions.quotes.password_env")
    assert problem.message.startswith("expected the NAME of an environment variable")
    assert SECRET not in problem.message


def test_a_required_secret_not_given_says_how_to_give_it(tmp_path: Path) -> None:
    path = write(tmp_path, QST.replace('password_env = "QST_PASSWORD"', ""))
    [problem] = problems_of(path)
    assert (problem.line, problem.field) == (1, "sessions.quotes.password")
    assert problem.message == (
        'is required: give password_env = "VARIABLE" or password_file = "PATH"')


def test_a_fingerprint_changes_with_the_session_values_and_secrets_it_reads(
        tmp_path: Path) -> None:
    (tmp_path / "cqg.pw").write_text("first\n")
    path = write(tmp_path, QST, ORDERS)

    def prints() -> dict[str, str]:
        loaded = load_service_file(path, environ=ENV)
        return {name: entry.fingerprint for name, entry in loaded.sessions.items()}

    first = prints()
    assert prints() == first  # the same file: the same fingerprints
    assert len(first["quotes"]) == 64 and first["quotes"] != first["orders"]
    write(tmp_path, QST.replace("desk-7", "desk-8"), ORDERS)
    edited = prints()
    assert edited["quotes"] != first["quotes"]
    assert edited["orders"] == first["orders"]  # another session's edit leaves it alone
    (tmp_path / "cqg.pw").write_text("rotated\n")
    rotated = prints()
    assert rotated["orders"] != first["orders"]
    assert rotated["quotes"] == edited["quotes"]
    write(tmp_path, "[defaults]\nlogin_timeout = 3.0\n", QST, ORDERS)
    assert not set(prints().values()) & set(rotated.values())  # [defaults] counts for both


# ---------------------------------------------------------------------------------------------
# keys and values


def test_an_unknown_key_is_named_with_the_nearest_known_one(tmp_path: Path) -> None:
    path = write(tmp_path, """
        [service]
        listn = "127.0.0.1:1"
        redis_password = "hidden"

        [defaults]
        login_timout = 3.0
    """, QST, 'user_nme = "alice"\n')
    problems = problems_of(path)
    assert [(p.line, p.field, p.message) for p in problems] == [
        (2, "service.listn", "unknown key in [service] (did you mean listen?)"),
        (3, "service.redis_password",
         "unknown key in [service] (did you mean redis_password_file?); its name says it may "
         "hold a secret, so its value is not shown: secrets are given as FIELD_env or "
         "FIELD_file, never written in"),
        (6, "defaults.login_timout", "unknown key in [defaults] (did you mean login_timeout?)"),
        (13, "sessions.quotes.user_nme",
         "unknown key in a qst session (did you mean user_name?)"),
    ]


def test_fields_that_only_code_can_set_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, """
        [sessions.orders]
        broker = "cqg"
        url = "wss://demoapi.cqg.com"
        access_token_env = "QST_PASSWORD"
        access_token_provider = "refresh"
        session_id = "other"
    """)
    problems = problems_of(path)
    assert where(problems) == [(5, "sessions.orders.access_token_provider"),
                               (6, "sessions.orders.session_id")]
    assert "exists only for code" in problems[0].message
    assert "a session's id is its name" in problems[1].message


def test_a_broker_missing_or_unknown(tmp_path: Path) -> None:
    path = write(tmp_path, """
        [sessions.a]
        url = "wss://qst.example/ws"

        [sessions.b]
        broker = "ib"
    """)
    problems = problems_of(path)
    assert [(p.line, p.field, p.message) for p in problems] == [
        (1, "sessions.a.broker", "is required: one of qst, cqg, firstock"),
        (5, "sessions.b.broker", "'ib' is not a broker: one of qst, cqg, firstock"),
    ]


def test_a_value_of_the_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path, QST, """
        login_timeout = "fast"
        coalesce_last_trade = "yes"
        coalescing_interval = "50ms"
        password_version = 1.5
        backoff = { cap = "long", max_attempts = 0 }
    """)
    problems = problems_of(path)
    assert [(p.line, p.field, p.message) for p in problems] == [
        (7, "sessions.quotes.login_timeout", "must be a number, not a string"),
        (8, "sessions.quotes.coalesce_last_trade", "must be true or false, not a string"),
        (9, "sessions.quotes.coalescing_interval", "must be one of uncoalesced, ms_100, ms_250 "
                                                    "(case, separators and word order do not "
                                                    "matter)"),
        (10, "sessions.quotes.password_version",
         "must be a whole number, not a decimal number"),
        (11, "sessions.quotes.backoff.cap", "must be a number, not a string"),
    ]


def test_a_literal_field_and_a_bad_backoff(tmp_path: Path) -> None:
    path = write(tmp_path, """
        [sessions.fs]
        broker = "firstock"
        base_url = "https://connect.example.com/api/V3"
        user_id = "U1"
        vendor_code = "V1"
        password_env = "FS_PASSWORD"
        api_key_env = "FS_API_KEY"
        totp_seed_env = "FS_SEED"
        socket = "websocket"
        backoff.factor = 0.5

        [sessions.fs2]
        broker = "firstock"
        backoff.caps = 1
        backoff.jitter = 1
    """)
    problems = [p for p in problems_of(path) if not p.message.startswith("is required")]
    assert [(p.line, p.field, p.message) for p in problems] == [
        (9, "sessions.fs.socket", "must be one of noren, v2, none"),
        (10, "sessions.fs.backoff", "backoff factor must be at least 1"),
        (14, "sessions.fs2.backoff.caps", "is not a backoff field (did you mean cap?)"),
        (15, "sessions.fs2.backoff.jitter", "is not a backoff field (its fields: initial, "
                                            "factor, cap, max_attempts, stability_window)"),
    ]


def test_the_configurations_own_checks_point_at_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, """
        [defaults]
        connect_timeout = -1.0

        [sessions.quotes]
        broker = "qst"
        url = "ws://quotes.example.com/ws"
        user_name = "alice"
        client_id = "desk-7"
        password_env = "QST_PASSWORD"

        [sessions.orders]
        broker = "cqg"
        url = "wss://demoapi.cqg.com"
        user_name = "bob"
        password_env = "QST_PASSWORD"
    """)
    problems = problems_of(path)
    assert where(problems) == [
        (2, "defaults.connect_timeout"),  # once, though both sessions take it
        (6, "sessions.quotes.url"),
        (11, "sessions.orders.client_app_id"),  # not written: the session's header
    ]
    assert problems[0].message == "connect_timeout must be positive"
    assert problems[1].message.startswith("url uses plaintext ws:// to quotes.example.com")


def test_a_bad_schedule_names_its_field(tmp_path: Path) -> None:
    path = write(tmp_path, QST, """
        schedule.start = "07:00"
        schedule.end = "16:00"
        schedule.timezone = "Mars/Olympus_Mons"
        schedule.weekdays = "mon-fri"
    """)
    [problem] = problems_of(path)
    assert (problem.line, problem.field) == (9, "sessions.quotes.schedule.timezone")


def test_a_bad_session_name(tmp_path: Path) -> None:
    path = write(tmp_path, '[sessions."two words"]\nbroker = "qst"\n')
    [problem] = problems_of(path)
    assert (problem.line, problem.field) == (1, 'sessions."two words"')


# ---------------------------------------------------------------------------------------------
# [service]


@pytest.mark.parametrize(("listen", "message"), [
    ("localhost", 'must be "HOST:PORT", such as "127.0.0.1:9464"'),
    ("127.0.0.1:65536", "the port must be a number from 0 to 65535 (0: any free port)"),
    ("::1:9464", "an IPv6 host goes in brackets: [::1]:9464"),
    ("[nope]:9464", "the host in brackets must be an IPv6 address"),
])
def test_a_bad_listen_address(tmp_path: Path, listen: str, message: str) -> None:
    path = write(tmp_path, f'[service]\nstop_timeout = 1\nlisten = "{listen}"\n')
    assert [(p.line, p.field, p.message) for p in problems_of(path)] == [
        (3, "service.listen", message)]


def test_the_service_table_is_checked(tmp_path: Path) -> None:
    (tmp_path / "fleet.key").write_text("k")
    path = write(tmp_path, f"""
        [service]
        stop_timeout = 0
        account_label = "yes"
        coordinator = "rediss://:{SECRET}@redis.internal:6380/0"
        redis_ca_file = "missing-ca.pem"
        fleet_key_file = "fleet.key"
    """)
    problems = problems_of(path)
    assert [(p.line, p.field) for p in problems] == [
        (2, "service.stop_timeout"), (3, "service.account_label"), (4, "service.coordinator"),
        (5, "service.redis_ca_file")]
    assert problems[2].message.startswith("holds a password, which is refused")
    assert SECRET not in repr(problems)
    alone = write(tmp_path, '[service]\nprefix = "bg"\n', name="alone.toml")
    assert where(problems_of(alone)) == [(2, "service.prefix")]  # no coordinator to go with


def test_service_coordinator_settings(tmp_path: Path) -> None:
    (tmp_path / "redis.pw").write_text("x")
    path = write(tmp_path, """
        [service]
        coordinator = "rediss://redis.internal:6380/0"
        redis_user = "brokergate"
        redis_password_file = "redis.pw"
        lease_ttl = 5
    """)
    s = load_service_file(path, environ={}).settings
    assert s.coordinator == "rediss://redis.internal:6380/0"
    assert (s.redis_user, s.redis_password_file, s.lease_ttl) == (
        "brokergate", tmp_path / "redis.pw", 5.0)


# ---------------------------------------------------------------------------------------------
# the file as a whole


def test_a_toml_syntax_error_keeps_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[service]\nlisten = "127.0.0.1:1"\nstop_timeout = = 3\n')
    [problem] = problems_of(path)
    assert (problem.line, problem.field) == (3, "")
    assert problem.message.startswith("not valid TOML: ")
    assert str(ServiceFileError(path, [problem])).startswith(f"{path}:3: not valid TOML: ")


def test_a_secret_left_unquoted_is_a_toml_error_that_does_not_show_it(tmp_path: Path) -> None:
    path = write(tmp_path, QST, f"api_key = {SECRET}\n")
    [problem] = problems_of(path)
    assert (problem.line, problem.field) == (7, "")
    assert SECRET not in str(ServiceFileError(path, [problem]))


def test_a_session_declared_twice_is_a_toml_error(tmp_path: Path) -> None:
    path = write(tmp_path, QST, QST)
    [problem] = problems_of(path)
    assert problem.line == 7
    assert "quotes" in problem.message


def test_a_file_that_cannot_be_read(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path / "missing.toml")
    assert (problem.line, problem.field) == (0, "")
    assert str(ServiceFileError(tmp_path / "missing.toml", [problem])) == (
        f"{tmp_path / 'missing.toml'}: cannot read it: No such file or directory")


def test_every_problem_is_reported_together_in_line_order(tmp_path: Path) -> None:
    path = write(tmp_path, """
        [sessions.late]
        broker = "qst"
        url = "wss://qst.example/ws"
        user_name = "alice"
        client_id = "desk-7"
        password_env = "UNSET"

        [service]
        listen = "nowhere"

        [sessions.early]
        broker = "cqg"
        url = 5

        [defaults]
        ping_timeout = "soon"
    """)
    problems = problems_of(path)
    assert where(problems) == [
        (6, "sessions.late.password_env"), (9, "service.listen"), (13, "sessions.early.url"),
        (16, "defaults.ping_timeout")]
    assert [line.split(":")[1] for line in str(ServiceFileError(path, problems)).splitlines()] \
        == ["6", "9", "13", "16"]


def test_lines_are_found_for_quoted_and_dotted_keys(tmp_path: Path) -> None:
    path = write(tmp_path, """
        # a comment [sessions.nope]
        [ sessions . "desk.1" ]
        broker = 'qst'
        note = '''
        url = "not a key"
        '''
        backoff.cap = "x"

        [sessions."desk.1".schedule]
        start = 1
    """)
    problems = problems_of(path, environ={})
    lines = {problem.field: problem.line for problem in problems}
    assert lines['sessions."desk.1".note'] == 4
    assert lines['sessions."desk.1".backoff.cap'] == 7
    assert lines['sessions."desk.1".url'] == 2  # not written: the table's header


def test_a_session_header_after_its_sub_table_is_still_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, """
        [sessions.quotes.schedule]
        start = "07:00"

        [sessions.quotes]
        broker = "qst"
    """)
    required = [p for p in problems_of(path) if p.message == "is required"]
    assert {p.line for p in required} == {4}


def test_a_field_of_another_broker_is_named_as_such(tmp_path: Path) -> None:
    path = write(tmp_path, QST, 'token_expiry = "06:00"\n', """
        [sessions.lost]
        broker = "nosuch"
        token_timezone = "Asia/Kolkata"
    """)
    problems = problems_of(path)
    assert [(p.line, p.field, p.message) for p in problems] == [
        (7, "sessions.quotes.token_expiry",
         "is not a field of a qst session (only of firstock sessions)"),
        (9, "sessions.lost.broker", "'nosuch' is not a broker: one of qst, cqg, firstock"),
    ]  # and token_timezone, a field of a broker, is not taken for a secret


def test_the_example_file_in_the_repository_loads(tmp_path: Path) -> None:
    """examples/sessions.toml, which docs/operations.md shows, is a file the loader takes."""
    example = Path(__file__).resolve().parent.parent / "examples" / "sessions.toml"
    copy = tmp_path / "sessions.toml"
    copy.write_text(example.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "cqg.pw").write_text("cqg-pw\n", encoding="utf-8")
    env = {"QST_PASSWORD": "q", "CQG_OTP_SEED": SEED, "FIRSTOCK_PASSWORD": "f",
           "FIRSTOCK_API_KEY": "k", "FIRSTOCK_TOTP_SEED": SEED}
    loaded = load_service_file(copy, environ=env)
    assert list(loaded.sessions) == ["quotes", "orders", "nse"]
    globex = loaded.sessions["quotes"].schedule
    assert globex is not None and globex.describe().startswith("17:00-16:00 (+1 day)")
    assert loaded.sessions["nse"].schedule is not None
    assert loaded.settings.listen_port == 9464
