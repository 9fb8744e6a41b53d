"""What the rest of brokergate knows of a broker: one ``Broker`` descriptor per broker folder.

Each broker folder (``brokergate.machines.<name>``) ends in ``broker.py``, whose ``BROKER`` says,
in one object, everything the engine, the CLI, the demo and the diagram tooling need: the
configuration type, how a session's model is built, what the broker's sessions share with each
other (``SharedResource``), what the model can do beyond logging in (the capability Protocols
below), where its CLI part and its simulator live, and the words its diagrams use. The registry
(``brokergate.machines.brokers``) lists the folders; nothing outside a broker's folder names it.

Pure, like the rest of ``machines``: a descriptor holds functions and data, never a socket or a
clock. What needs I/O (the simulator, the CLI's prompts) is named by module and imported only by
whoever runs it, so that importing the library never imports a simulator.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

from brokergate.machines._config import CredentialProvider, SessionSettings
from brokergate.machines._policy import PolicyRow
from brokergate.machines._sansio import HttpAnswered, HttpRequest, LoginProtocol, StoredToken
from brokergate.machines._secret import Secret

ConfigT = TypeVar("ConfigT", bound=SessionSettings)


# --- what a model can do beyond logging in ----------------------------------------------------
#
# The engine asks a model for these once, when the session starts (``isinstance`` against the
# Protocol), and a test holds each broker's model to the capabilities its descriptor declares.


@runtime_checkable
class MatchesRequests(Protocol):
    """Application requests carry an id the broker echoes in its answer (QST)."""

    #: Application requests are numbered from here (the session's own requests use lower ids).
    first_request_id: ClassVar[int]

    def encode_request(self, message: Any, request_id: int) -> bytes | str:
        """The frame for ``message`` numbered ``request_id`` (``ValueError``: not a request)."""


@runtime_checkable
class SendsRaw(Protocol):
    """The application writes its own messages and matches the answers itself (CQG)."""

    def encode_send(self, message: Any) -> bytes | str:
        """The frame for ``message`` (``ValueError``: not one the application may send)."""


@runtime_checkable
class CallAnswer(Protocol):
    """A REST call's answer, read by the model."""

    ok: bool
    data: Any
    status: int | None
    name: str | None
    detail: str
    token_refused: bool


@runtime_checkable
class CallsRest(Protocol):
    """The application calls the broker's REST endpoints with the session's token (Firstock)."""

    #: Grows with each token the session obtains: a call made with an older one may be retried.
    token_generation: int

    def application_request(self, endpoint: str,
                            body: Mapping[str, Any] | None) -> tuple[HttpRequest, int]:
        """The request for ``endpoint`` with the session's token, and that token's generation
        (``ValueError``: a call the session will not make)."""

    def read_application_answer(self, event: HttpAnswered, generation: int) -> CallAnswer:
        """What the broker answered to an application call."""


@runtime_checkable
class NeedsCredentials(Protocol):
    """The login asks the application for a credential when it needs one (a fresh access
    token, a one-time password): the engine runs the provider the model names."""

    def credential_source(self, kind: str) -> CredentialProvider | None:
        """The provider of credential ``kind`` (None: none is configured)."""


@runtime_checkable
class KeepsTokens(Protocol):
    """The broker's session outlives the connection (a day-long token): the model saves its
    token in the gateway's token store (``SaveToken``) and a later session may reuse it."""

    def stored_token_is_current(self) -> bool:
        """Whether the token a previous session kept may still be used today."""


@runtime_checkable
class HandsOver(Protocol):
    """In a fleet, the session leaves the next holder of its account's lease what that one needs
    to carry on (CQG: the session to restore, and the user's logon history for the logon
    spacing and daily cap). The engine keeps it with the lease; the successor's model takes it
    in from ``LeaseGranted.handover`` (``LoginModel.adopt_lease``). It may hold secrets (a session
    token), which the model has registered with ``keep_secret``."""

    def handover(self) -> dict[str, Any] | None:
        """What this session would leave its successor now (plain JSON values: the keys are
        the broker's, documented with its model), or None when there is nothing."""


