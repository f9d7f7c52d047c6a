"""The one-line summaries schedulers give the live progress view."""

from raytuner.schedulers import ASHAScheduler, FIFOScheduler, HyperbandScheduler


def test_asha_describes_how_many_trials_each_rung_holds():
    asha = ASHAScheduler(max_resource=9, reduction_factor=3)
    assert asha.describe() is None
    for i, value in enumerate([0.5, 0.4, 0.3]):
        asha.on_trial_add(str(i))
        asha.on_result(str(i), 1, value)
    asha.on_result("2", 2, 0.2)
    asha.on_result("2", 3, 0.1)
    assert asha.describe() == "rungs 1:3 3:1"


def test_hyperband_describes_its_open_bracket():
    hb = HyperbandScheduler(max_resource=9, reduction_factor=3)
    for i in range(2):
        hb.on_trial_add(str(i))
    hb.on_result("0", 1, 0.5)
    assert hb.describe() == "bracket s=2 round 1/3: 1/2 at milestone"


def test_fifo_has_nothing_to_say():
    assert FIFOScheduler().describe() is None
