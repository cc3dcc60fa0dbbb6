"""The ``info`` view of an image, built only from what the reader decoded."""

from __future__ import annotations

from migrate.data import corpus_root
from migrate.formats import read_image
from migrate.show import describe


def test_legacy_view_shows_metadata_and_the_three_files() -> None:
    image = read_image(str(corpus_root() / "legacy-a-fbsd13.0.ckp"))
    view = describe(image)
    assert view["format"] == "legacy-a"
    assert view["generation"] == "fbsd13.0"
    assert [s["name"] for s in view["sections"]] == ["memory", "kern", "meta"]
    assert view["sections"][1]["size"] == sum(e.size for e in (*image.kernel, *image.devices))
    assert view["config"]["source"] == "basic metadata"
    assert view["config"]["memory_size"] == image.memory.size
    assert "vmx" in [e["name"] for e in view["kernel"]]


def test_single_file_view_parses_the_config_section() -> None:
    view = describe(read_image(str(corpus_root() / "r1.bhyve")))
    assert view["config"]["source"] == "config section"
    assert view["config"]["pci"][0] == {"bus": 0, "slot": 3, "function": 0,
                                        "device": "virtio-blk"}
    assert view["memory"] == {"size": 1 << 20, "type": "binary"}
    assert view["compat"] is None
