"""The exposure model (report/exposure.py): the formula against brute-force enumeration
and an independent product form, known values, edge cases, fixes-to-target against
exhaustive search, the table's counting and ordering, and how figures are shown."""

from __future__ import annotations

from datetime import datetime, timezone
from fractions import Fraction
from itertools import combinations

import pytest

from ticketlint.report.commands import parse_sample
from ticketlint.report.exposure import (
    Failing,
    PopulationRecord,
    build_table,
    exposure,
    fixes_to_target,
    overall_exposure,
    parse_target,
    percent,
    rises,
    sample_size,
)


def brute_force(population: int, nonconforming: int, sample: int) -> Fraction:
    """Every sample of min(n, N) of N records, counted: records 0..k-1 are the bad ones."""
    n = min(sample, population)
    draws = list(combinations(range(population), n))
    hits = sum(1 for d in draws if any(i < nonconforming for i in d))
    return Fraction(hits, len(draws)) if n else Fraction(0)


def product_form(population: int, nonconforming: int, sample: int) -> Fraction:
    """1 - prod_{i<n} (N-k-i)/(N-i): drawing a good record n times in a row."""
    n = min(sample, population)
    none = Fraction(1)
    for i in range(n):
        none *= Fraction(max(population - nonconforming - i, 0), population - i)
    return 1 - none


SMALL = [(big_n, k, n) for big_n in range(9) for k in range(big_n + 1) for n in range(11)]


@pytest.mark.parametrize(("big_n", "k", "n"), SMALL)
def test_formula_equals_brute_force_enumeration(big_n: int, k: int, n: int) -> None:
    assert exposure(big_n, k, n) == brute_force(big_n, k, n)


@pytest.mark.parametrize(
    ("big_n", "k", "n"),
    [(100, 5, 25), (1_000, 3, 60), (250_000, 1_200, 60), (10**6, 10, 40), (10**7, 1, 25)],
)
def test_formula_is_exact_for_large_populations(big_n: int, k: int, n: int) -> None:
    assert exposure(big_n, k, n) == product_form(big_n, k, n)


@pytest.mark.parametrize(
    ("big_n", "k", "n", "expected"),
    [
        (100, 1, 25, Fraction(1, 4)),  # one bad record: n / N
        (60, 1, 25, Fraction(25, 60)),
        (10**6, 1, 25, Fraction(25, 10**6)),
        (100, 2, 25, 1 - Fraction(75 * 74, 100 * 99)),
    ],
)
def test_known_values(big_n: int, k: int, n: int, expected: Fraction) -> None:
    assert exposure(big_n, k, n) == expected


def test_n100_k5_n25_is_0_77075() -> None:
    """The issue's known value, to the digits it gives."""
    value = exposure(100, 5, 25)
    assert str(float(value)).startswith("0.77075")
    assert 1 - value == Fraction(75 * 74 * 73 * 72 * 71, 100 * 99 * 98 * 97 * 96)


@pytest.mark.parametrize(
    ("big_n", "k", "n", "expected"),
    [
        (100, 0, 25, Fraction(0)),  # k = 0
        (0, 0, 25, Fraction(0)),  # nothing to sample
        (100, 5, 0, Fraction(0)),  # no sample
        (100, 5, 96, Fraction(1)),  # n = N - k + 1
        (100, 5, 99, Fraction(1)),  # n > N - k + 1
        (100, 100, 1, Fraction(1)),  # every record bad
        (10, 2, 9, Fraction(1)),
        (10, 2, 8, 1 - Fraction(1, 45)),  # just under the edge: C(8,8)/C(10,8)
    ],
)
def test_edge_cases(big_n: int, k: int, n: int, expected: Fraction) -> None:
    assert exposure(big_n, k, n) == expected


@pytest.mark.parametrize(("big_n", "k", "n"), [(10, 2, 11), (10, 2, 50), (3, 1, 1000), (0, 0, 5)])
def test_a_sample_larger_than_the_population_is_capped(big_n: int, k: int, n: int) -> None:
    assert sample_size(big_n, n) == big_n
    assert exposure(big_n, k, n) == exposure(big_n, k, big_n)


@pytest.mark.parametrize(("big_n", "k", "n"), [(-1, 0, 1), (5, -1, 1), (5, 1, -1), (5, 6, 1)])
def test_impossible_inputs_are_refused(big_n: int, k: int, n: int) -> None:
    with pytest.raises(ValueError):
        exposure(big_n, k, n)


