"""The step engine: plans are data, the runner executes them and emits events, the journal
records what ran. Nothing here imports the UI."""

from ambient_tui.engine.plan import ApiCall, Phase, Plan, Step, StepState
from ambient_tui.engine.events import Event, EventKind

__all__ = ["ApiCall", "Phase", "Plan", "Step", "StepState", "Event", "EventKind"]
