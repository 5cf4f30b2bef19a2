import numpy as np

from streamvq.space import ReferenceSpace, apply_box
from streamvq.synthetic import MNI_1MM, TRACT_NAMES, synthetic_dataset


def _lines():
    inside = np.zeros((1, 4, 3)) + 5.0
    outside = inside.copy()
    outside[0, 2, 0] = 50.0
    return np.concatenate([inside, outside])


def test_box_policies_count_and_act():
    space = ReferenceSpace(np.eye(4), (10, 10, 10), (1.0, 1.0, 1.0))
    x = _lines()
    kept, idx, rep = apply_box(x, space, "drop")
    assert (len(kept), idx.tolist(), rep.outside, rep.dropped) == (1, [0], 1, 1)
    kept, idx, rep = apply_box(x, space, "keep")
    assert len(kept) == 2 and rep.outside == 1 and rep.dropped == 0
    kept, _, rep = apply_box(x, space, "clip")
    assert rep.clipped == 1 and kept[1, 2, 0] == 9.5


def test_degenerate_grid_is_not_checked():
    space = ReferenceSpace(np.eye(4), (1, 1, 1), (1.0, 1.0, 1.0))
    kept, _, rep = apply_box(_lines(), space, "drop")
    assert len(kept) == 2 and not rep.checked


def test_synthetic_tracts_named_inside_mni_and_varying():
    data = synthetic_dataset(2, 30, seed=4)
    assert len(TRACT_NAMES) == 12 and len(data) == 24
    pts = np.concatenate([np.concatenate(b.streamlines) for b in data])
    vox = MNI_1MM.to_voxel(pts)
    assert (vox >= 0).all() and (vox < np.array(MNI_1MM.dimensions) - 1).all()
    lengths = {len(s) for b in data for s in b.streamlines}
    assert min(lengths) >= 20 and max(lengths) <= 100 and len(lengths) > 20
    # subjects differ, the seed reproduces
    a0 = np.mean(np.concatenate(data[0].streamlines), axis=0)
    a1 = np.mean(np.concatenate(data[12].streamlines), axis=0)
    assert np.linalg.norm(a0 - a1) > 0.5
    again = synthetic_dataset(2, 30, seed=4)
    np.testing.assert_array_equal(again[5].streamlines[3], data[5].streamlines[3])
