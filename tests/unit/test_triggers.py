import math

import pytest

from mlcycle.errors import ConfigError
from mlcycle.triggers import Decision, Observation, TriggerController, TriggerPolicy, TriggerState, decide

pytestmark = pytest.mark.unit

# drift_windows: TriggerPolicy's default, 3
P = TriggerPolicy(
    min_accuracy=0.9, max_false_positive_rate=0.05, min_samples=100, new_rows=1000, schedule_s=86400, cooldown_s=600
)
IDLE = TriggerState(last_started=0.0)


@pytest.mark.parametrize(
    "state, obs, start, trigger, fragment",
    [
        (IDLE, Observation(now=1000), False, None, "no trigger"),
        (IDLE, Observation(now=1000, drifted_windows=2), False, None, "no trigger"),
        (IDLE, Observation(now=1000, drifted_windows=3), True, "drift", "3 consecutive drifted windows"),
        (
            IDLE,
            Observation(now=1000, online={"accuracy": 0.8}, labelled=99),
            False,
            None,
            "no trigger",
        ),  # too few labels
        (
            IDLE,
            Observation(now=1000, online={"accuracy": 0.8}, labelled=100),
            True,
            "accuracy",
            "online accuracy 0.8000 < 0.9",
        ),
        (
            IDLE,
            Observation(now=1000, online={"accuracy": 0.95, "false_positive_rate": 0.17}, labelled=500),
            True,
            "accuracy",
            "false-positive rate 0.1700 > 0.05",
        ),
        (IDLE, Observation(now=1000, new_rows=1000), True, "new_data", "1000 new labelled rows"),
        (IDLE, Observation(now=86400), True, "schedule", "86400 s since the last retrain"),
        (IDLE, Observation(now=100, drifted_windows=5), False, "drift", "cooldown (500 s left)"),
        (
            IDLE,
            Observation(now=100, manual="ops asked"),
            True,
            "manual",
            "requested: ops asked",
        ),  # manual skips the cooldown
        (
            TriggerState(running="drift"),
            Observation(now=1e6, drifted_windows=9),
            False,
            "drift",
            "a retrain (drift) is in progress",
        ),
        (
            TriggerState(running="drift"),
            Observation(now=1e6, manual="x"),
            False,
            "manual",
            "in progress",
        ),  # never two at once
        (
            TriggerState(fingerprints=("ab" * 32,)),
            Observation(now=1e6, drifted_windows=3, fingerprint="ab" * 32),
            False,
            "drift",
            "already retrained on data abababababab",
        ),
        # accuracy outranks drift when both hold: the evidence names the stronger reason
        (
            IDLE,
            Observation(now=1000, drifted_windows=4, online={"accuracy": 0.5}, labelled=300),
            True,
            "accuracy",
            "accuracy",
        ),
    ],
)
def test_decide(state, obs, start, trigger, fragment):
    d = decide(state, obs, P)
    assert (d.start, d.trigger) == (start, trigger)
    assert fragment in d.reason


def test_a_trigger_waits_for_enough_labelled_rows():
    policy = TriggerPolicy(drift_windows=1, min_rows=500, cooldown_s=0)
    waiting = decide(TriggerState(), Observation(now=10, drifted_windows=1, new_rows=499), policy)
    assert (waiting.start, waiting.trigger) == (False, "drift") and "waiting: 499 labelled rows < 500" in waiting.reason
    assert decide(TriggerState(), Observation(now=10, drifted_windows=1, new_rows=500), policy).start
    assert decide(TriggerState(), Observation(now=10, manual="now", new_rows=0), policy).start


def test_bad_policies_are_refused():
    from mlcycle.errors import ConfigError

    for bad in ({"drift_windows": 0}, {"min_samples": 0}, {"cooldown_s": -1}, {"schedule_s": 0}):
        with pytest.raises(ConfigError, match="trigger policy|schedule_s"):
            TriggerPolicy(**bad)


