"""The people finder of the one-person pipeline (mobpose.runtime.finder.DetectorFinder): who it takes, who it
keeps, when it looks, when it gives up; and in mobpose.Pipeline. The detector here is a scripted callable (the
finder's logic is under test; the trained RTMO's own figures are in docs/MODELS.md)."""

from __future__ import annotations

import numpy as np
import pytest

from mobpose.runtime.finder import DetectorFinder, prominence
from mobpose.runtime.people import People


def _people(*boxes, scores=None) -> People:
    """People with xyxy `boxes`; each one's keypoints spread over its box."""
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    t = np.linspace(0, 1, 17, dtype=np.float32)[:, None]
    kp = b[:, None, :2] + t * (b[:, None, 2:] - b[:, None, :2])
    s = np.full(len(b), 0.9, np.float32) if scores is None else np.asarray(scores, np.float32)
    return People(b, s, kp.astype(np.float32), np.ones((len(b), 17), np.float32))


class Script:
    """A detector that returns the next People of a list (the last one forever) and counts its calls."""

    def __init__(self, *frames: People) -> None:
        self.frames, self.calls = list(frames), 0

    def __call__(self, image: np.ndarray) -> People:
        self.calls += 1
        return self.frames[min(self.calls - 1, len(self.frames) - 1)]


IMG = np.zeros((200, 300, 3), np.uint8)
SMALL, BIG = (10, 10, 40, 90), (150, 20, 250, 190)


def _pose_of(box_xywh):
    x, y, w, h = box_xywh
    t = np.linspace(0.0, 1.0, 17)[:, None]  # joints spanning the box: with expand 1 the box keeps its size
    return np.array([x, y]) + t * np.array([w, h]), np.ones(17)


def test_takes_the_most_prominent_person():
    f = DetectorFinder(Script(_people(SMALL, BIG, scores=[0.95, 0.6])))
    f.first((300, 200))
    box = f.observe(IMG)
    np.testing.assert_allclose(box, [150, 20, 100, 170])
    assert prominence(_people(SMALL, BIG, scores=[0.95, 0.6])).argmax() == 1


def test_a_given_box_keeps_its_person_when_someone_more_prominent_comes():
    det = Script(_people(SMALL, BIG))
    f = DetectorFinder(det, bbox=(12, 12, 36, 76), every=1, expand=1.0, smoothing=0.0)
    f.first((300, 200))
    for _ in range(4):
        box = f.observe(IMG)
        np.testing.assert_allclose(box, [10, 10, 30, 80], atol=1e-4)  # the detector's box of that person
        f.next(*_pose_of(box), present=True)
    assert det.calls == 4


def test_detects_every_n_frames_while_tracking_and_follows_the_pose_between():
    det = Script(_people(BIG))
    f = DetectorFinder(det, every=3, expand=1.0, smoothing=0.0)
    f.first((300, 200))
    boxes = []
    for _ in range(7):
        box = f.observe(IMG)
        boxes.append(box)
        pixels, conf = _pose_of(box)
        f.next(pixels + [5.0, 0.0], conf, present=True)  # the pose moves 5 px right a frame
    assert det.calls == 3  # frames 0, 3, 6
    assert f.detections == 3
    assert boxes[1][0] > boxes[0][0]  # between detections the box follows the pose


def test_nobody_found_then_somebody():
    det = Script(_people(), _people(), _people(BIG))
    f = DetectorFinder(det, every=5)
    f.first((300, 200))
    assert f.observe(IMG) is None and f.observe(IMG) is None  # looks on every frame while nobody is tracked
    np.testing.assert_allclose(f.observe(IMG), [150, 20, 100, 170])
    assert det.calls == 3


def test_the_person_is_lost_after_patience_frames_without_a_match():
    det = Script(_people(SMALL), _people(BIG), _people(BIG), _people(BIG))
    f = DetectorFinder(det, every=1, patience=2, expand=1.0, smoothing=0.0)
    f.first((300, 200))
    box = f.observe(IMG)
    f.next(*_pose_of(box), present=True)
    box = f.observe(IMG)  # the small person is gone; the big one does not continue them: a miss, box kept
    np.testing.assert_allclose(box, [10, 10, 30, 80], atol=1e-4)
    f.next(*_pose_of(box), present=True)
    box = f.observe(IMG)  # the second frame without a match: still within patience
    np.testing.assert_allclose(box, [10, 10, 30, 80], atol=1e-4)
    f.next(*_pose_of(box), present=True)
    np.testing.assert_allclose(f.observe(IMG), [150, 20, 100, 170])  # the third: lost, the most prominent taken


def test_a_low_score_detection_continues_the_person_but_does_not_start_one():
    det = Script(_people(BIG, scores=[0.2]), _people(SMALL, BIG, scores=[0.9, 0.2]))
    f = DetectorFinder(det, every=1, expand=1.0, smoothing=0.0)
    f.first((300, 200))
    assert f.observe(IMG) is None  # 0.2 < take_score: nobody taken
    det2 = Script(_people(BIG), _people(BIG, scores=[0.15]))
    g = DetectorFinder(det2, every=1, expand=1.0, smoothing=0.0)
    g.first((300, 200))
    box = g.observe(IMG)
    g.next(*_pose_of(box), present=True)
    np.testing.assert_allclose(g.observe(IMG), [150, 20, 100, 170])  # 0.15 >= keep_score continues them
    assert g._unmatched == 0


