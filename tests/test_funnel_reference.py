"""The funnel computation against a brute-force reference: per actor, walk the events.

Small random event logs (hypothesis) with few names, few actors and coarse times, so equal
timestamps, repeated steps (A -> B -> A), exclusions and window edges happen often; arrival
order (the event id) is shuffled against time, as events arriving out of order would be.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.funnels import compute

NAMES = "ABCX"


def _walk(evs, steps, order, window, excl, start, end):  # noqa: C901 (a plain walk, on purpose)
    """One actor's best attempt: (steps reached, index of the attempt's start event, the
    matched events' times). `evs` is a list of (ts, seq, name, code) in time order."""
    funnel = set(steps)
    best = (0, None, [])
    for i, (t0, _, name, _) in enumerate(evs):
        if not start <= t0 < end:
            continue
        if order == "any":
            if name not in funnel:
                continue
        elif name != steps[0]:
            continue
        matched = []
        if order == "any":
            for step in steps:
                j = next(
                    (
                        j
                        for j in range(i, len(evs))
                        if evs[j][2] == step and evs[j][0] - t0 <= window
                    ),
                    None,
                )
                if j is None or any(evs[x][2] in excl for x in range(i + 1, j)):
                    break
                matched.append(evs[j][0])
        else:
            matched, cur = [t0], i
            for step in steps[1:]:
                if order == "ordered":
                    j = next((j for j in range(cur + 1, len(evs)) if evs[j][2] == step), None)
                else:  # strict: the very next funnel event must be this step
                    j = next((j for j in range(cur + 1, len(evs)) if evs[j][2] in funnel), None)
                    if j is not None and evs[j][2] != step:
                        j = None
                if j is None or evs[j][0] - t0 > window:
                    break
                if any(evs[x][2] in excl for x in range(cur + 1, j)):
                    break
                matched.append(evs[j][0])
                cur = j
        if len(matched) > best[0]:
            best = (len(matched), i, matched)
    return best


def reference(log, steps, order, window, excl, start, end):
    by_actor: dict[int, list] = {}
    for actor, ts, seq, name, code in log:
        by_actor.setdefault(actor, []).append((ts, seq, name, code))
    out = {}
    for actor, evs in by_actor.items():
        evs.sort()
        reached, i, times = _walk(evs, steps, order, window, excl, start, end)
        if reached:
            out[actor] = (reached, evs[i][1], evs[i][3], times)
    return out


def vectorised(log, steps, order, window, excl, start, end):
    actor = np.array([e[0] for e in log], dtype=np.int64)
    ts = np.array([e[1] for e in log], dtype=np.int64)
    seq = np.array([e[2] for e in log], dtype=np.int64)
    code = np.array([e[4] for e in log], dtype=np.int64)
    mask = np.zeros(len(log), dtype=np.int64)
    for n, (_, _, _, name, _) in enumerate(log):
        for k, step in enumerate(steps):
            if name == step:
                mask[n] |= 1 << k
        if name in excl:
            mask[n] |= compute.EXCLUSION_BIT
    ev = compute.Events(actor, ts, seq, mask, code)
    p = compute.run(ev, len(steps), order, window, start, end)
    seq_sorted = ev.sorted().seq
    out = {}
    for n in range(len(p.actor)):
        r = int(p.reached[n])
        times = [int(t) for t in p.times[n]]
        matched = times[:r] if order != "any" else times[:r]
        out[int(p.actor[n])] = (r, int(seq_sorted[p.entry[n]]), int(p.code[n]), matched)
    return out, p


event = st.tuples(
    st.integers(0, 3),  # actor
    st.integers(0, 12),  # time: coarse, so ties are common
    st.sampled_from(NAMES),
    st.integers(0, 2),  # breakdown code on the event
)


@st.composite
def cases(draw):
    raw = draw(st.lists(event, max_size=30))
    seqs = draw(st.permutations(list(range(len(raw)))))  # arrival order unrelated to time
    log = [(a, t, s, n, c) for (a, t, n, c), s in zip(raw, seqs, strict=True)]
    steps = draw(st.lists(st.sampled_from("ABC"), min_size=2, max_size=4))
    order = draw(st.sampled_from(["ordered", "strict", "any"]))
    window = draw(st.integers(0, 8))
    excl = set(draw(st.lists(st.sampled_from("XC"), max_size=1)))
    start = draw(st.integers(0, 6))
    end = draw(st.integers(start, 13))
    return log, steps, order, window, excl, start, end