def exhaustive_fixes(big_n: int, k: int, n: int, target: Fraction) -> int:
    return next(m for m in range(k + 1) if product_form(big_n, k - m, n) < target)


FIX_CASES = [
    (big_n, k, n, target)
    for big_n in (1, 5, 12, 40, 100)
    for k in sorted({0, 1, 2, big_n // 3, big_n // 2, big_n})
    for n in (1, 3, 10, 25, 200)
    for target in (Fraction(1, 100), Fraction(1, 10), Fraction(1, 2), Fraction(1))
    if k <= big_n
]


@pytest.mark.parametrize(("big_n", "k", "n", "target"), FIX_CASES)
def test_fixes_to_target_equals_exhaustive_search(
    big_n: int, k: int, n: int, target: Fraction
) -> None:
    m = fixes_to_target(big_n, k, n, target)
    assert m == exhaustive_fixes(big_n, k, n, target)
    assert exposure(big_n, k - m, n) < target
    assert m == 0 or exposure(big_n, k - m + 1, n) >= target


@pytest.mark.parametrize("target", [Fraction(0), Fraction(-1, 10), Fraction(11, 10)])
def test_fixes_to_target_refuses_a_target_outside_0_1(target: Fraction) -> None:
    with pytest.raises(ValueError):
        fixes_to_target(10, 1, 5, target)


def test_overall_is_one_minus_the_product_of_the_complements() -> None:
    ps = [Fraction(1, 2), Fraction(1, 4), Fraction(0)]
    assert overall_exposure(ps) == 1 - Fraction(1, 2) * Fraction(3, 4)
    assert overall_exposure([]) == 0
    assert overall_exposure([Fraction(1), Fraction(1, 3)]) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.1", Fraction(1, 10)),
        ("10%", Fraction(1, 10)),
        ("1/10", Fraction(1, 10)),
        (" 5% ", Fraction(1, 20)),
        ("1", Fraction(1)),
        ("0.05", Fraction(1, 20)),
    ],
)
def test_parse_target(text: str, expected: Fraction) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize("text", ["0", "-0.1", "1.5", "150%", "ten", "1/0", ""])
def test_parse_target_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_target(text)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (Fraction(0), "0%"),
        (Fraction(1), "100%"),
        (Fraction(1, 10**6), "<0.1%"),
        (1 - Fraction(1, 10**6), ">99.9%"),
        (Fraction(1, 3), "33.3%"),
        (Fraction(77075, 100000), "77.1%"),
    ],
)
def test_percent_never_rounds_to_a_lie(value: Fraction, shown: str) -> None:
    assert percent(value) == shown


@pytest.mark.parametrize(
    ("text", "every", "per"),
    [
        ("30", 30, {}),
        ("change=40,incident=30", None, {"change": 40, "incident": 30}),
        ("20, change=40", 20, {"change": 40}),
    ],
)
def test_parse_sample(text: str, every: int | None, per: dict[str, int]) -> None:
    assert parse_sample(text) == (every, per)


@pytest.mark.parametrize("text", ["0", "chg=4", "change=x", "change=0", "=5", "abc"])
def test_parse_sample_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_sample(text)


# --- the table ---------------------------------------------------------------------------------

T = datetime(2026, 7, 1, tzinfo=timezone.utc)


def rec(
    key: str,
    process: str = "change",
    *,
    fail: tuple[tuple[str, str, str], ...] = (),
    waived: tuple[tuple[str, str], ...] = (),
    unknown: tuple[tuple[str, str], ...] = (),
    day: int = 0,
    group: str | None = None,
    assignee: str | None = None,
) -> PopulationRecord:
    return PopulationRecord(
        source="s",
        key=key,
        process=process,
        created_at=T.replace(day=1 + day),
        group=group,
        assignee=assignee,
        failing=tuple(Failing(c, cl, sev) for c, cl, sev in fail),
        waived=tuple(Failing(c, cl) for c, cl in waived),
        unknown=tuple(Failing(c, cl) for c, cl in unknown),
    )