def test_a_walking_person_is_matched_by_their_velocity():
    """A person moving 20 px a frame, missed by the detector for a frame: the last detected box no longer
    overlaps the next detection, the box moved on by the person's velocity does."""
    boxes = [(10 + 20 * k, 50, 70 + 20 * k, 130) for k in range(6)]
    frames = [_people(b) for b in boxes[:4]] + [_people(), _people(boxes[5])]
    f = DetectorFinder(Script(*frames), every=1, expand=1.0, smoothing=0.0, min_match=0.3)
    f.first((300, 200))
    for _ in range(5):  # no pose: the boxes alone (PoseTracker.next is not called)
        f.observe(IMG)
    assert f._velocity[0] == pytest.approx(17.5)  # steps of 20 px, smoothed from 0: 10, 15, 17.5
    assert f._unmatched == 1
    box = f.observe(IMG)
    assert f._unmatched == 0  # matched through the predicted box
    np.testing.assert_allclose(box, [110, 50, 60, 80])


def test_bad_settings():
    for kw in ({"every": 0}, {"min_match": 1.5}, {"patience": 0}, {"keep_score": 0.5, "take_score": 0.3}):
        with pytest.raises(ValueError):
            DetectorFinder(Script(_people()), **kw)
    with pytest.raises(TypeError, match="callable"):
        DetectorFinder(42)


def test_pipeline_with_a_finder(models, clip):
    """The pipeline crops where the finder says, and a frame where nobody was found is not 'found'."""
    import mobpose

    ipem, prm, _ = models
    frames, first_box = clip
    x, y, w, h = first_box
    det = Script(_people(), _people((x, y, x + w, y + h)))
    with mobpose.Pipeline(ipem, prm=prm, backend="torch", finder=det, presence=None) as pipe:
        assert pipe.tracker.sees_image
        poses = [pipe.update(f) for f in frames[:4]]
    assert not poses[0].found and all(p.found for p in poses[1:])
    np.testing.assert_allclose(poses[1].box, first_box, atol=1e-3)
    assert poses[1].seconds["search"] > 0
    assert 2 <= det.calls <= 4  # nobody at frame 0, found at frame 1 (the test IPEM's random poses may lose them)


def test_match_is_greedy_one_to_one():
    from mobpose.runtime.multi import match

    s = np.array([[0.9, 0.8, 0.1], [0.85, 0.2, 0.0]])
    assert match(s, 0.3) == [(0, 0)]  # row 1's best column is taken, its next best is under the threshold
    assert match(s, 0.15) == [(0, 0), (1, 1)]
    assert match(np.zeros((0, 3)), 0.3) == []


def test_multi_pipeline_tracks_keep_their_ids(models, clip):
    """Two people, one of whom disappears for a while and comes back: the same ids, a new id for a newcomer."""
    from mobpose.runtime.multi import MultiPipeline

    ipem, prm, _ = models
    frames, _ = clip
    a, b, c = (10, 10, 60, 100), (90, 20, 150, 140), (60, 60, 100, 150)
    det = Script(_people(a, b), _people(a, b), _people(a), _people(a, b), _people(a, b, c))  # b is the bigger
    with MultiPipeline(ipem, prm=prm, backend="torch", finder=det, presence=None, max_missing=2) as multi:
        seen = [multi.update(f) for f in frames[:5]]
    # ids by prominence at the start: b is 1, a is 2; b is missing at frame 2, back at 3; c is new at 4
    assert [sorted(s) for s in seen] == [[1, 2], [1, 2], [2], [1, 2], [1, 2, 3]]
    np.testing.assert_allclose(seen[3][1].box, [90, 20, 60, 120], atol=1e-3)  # b back in its own box
    np.testing.assert_allclose(seen[2][2].box, [10, 10, 50, 90], atol=1e-3)
    assert all(np.isfinite(p.refined).all() for s in seen for p in s.values())
    with pytest.raises(ValueError, match="people detector"):
        MultiPipeline(ipem, finder=None)


def test_infer_all_people_and_save(models, clip, tmp_path):
    import mobpose

    ipem, prm, _ = models
    frames, _ = clip
    det = Script(_people((10, 10, 60, 100), (90, 20, 150, 140)))
    result = mobpose.infer(frames[:3], model=ipem, prm=prm, backend="torch", finder=det, people="all")
    assert len(result) == 6 and result.track_ids() == [1, 2] and result.info["frames"] == 3
    one = result.person(2)
    assert len(one) == 3 and (one.track == 2).all() and one.frame_indices.tolist() == [0, 1, 2]
    for suffix in (".npz", ".json"):
        back = mobpose.PoseResult.load(result.save(tmp_path / f"r{suffix}"))
        assert back.track.tolist() == result.track.tolist()
    with pytest.raises(ValueError, match="bbox"):
        mobpose.infer(frames[:1], model=ipem, finder=det, people="all", bbox=(0, 0, 10, 10))
    with pytest.raises(ValueError, match="people"):
        mobpose.infer(frames[:1], model=ipem, people="some")
