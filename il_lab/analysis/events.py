"""Reading TensorBoard event files back: every point of every scalar tag.

TensorBoard's ``EventAccumulator`` keeps at most 10,000 points per scalar tag by default, a
reservoir sample of a longer run; checks (``@first``/``@last``) and learning curves must see the
run itself, so everything that reads events goes through here with sampling off.
"""

from pathlib import Path

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator


def read_scalars(events_dir: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{tag: (steps, values)}`` for every scalar tag in ``events_dir``, in logged order.

    An absent folder reads as no tags.
    """
    events_dir = Path(events_dir)
    if not events_dir.is_dir():
        return {}
    accumulator = EventAccumulator(str(events_dir), size_guidance={SCALARS: 0})  # 0: keep all
    accumulator.Reload()
    scalars = {}
    for tag in accumulator.Tags()[SCALARS]:
        events = accumulator.Scalars(tag)
        scalars[tag] = (
            np.array([e.step for e in events], dtype=np.int64),
            np.array([e.value for e in events], dtype=np.float64),
        )
    return scalars


def read_timed_scalar(events_dir: str | Path, tag: str) -> tuple[np.ndarray, ...]:
    """``(steps, wall_times, values)`` of one scalar tag, every point in logged order; wall
    times in seconds since the epoch, as TensorBoard stores them. Empty arrays if absent."""
    events_dir = Path(events_dir)
    accumulator = EventAccumulator(str(events_dir), size_guidance={SCALARS: 0})
    if events_dir.is_dir():
        accumulator.Reload()
    if tag not in accumulator.Tags()[SCALARS]:
        return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)
    events = accumulator.Scalars(tag)
    return (
        np.array([e.step for e in events], dtype=np.int64),
        np.array([e.wall_time for e in events], dtype=np.float64),
        np.array([e.value for e in events], dtype=np.float64),
    )