#: Every capability a descriptor may declare, by the name it declares it with.
CAPABILITIES: dict[str, type[Any]] = {
    "requests": MatchesRequests,
    "raw_send": SendsRaw,
    "rest_calls": CallsRest,
    "credentials": NeedsCredentials,
    "token_store": KeepsTokens,
    "handover": HandsOver,
}


# --- what sessions share ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SharedResource(Generic[ConfigT]):
    """Something every session of one broker shares with the others of the same ``key`` in a
    gateway: a user's CQG logon history, a user's Firstock socket slots.

    The gateway makes one with ``create()`` the first time a session's ``key(config)`` asks for
    it, and gives it to the model factory under ``name``.
    """

    name: str
    #: Whose it is, from a session's configuration (for example, the user at a host).
    key: Callable[[ConfigT], Hashable]
    create: Callable[[], object]
    #: What it is for, in a sentence (docs/architecture.md lists them).
    purpose: str = ""


@dataclass(frozen=True, slots=True)
class ModelInputs:
    """What a model is built from besides its configuration, supplied by the gateway."""

    #: The session's random numbers (backoff jitter); None: the module's shared generator.
    rng: random.Random | None
    #: Monotonic seconds: trio's clock under the engine.
    clock: Callable[[], float]
    #: Now, as an aware UTC datetime: what TOTP windows and a token's day are read from.
    wall: Callable[[], datetime]
    #: The shared resources the descriptor declared, by name.
    resources: Mapping[str, object]
    #: The token a previous session kept for this user (``token_user``), if any.
    stored: StoredToken | None = None


# --- the parts that live outside the library -------------------------------------------------


class CommandLineError(ValueError):
    """A mistake in a broker's own command-line options (options that exclude each other, one
    of two missing): ``brokergate`` prints the message and exits 2. The message never repeats
    a secret."""


class SecretSource(Protocol):
    """How a broker's CLI part reads secrets: never from the command line (the CLI supplies
    this; it refuses secret-looking options before argparse sees them)."""

    def password(self, args: Any) -> Secret:
        """The password from ``--password-file``, ``--password-env`` or a prompt."""

    def from_env(self, variable: str, what: str) -> Secret:
        """A secret from the environment variable ``variable`` (``what`` names it in errors)."""


class BrokerCli(Protocol):
    """A broker's part of the ``brokergate`` command line (``Broker.cli()``)."""

    #: One line for ``brokergate login --help``.
    help: str

    def add_arguments(self, parser: Any) -> None:
        """Add the broker's own options to its ``login`` subcommand's ``argparse`` parser."""

    def config(self, args: Any, secrets: SecretSource) -> SessionSettings:
        """The session configuration from the parsed arguments (mistakes in them raise
        ``CommandLineError``, a ``ValueError``, with a message that never repeats a secret).

        The options every login has (timeouts, ``--ca-file``, ``--max-attempts``) are the
        engine's: it sets them on the configuration returned here."""

    async def after_login(self, session: Any, args: Any) -> Mapping[str, Any]:
        """What the broker's options ask for once logged in (QST: ``--translate``), as fields
        of the result line; empty when nothing was asked."""


class SimulatorKit(Protocol):
    """A broker's simulator, as ``brokergate simulate`` and ``brokergate demo`` use it
    (``Broker.simulator()``; the module lives in ``brokergate.simulators.<name>``)."""

    #: One line for ``brokergate simulate --help``.
    help: str

    def running(self, host: str, port: int) -> Any:
        """An async context manager: the simulator with its demo accounts, listening on
        ``host:port`` (0: any free port); it yields the lines that tell a person how to use it
        (its URLs, its accounts and their demo secrets)."""

    def demo(self) -> Any:
        """The broker's part of ``brokergate demo``: a ``brokergate.engine.demo.BrokerDemo``
        (its scenarios, and how to stage its simulators for them)."""


