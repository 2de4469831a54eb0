import pytest

from il_lab.cache import ArtifactCache, content_key


def test_key_is_stable_and_content_addressed():
    assert content_key({"a": 1, "b": [1, 2]}) == content_key({"b": [1, 2], "a": 1})
    assert content_key({"a": 1}) != content_key({"a": 2})


def test_miss_builds_then_hit_reuses(tmp_path):
    cache = ArtifactCache(tmp_path)
    built = []

    def build(path):
        built.append(path)
        path.write_text("artifact")

    path, hit = cache.get_or_build("things", {"k": 1}, ".txt", build)
    assert not hit and path.read_text() == "artifact" and len(built) == 1
    assert built[0] != path  # written under a temporary name first
    again, hit = cache.get_or_build("things", {"k": 1}, ".txt", build)
    assert hit and again == path and len(built) == 1
    _, hit = cache.get_or_build("things", {"k": 2}, ".txt", build)
    assert not hit and len(built) == 2


def test_failed_build_leaves_nothing_behind(tmp_path):
    cache = ArtifactCache(tmp_path)

    def build(path):
        path.write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        cache.get_or_build("things", {"k": 1}, ".txt", build)
    leftovers = [p.name for p in (tmp_path / "things").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []
    path, hit = cache.get_or_build("things", {"k": 1}, ".txt", lambda p: p.write_text("ok"))
    assert not hit and path.read_text() == "ok"