def world() -> list[PopulationRecord]:
    good = [rec(f"C{i}") for i in range(20)]
    return [
        *good,
        rec("B1", fail=(("CHG006", "8.5.1.3", "medium"),), day=1, group="CAB", assignee="ann"),
        rec("B2", fail=(("CHG001", "8.5.1.3", "high"),), day=9, group="CAB", assignee="bob"),
        rec("B3", fail=(("CHG001", "8.5.1.3", "high"),), day=3, group="Net", assignee="cy"),
        rec(
            "B4",
            fail=(("CHG002", "8.5.1.2", "low"),),
            waived=(("CHG001", "8.5.1.3"),),
            day=2,
            group="CAB",
            assignee="ann",
        ),
        rec("W1", waived=(("CHG001", "8.5.1.3"),)),
        rec("U1", unknown=(("CHG006", "8.5.1.3"),)),
        rec("U2", unknown=(("CHG002", "8.5.1.2"),), waived=(("CHG006", "8.5.1.3"),)),
        rec("I1", "incident", fail=(("INC004", "8.6.1", "medium"),)),
        *[rec(f"I{i}", "incident") for i in range(2, 11)],
    ]


def test_table_counts_each_record_once_per_row() -> None:
    table = build_table(
        world(),
        samples={"change": 10, "default": 4},
        target=Fraction(1, 10),
        clause_processes={"8.5.1.3": ["change"], "8.5.1.2": ["change"], "8.6.1": ["incident"]},
        clause_titles={"8.5.1.3": "Assess"},
    )
    change = table.process("change")
    assert change is not None
    # 20 good + B1..B4 + W1 + U1 + U2
    assert (change.population, change.nonconforming, change.waived, change.unknown) == (27, 4, 2, 1)
    assert change.sample == 10
    assert change.exposure == exposure(27, 4, 10)
    assert change.pessimistic == exposure(27, 5, 10)
    assert change.fixes == fixes_to_target(27, 4, 10, Fraction(1, 10))
    incident = table.process("incident")
    assert incident is not None and (incident.population, incident.sample) == (10, 4)
    by_clause = {r.name: r for r in table.clauses}
    assert [r.name for r in table.clauses] == ["8.5.1.2", "8.5.1.3", "8.6.1"]
    # 8.5.1.3: B1, B2, B3 fail it; B4 only waived there; U2 waived there too; U1 unknown.
    c3 = by_clause["8.5.1.3"]
    assert (c3.nonconforming, c3.waived, c3.unknown, c3.title) == (3, 3, 1, "Assess")
    # 8.5.1.2: B4 fails it; U2 is unknown for it.
    c2 = by_clause["8.5.1.2"]
    assert (c2.nonconforming, c2.waived, c2.unknown) == (1, 0, 1)
    assert table.overall == overall_exposure([change.exposure, incident.exposure])


def test_fix_first_is_oldest_high_severity_first_grouped_by_group_and_assignee() -> None:
    table = build_table(world(), samples={"change": 27}, target=Fraction(1, 10))
    change = table.process("change")
    assert change is not None and change.fixes == 4  # a sample of all 27: every bad one
    assert [r.key for r in change.fix_first] == ["B3", "B2", "B1", "B4"]
    assert [(g, a, [r.key for r in rs]) for g, a, rs in change.fix_groups()] == [
        ("Net", "cy", ["B3"]),
        ("CAB", "bob", ["B2"]),
        ("CAB", "ann", ["B1", "B4"]),
    ]
    assert change.after_fixes == 0


def test_fix_first_holds_only_the_fixes_needed() -> None:
    big = [rec(f"G{i}") for i in range(1000)] + [
        rec(f"B{i}", fail=(("CHG001", "8.5.1.3", "high"),), day=i % 20) for i in range(8)
    ]
    table = build_table(big, samples={"change": 25}, target=Fraction(1, 10))
    change = table.process("change")
    assert change is not None
    assert change.fixes == fixes_to_target(1008, 8, 25, Fraction(1, 10))
    assert 0 < change.fixes < 8 and len(change.fix_first) == change.fixes
    assert change.after_fixes < Fraction(1, 10) <= exposure(1008, 8 - change.fixes + 1, 25)


def test_rises_names_the_processes_whose_exposure_went_up() -> None:
    before = build_table(world()[:-10], samples={})
    after = build_table(world(), samples={})
    up = rises(before, after)
    assert [r.process for r in up] == ["incident"]  # new in `after`: rose from 0
    assert up[0].line().startswith("incident: audit exposure 0% → ")
    assert rises(after, after) == []
    assert rises(after, before) == []
