"""The first-run compile message: which cache indexes count as "compiled", and the message."""

from __future__ import annotations

from wdrcodec import jit


def _touch(folder, *names):
    for n in names:
        (folder / n).write_bytes(b"")


def test_cache_present_needs_every_module_and_ctx_kernels_for_ctx(tmp_path, monkeypatch):
    monkeypatch.setattr(jit, "cache_dirs", lambda: [tmp_path])
    assert not jit.cache_present()
    _touch(tmp_path, "coder.wdr_encode-1.py311.nbi", "lifting._fwd97-2.py311.nbi")
    assert not jit.cache_present()  # parallel's wrappers are missing
    _touch(tmp_path, "parallel._build.locals.wdr_encode-55.py311.nbi")
    assert not jit.cache_present()  # the shape-adaptive kernels (default lossless path) too
    _touch(tmp_path, "shape_adaptive._slabs53-384.py311.nbi")
    assert not jit.cache_present()
    _touch(tmp_path, "mask._encode-116.py311.nbi")
    assert jit.cache_present()
    assert not jit.cache_present("ctx")  # --coder ctx would still compile silently
    _touch(tmp_path, "parallel._build.locals.ctx_encode-66.py311.nbi")
    assert jit.cache_present("ctx")


def test_missing_cache_is_announced_and_then_warmed(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(jit, "cache_dirs", lambda: [tmp_path])  # looks like a fresh machine
    monkeypatch.setattr(jit, "_done", False)
    jit.ensure_compiled(coder="ctx")
    assert "compiling the JIT kernels" in capsys.readouterr().err
    assert jit._done
    monkeypatch.setattr(jit, "_done", False)
    jit.ensure_compiled(quiet=True)
    assert capsys.readouterr().err == ""
