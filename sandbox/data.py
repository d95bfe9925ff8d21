"""The sandbox's seeded data set: people, groups, and both systems' records.

``Dataset(seed, size)`` is cheap to build: at start it draws only each record's
scenario summary (type, updated time, links) into compact arrays; the full Jira issue
dict or ServiceNow row is built on demand from the record's own seeded RNG (see
:mod:`ticketlint.sandbox.scenario`) and overlaid with whatever writes and mutations happened since.
The same seed, size and anchor give the same records, byte for byte.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from ticketlint.sandbox.scenario import N_GROUPS, N_USERS

FIRST = [
    "Mia",
    "Noah",
    "Aiko",
    "Liam",
    "Priya",
    "Mateo",
    "Sofia",
    "Lukas",
    "Chloe",
    "Arjun",
    "Emma",
    "Kenji",
    "Olivia",
    "Rafael",
    "Zoe",
    "Hannah",
    "Omar",
    "Ingrid",
    "Tariq",
    "Lucia",
    "Felix",
    "Ama",
    "Jonas",
    "Mei",
    "Daniel",
    "Sara",
    "Ivan",
    "Nora",
    "Diego",
    "Freya",
]
LAST = [
    "Krystof",
    "Tanaka",
    "Okafor",
    "Schmidt",
    "Iyer",
    "Garcia",
    "Dubois",
    "Novak",
    "Smith",
    "Rossi",
    "Nakamura",
    "Haddad",
    "Larsen",
    "Costa",
    "Kowalski",
    "Mensah",
    "Chen",
    "Patel",
    "Silva",
    "Berg",
]
ZONES = [
    "America/Denver",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Australia/Sydney",
    "America/New_York",
    "Europe/London",
    "Asia/Tokyo",
    "UTC",
]
GROUPS = [
    "Service Desk",
    "Network Operations",
    "Database Administration",
    "Platform Engineering",
    "Identity and Access",
    "End User Computing",
    "Payments Team",
    "Change Advisory Board",
    "Security Operations",
    "Middleware",
    "Storage",
    "Cloud Infrastructure",
]
SERVICES = [
    "Payments API",
    "Customer Portal",
    "Email",
    "VPN",
    "Identity Provider",
    "Data Warehouse",
    "HR System",
    "Order Service",
    "Mobile Backend",
    "Monitoring",
    "Wiki",
    "File Shares",
    "Billing",
    "Search",
    "Print Services",
    "CRM",
    "Build Pipeline",
    "DNS",
    "Backup",
    "ERP",
]


@dataclass(frozen=True)
class User:
    index: int
    name: str
    email: str
    zone: str
    account_id: str
    sys_id: str
    user_name: str


@dataclass(frozen=True)
class Group:
    index: int
    name: str
    team_id: str
    sys_id: str


def hexid(*parts: object, n: int = 32) -> str:
    """A stable pseudo-random hex id for ``parts`` (ServiceNow sys_ids, Jira account ids)."""
    return hashlib.md5(":".join(map(str, parts)).encode()).hexdigest()[:n]


def default_anchor() -> int:
    """Now, to the second, in epoch milliseconds: records are laid out relative to it so
    that "open for 2 hours" is true when a check runs right after the sandbox starts."""
    return int(time.time()) * 1000


def people(seed: int) -> tuple[list[User], list[Group]]:
    rng = random.Random(f"{seed}:people")
    users = []
    used: set[str] = set()
    for i in range(N_USERS):
        if i == 0:
            name = "Ticketlint Service"
            login = "svc_ticketlint"
        else:
            while True:
                name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
                if name not in used:
                    break
            login = name.lower().replace(" ", ".")
        used.add(name)
        zone = ZONES[(seed + i) % len(ZONES)] if i else ZONES[seed % len(ZONES)]
        account = hexid(seed, "acct", i, n=24) if i % 3 else f"712020:{_uuid(seed, i)}"
        email = "ticketlint@example.com" if i == 0 else f"{login}@example.com"
        users.append(User(i, name, email, zone, account, hexid(seed, "sys_user", i), login))
    groups = [
        Group(i, GROUPS[i % len(GROUPS)], _uuid(seed, f"team{i}"), hexid(seed, "sys_user_group", i))
        for i in range(N_GROUPS)
    ]
    return users, groups


def _uuid(*parts: object) -> str:
    h = hexid(*parts)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def utc_text(ms: int) -> str:
    """ServiceNow's raw datetime: ``yyyy-MM-dd HH:mm:ss`` in UTC."""
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def parse_utc_text(text: str) -> int:
    return int(
        datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp() * 1000
    )


def jira_text(ms: int, zone: ZoneInfo) -> str:
    """Jira's timestamp in a user's zone: ``2026-03-02T14:10:05.123-0700``."""
    dt = datetime.fromtimestamp(ms / 1000, zone)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}" + dt.strftime("%z")


class Dataset:
    """Both systems' data for one seed. ``size`` is the approximate record count across
    both systems (Jira issues + ServiceNow incident/change/problem/request/CI rows)."""

    def __init__(
        self,
        seed: int = 1,
        size: int = 600,
        *,
        anchor: int | None = None,
        hidden_share: float = 0.01,
    ) -> None:
        from ticketlint.sandbox.jira_data import JiraData
        from ticketlint.sandbox.servicenow_data import ServiceNowData

        self.seed, self.size = seed, size
        self.anchor = anchor if anchor is not None else default_anchor()
        self.users, self.groups = people(seed)
        self.base_url = "http://127.0.0.1"
        jira_n = max(20, int(size * 0.45))
        self.jira = JiraData(self, jira_n)
        self.servicenow = ServiceNowData(self, max(20, size - jira_n), hidden_share=hidden_share)

    def clock(self) -> int:
        """The time a write happens at, in epoch ms: the anchor plus real elapsed time,
        never earlier than anything already stored (so bumps always sort last)."""
        return max(self.anchor, int(time.time() * 1000))