# --- the descriptor ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiagramWording:
    """The words a broker's diagram uses: its title, and what each trigger means."""

    title: str
    triggers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Broker(Generic[ConfigT]):
    """Everything brokergate knows of one broker, declared in its folder's ``broker.py``."""

    #: The key everywhere: audit events, CLI subcommands, diagram files, token store entries.
    name: str
    #: The name as people write it ("QST", "CQG", "Firstock"), for messages.
    title: str
    #: The broker's folder (``brokergate.machines.<name>``).
    package: str
    config_type: type[ConfigT]
    #: A session's model, from its configuration and what the gateway supplies.
    create_model: Callable[[ConfigT, ModelInputs], LoginProtocol]
    #: The states and transitions of its machine, as ``build_machine`` takes them.
    states: Sequence[Mapping[str, Any]]
    transitions: Sequence[Mapping[str, Any]]
    #: The rows of its policy table, as a reviewer reads them.
    policy_rows: Callable[[], Sequence[PolicyRow]]
    diagram: DiagramWording
    #: What the broker's sessions share with one another in a gateway.
    resources: tuple[SharedResource[ConfigT], ...] = ()
    #: The capabilities its model has beyond logging in (keys of ``CAPABILITIES``).
    capabilities: frozenset[str] = frozenset()
    #: For ``token_store`` brokers: whose stored token a new session may reuse.
    token_user: Callable[[ConfigT], str | None] | None = None
    #: The account as a fleet of processes shares it: what one lease or one login flight
    #: covers (a user at a server). None: the model's ``account``.
    fleet_account: Callable[[ConfigT], str] | None = None
    #: A second login of the same user displaces the first, so a fleet runs one session per
    #: account: a lease (the others are standbys). Its machine has the ``lease_lost`` edges
    #: (``fleet_edges(held=...)``). Otherwise the sessions of a fleet share the account, and one
    #: login (a login flight) serves them all.
    displaces: bool = False
    #: The module with the broker's CLI part (``CLI``: a ``BrokerCli``), imported by the CLI.
    cli_module: str = ""
    #: The module with the broker's simulator kit (``KIT``), imported only where one runs.
    simulator_module: str = ""

    def __repr__(self) -> str:
        return f"<Broker {self.name}>"

    def has(self, capability: str) -> bool:
        return capability in self.capabilities

    def cli(self) -> BrokerCli:
        """The broker's CLI part (imports its module)."""
        part: BrokerCli = importlib.import_module(self.cli_module).CLI
        return part

    def simulator(self) -> SimulatorKit:
        """The broker's simulator kit (imports its module: simulators are not library code)."""
        kit: SimulatorKit = importlib.import_module(self.simulator_module).KIT
        return kit

    def shared(self, config: ConfigT) -> list[tuple[str, Hashable, Callable[[], object]]]:
        """The shared resources ``config``'s session needs: (name, key, create) each."""
        return [(r.name, r.key(config), r.create) for r in self.resources]

    def check(self) -> list[str]:
        """What is wrong with this descriptor (tests run it on every registered broker)."""
        problems = [f"unknown capability {c!r}" for c in self.capabilities if c not in CAPABILITIES]
        if ("token_store" in self.capabilities) != (self.token_user is not None):
            problems.append("token_user goes with the token_store capability, and only with it")
        names = [r.name for r in self.resources]
        if len(set(names)) != len(names):
            problems.append(f"shared resources named twice: {names}")
        triggers = {row["trigger"] for row in self.transitions}
        missing = {"standby", "lease_granted", "shared_failure"} - triggers
        if missing:
            problems.append(f"no fleet edges ({', '.join(sorted(missing))}): add fleet_edges")
        if self.displaces != ("lease_lost" in triggers):
            problems.append("lease_lost edges go with displaces=True, and only with it")
        return problems
