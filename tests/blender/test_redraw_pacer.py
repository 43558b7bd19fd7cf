"""redraw.Pacer: a job's news no more often than Blender can draw it (times are made up)."""

from dst3d_addon.blender.redraw import Pacer


def drive(pacer: Pacer, ticks: list[float]) -> list[float]:
    """The ticks on which a step is shown, showing one whenever the pacer allows."""
    shown = []
    for now in ticks:
        if pacer.ready(now):
            pacer.shown(now)
            shown.append(now)
    return shown


def test_every_tick_shows_when_drawing_costs_nothing():
    ticks = [0.2 * i for i in range(10)]
    assert drive(Pacer(), ticks) == ticks


def test_a_slow_redraw_waits_as_long_again():
    # Ticks every 0.2 s; showing at 0.4 makes the next tick 2 s late (a 2 s redraw at 2.6): the
    # next step shows only 2 s after that tick.
    pacer = Pacer()
    assert drive(pacer, [0.0, 0.2, 0.4]) == [0.0, 0.2, 0.4]
    assert not pacer.ready(2.6)  # late by 2.0 s: free again from 4.6
    assert not pacer.ready(2.8) and not pacer.ready(4.4)
    assert pacer.ready(4.6)


def test_without_shown_steps_it_never_waits():
    pacer = Pacer()
    assert all(pacer.ready(t) for t in (0.0, 0.2, 3.0, 3.2))
