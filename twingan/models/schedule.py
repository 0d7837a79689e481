"""Progressive growing as a pure function of images seen, so resume needs nothing but a count.

The run is a list of phases: stable at the start resolution, then for each doubling a fade-in
phase (alpha rising linearly from 0 to 1) and a stable phase, each `phase_images` long, as in
PGGAN and the original Twin-GAN. Images are counted across all processes of a run.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    """One stretch of training at a fixed resolution, fading in or stable."""

    resolution: int
    fading: bool
    start: int
    length: int

    @classmethod
    def fixed(cls, resolution: int, images: int) -> Phase:
        """A whole run at one size, never fading: the single phase of a model that does not grow
        (CycleGAN), so the loop needs no second notion of "where training is"."""
        return cls(resolution, False, 0, images)

    @property
    def end(self) -> int:
        return self.start + self.length

    @property
    def name(self) -> str:
        return f"{'fade' if self.fading else 'stable'} {self.resolution}px"

    def alpha(self, images_seen: int) -> float:
        """Weight of the new resolution: rises 0 -> 1 across a fade phase, 1 when stable."""
        if not self.fading:
            return 1.0
        return min(max((images_seen - self.start) / self.length, 0.0), 1.0)


def build_phases(start_resolution: int, final_resolution: int, phase_images: int,
                 final_phase_images: int | None = None) -> list[Phase]:
    """All phases of a run, in order; raises ValueError for resolutions that cannot grow.

    `final_phase_images` sets the length of the last, stable phase (default: phase_images)."""
    for name, value in (("start_resolution", start_resolution), ("final_resolution", final_resolution)):
        if value < 4 or value & (value - 1):
            raise ValueError(f"{name} must be a power of two >= 4, got {value}")
    if start_resolution > final_resolution:
        raise ValueError(f"start_resolution {start_resolution} is above the final resolution {final_resolution}")
    phases = [Phase(start_resolution, False, 0, phase_images)]
    resolution = start_resolution * 2
    while resolution <= final_resolution:
        for fading in (True, False):
            phases.append(Phase(resolution, fading, phases[-1].end, phase_images))
        resolution *= 2
    if final_phase_images is not None:
        last = phases[-1]
        phases[-1] = Phase(last.resolution, last.fading, last.start, final_phase_images)
    return phases


def phase_at(phases: list[Phase], images_seen: int) -> Phase:
    """The phase that `images_seen` falls in (the last one once the schedule is complete)."""
    for phase in phases:
        if images_seen < phase.end:
            return phase
    return phases[-1]


def lr_factor(images_seen: int, decay_start: int | None, decay_images: int) -> float:
    """The learning rate's multiple at `images_seen`: 1, then linear to 0 over `decay_images` from
    `decay_start` (None: 1 throughout). A pure function of images seen, like the phases, so a
    resumed run gets the right rate without scheduler state."""
    if decay_start is None or images_seen <= decay_start:
        return 1.0
    return max(0.0, 1.0 - (images_seen - decay_start) / decay_images)