@settings(max_examples=600, deadline=None)
@given(cases())
def test_vectorised_funnel_matches_the_per_customer_walk(case):
    log, steps, order, window, excl, start, end = case
    want = reference(*case)
    got, p = vectorised(*case)
    assert got == want
    n = len(steps)
    assert compute.entered(p.reached, n) == [
        sum(1 for v in want.values() if v[0] > k) for k in range(n)
    ]


@settings(max_examples=300, deadline=None)
@given(cases())
def test_breakdown_counts_match_the_walk(case):
    """Per breakdown value (the value on the attempt's first event): entered per step."""
    _, steps, *_ = case
    want = reference(*case)
    _, p = vectorised(*case)
    n = len(steps)
    for code in range(3):
        expect = [sum(1 for v in want.values() if v[2] == code and v[0] > k) for k in range(n)]
        assert compute.entered(p.reached[p.code == code], n) == expect


def _run(log, steps, order="ordered", window=100, excl=(), start=0, end=1000):
    return reference(log, steps, order, window, set(excl), start, end), vectorised(
        log, steps, order, window, set(excl), start, end
    )[0]


def test_equal_timestamps_are_taken_in_stored_order():
    # B stored before A at the same instant: A -> B needs a B after A.
    want, got = _run([(1, 5, 1, "B", 0), (1, 5, 2, "A", 0)], ["A", "B"])
    assert got == want == {1: (1, 2, 0, [5])}
    want, got = _run([(1, 5, 1, "A", 0), (1, 5, 2, "B", 0)], ["A", "B"])
    assert got[1][0] == 2


def test_a_repeated_step_needs_a_second_event():
    log = [(1, 1, 1, "A", 0), (1, 2, 2, "B", 0)]
    assert _run(log, ["A", "B", "A"])[1][1][0] == 2
    log.append((1, 3, 3, "A", 0))
    want, got = _run(log, ["A", "B", "A"])
    assert got == want
    assert got[1][0] == 3


def test_events_arriving_out_of_order_are_ordered_by_time():
    # B arrived (and was stored) first, but happened after A.
    want, got = _run([(1, 9, 1, "B", 0), (1, 3, 2, "A", 0)], ["A", "B"])
    assert got == want
    assert got[1][0] == 2


def test_strict_order_is_broken_by_another_funnel_event():
    log = [(1, 1, 1, "A", 0), (1, 2, 2, "C", 0), (1, 3, 3, "B", 0)]
    assert _run(log, ["A", "B", "C"], "strict")[1][1][0] == 1
    assert _run(log, ["A", "B", "C"], "ordered")[1][1][0] == 2
    assert _run(log, ["A", "B", "C"], "any")[1][1][0] == 3


def test_an_exclusion_between_steps_ends_the_attempt():
    log = [(1, 1, 1, "A", 0), (1, 2, 2, "X", 0), (1, 3, 3, "B", 0)]
    assert _run(log, ["A", "B"], excl=["X"])[1][1][0] == 1
    assert _run(log, ["A", "B"], "any", excl=["X"])[1][1][0] == 1
    assert _run(log, ["B", "A"], "any", excl=["X"])[1][1][0] == 1
    log.append((1, 4, 4, "A", 0))
    log.append((1, 5, 5, "B", 0))
    assert _run(log, ["A", "B"], excl=["X"])[1][1][0] == 2


def test_window_counts_from_the_first_step():
    log = [(1, 0, 1, "A", 0), (1, 5, 2, "B", 0), (1, 11, 3, "C", 0)]
    assert _run(log, ["A", "B", "C"], window=10)[1][1][0] == 2
    assert _run(log, ["A", "B", "C"], window=11)[1][1][0] == 3


def test_entries_must_start_inside_the_date_range():
    log = [(1, 0, 1, "A", 0), (1, 5, 2, "B", 0)]
    assert _run(log, ["A", "B"], start=1)[1] == {}
    assert Counter(v[0] for v in _run(log, ["A", "B"], start=0)[1].values()) == {2: 1}
