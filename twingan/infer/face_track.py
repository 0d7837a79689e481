"""Faces followed through a video: detect every few frames, track in between, smooth each box.

Running the cascade on every frame is slow (tens of milliseconds at 720p) and its boxes jump by
several pixels from frame to frame even on a still face, which makes a pasted face visibly
jitter. So the detector runs every `detect_every` frames; in between, each face's square is moved
by the shift phase correlation finds between the previous and the current frame inside it (an
FFT of a 64 x 64 grey patch, well under a millisecond); and the square a frame gets is the
measured one passed through a One Euro filter (Casiez et al., CHI 2012), which smooths hard
while a face holds still and follows quickly when it moves. A face keeps its identity (track id)
for as long as detections keep overlapping its square.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from twingan.infer.faces import FaceKind, detect_faces, square_crop_box

Box = tuple[int, int, int, int]
"""(left, top, right, bottom) of a square inside the frame, as face_paste takes it."""
PATCH = 64
"""Side of the grey patch the shift between frames is measured on."""


class OneEuro:
    """The One Euro filter for one value: a low-pass whose cut-off rises with the value's speed."""

    def __init__(self, min_cutoff: float, beta: float, derivative_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.derivative_cutoff = min_cutoff, beta, derivative_cutoff
        self.value: float | None = None
        self.speed = 0.0

    @staticmethod
    def _alpha(cutoff: float, dt: float) -> float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, measured: float, dt: float) -> float:
        if self.value is None:
            self.value = measured
            return measured
        speed = (measured - self.value) / dt
        self.speed += self._alpha(self.derivative_cutoff, dt) * (speed - self.speed)
        cutoff = self.min_cutoff + self.beta * abs(self.speed)
        self.value += self._alpha(cutoff, dt) * (measured - self.value)
        return self.value


@dataclass
class Track:
    """One face: its measured square (centre x, centre y, side) and the filters that smooth it."""

    id: int
    centre_x: float
    centre_y: float
    side: float
    missed: int = 0
    filters: list[OneEuro] = field(default_factory=list)

    def measured_box(self) -> tuple[float, float, float, float]:
        half = self.side / 2
        return self.centre_x - half, self.centre_y - half, self.centre_x + half, self.centre_y + half


class FaceTracker:
    """Call `update` with every frame in order; it returns each tracked face's smoothed square."""

    def __init__(self, kind: FaceKind, fps: float, detect_every: int | None = None, max_missed: int = 2,
                 min_cutoff: float = 0.5, beta: float = 0.005, min_face_share: float = 1 / 8) -> None:
        """`detect_every` frames the detector runs (default: twice a second); faces smaller than
        `min_face_share` of the frame's short side are not searched for (at 720p the search for
        every size took 1.1 s a frame on 2 cores, from 1/8 up 0.36 s). `min_cutoff` (Hz) sets how
        still a resting box is, `beta` how fast a moving one follows (1/pixel: speeds are pixels
        per second). `max_missed` detections may miss a face before its track ends (a face turned
        away for a moment keeps its identity)."""
        self.kind, self.dt, self.max_missed = kind, 1.0 / fps, max_missed
        self.detect_every = detect_every or max(1, round(fps / 2))
        self.min_face_share = min_face_share
        self.min_cutoff, self.beta = min_cutoff, beta
        self.tracks: list[Track] = []
        self.frame_index = 0
        self._next_id = 0
        self._previous: np.ndarray | None = None

    def update(self, frame: Image.Image) -> list[tuple[int, Box]]:
        """(track id, smoothed square) for every face followed in this frame."""
        grey = np.asarray(frame.convert("L"), dtype=np.float32)
        if self._previous is not None:
            for track in self.tracks:
                self._follow(track, self._previous, grey)
        if self.frame_index % self.detect_every == 0:
            self._detect(frame)
        self._previous = grey
        self.frame_index += 1
        return [(track.id, self._smoothed(track, frame.size)) for track in self.tracks]

    def _detect(self, frame: Image.Image) -> None:
        min_face = max(24, round(self.min_face_share * min(frame.size)))
        found = [square_crop_box(face, frame.size) for face in detect_faces(frame, self.kind, min_face)]
        pairs = sorted(((_iou(t.measured_box(), box), i, j) for i, t in enumerate(self.tracks)
                        for j, box in enumerate(found)), reverse=True)
        matched_tracks, matched_boxes = set(), set()
        for overlap, i, j in pairs:
            if overlap < 0.3 or i in matched_tracks or j in matched_boxes:
                continue
            matched_tracks.add(i)
            matched_boxes.add(j)
            track, (left, top, right, bottom) = self.tracks[i], found[j]
            track.centre_x, track.centre_y, track.side = (left + right) / 2, (top + bottom) / 2, right - left
            track.missed = 0
        for i, track in enumerate(self.tracks):
            if i not in matched_tracks:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for j, (left, top, right, bottom) in enumerate(found):
            if j not in matched_boxes:
                filters = [OneEuro(self.min_cutoff, self.beta) for _ in range(3)]
                self.tracks.append(Track(self._next_id, (left + right) / 2, (top + bottom) / 2, right - left,
                                         filters=filters))
                self._next_id += 1

    def _follow(self, track: Track, previous: np.ndarray, current: np.ndarray) -> None:
        """Move the track's square by the shift between the two frames inside it."""
        from skimage.registration import phase_cross_correlation

        left, top, right, bottom = (round(v) for v in track.measured_box())
        height, width = current.shape
        left, top, right, bottom = max(left, 0), max(top, 0), min(right, width), min(bottom, height)
        if right - left < 8 or bottom - top < 8:
            return
        step = max(1, (right - left) // PATCH)
        before = previous[top:bottom:step, left:right:step]
        after = current[top:bottom:step, left:right:step]
        if before.std() < 1 or after.std() < 1:  # a flat patch (a black frame) says nothing about motion
            return
        # phase normalisation weighs every frequency alike: the face's texture decides the shift,
        # not the smooth background that stays put (plain cross-correlation locked onto it)
        shift, _, _ = phase_cross_correlation(before, after, upsample_factor=4)
        track.centre_y -= float(shift[0]) * step
        track.centre_x -= float(shift[1]) * step

    def _smoothed(self, track: Track, size: tuple[int, int]) -> Box:
        x, y, side = (f(v, self.dt) for f, v in zip(track.filters, (track.centre_x, track.centre_y, track.side)))
        width, height = size
        side = max(1, min(round(side), width, height))
        left = min(max(round(x - side / 2), 0), width - side)
        top = min(max(round(y - side / 2), 0), height - side)
        return left, top, left + side, top + side


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, width) * max(0.0, height)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