def test_a_trigger_storm_starts_exactly_one_retrain_per_cooldown(tmp_path):
    launched: list[Decision] = []
    ctl = TriggerController(tmp_path / "state.json", TriggerPolicy(drift_windows=1, cooldown_s=100), launched.append)
    for t in range(0, 350, 5):  # drift in every window, 70 windows
        ctl.observe(Observation(now=float(t), drifted_windows=1, fingerprint=f"{t:064x}"))
        if launched and ctl.state.running and t % 50 == 0:
            ctl.done()  # each retrain ends a little later
    assert [d.trigger for d in launched] == ["drift"] * 4  # at t = 0, 100, 200, 300
    assert ctl.state.retrains == 4


def test_state_survives_a_restart_and_says_so(tmp_path):
    path = tmp_path / "state.json"
    ctl = TriggerController(path, TriggerPolicy(drift_windows=1, cooldown_s=1000), lambda d: None)
    assert ctl.observe(Observation(now=10.0, drifted_windows=1, fingerprint="f" * 64)).start
    again = TriggerController(path, TriggerPolicy(drift_windows=1, cooldown_s=1000), lambda d: None)
    assert again.restarted and again.state.running is None  # the retrain's process is gone, and that is said
    assert again.state.last_started == 10.0 and again.state.fingerprints == ("f" * 64,)
    d = again.observe(Observation(now=20.0, drifted_windows=1, fingerprint="e" * 64))
    assert not d.start and "cooldown" in d.reason  # the cooldown was not forgotten
    assert not TriggerController(tmp_path / "fresh.json", TriggerPolicy(), lambda d: None).restarted
    assert TriggerState().last_started == -math.inf


def test_a_reader_sees_the_last_start_the_policy_and_a_retrain_in_flight(tmp_path):
    from mlcycle.triggers import cooldown_left, read_state

    path = tmp_path / "state.json"
    assert read_state(path) is None
    policy = TriggerPolicy(drift_windows=1, cooldown_s=1000)
    ctl = TriggerController(path, policy, lambda d: None)
    ctl.observe(Observation(now=10.0, drifted_windows=1, fingerprint="f" * 64))
    state, saved_policy, last = read_state(path)
    assert state.running == "drift" and state.last_trigger == "drift"  # a reader does not clear it
    assert "1 consecutive drifted windows" in state.last_reason and state.last_evidence == {
        "drifted_windows": 1,
        "fingerprint": "f" * 64,
    }
    assert saved_policy == policy and cooldown_left(state, saved_policy, now=110.0) == 900.0
    assert last["start"] is True and last["trigger"] == "drift"
    ctl.done()
    ctl.observe(Observation(now=20.0, drifted_windows=1, fingerprint="e" * 64))  # held back: cooldown
    state, _, last = read_state(path)
    assert state.running is None and last["start"] is False and "cooldown" in last["reason"]
    assert state.last_trigger == "drift" and state.last_started == 10.0
    assert cooldown_left(TriggerState(), policy, now=0.0) == 0.0


def test_trigger_evidence_parameter_is_bounded_and_checked():
    from mlcycle.triggers import MAX_EVIDENCE_BYTES, evidence_param, parse_evidence

    small = {"drifted_windows": 3, "fingerprint": "f" * 64}
    assert parse_evidence(evidence_param(small)) == small and parse_evidence("") == {}
    big = {**small, "features": ["x" * 100] * 200}  # 20 kB
    cut = parse_evidence(evidence_param(big))
    assert cut == {**small, "truncated": True}
    many = {f"feature_{i}": i for i in range(2000)}  # scalars only, still too large: its names, some of them
    text = evidence_param(many)
    assert len(text.encode()) <= MAX_EVIDENCE_BYTES and parse_evidence(text)["truncated"] is True
    for bad, why in (("[1]", "must be a JSON object"), ("{", "not JSON"), ("{}" + " " * 5000, "at most 4096")):
        with pytest.raises(ConfigError, match=why):
            parse_evidence(bad)
