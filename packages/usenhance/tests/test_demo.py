import pytest


@pytest.mark.slow
def test_demo_rows_quick(tmp_path):
    from usenhance.demo import demo_rows

    rows = demo_rows(tmp_path, quick=True)
    assert len(rows) == 12 and all(r.tool == "usenhance" for r in rows)
    assert {r.metric for r in rows} >= {"SSIM", "LNCC", "PSNR"}
    assert any("LPIPS" in r.metric for r in rows)
    assert (tmp_path / "grid_liver.png").is_file()
