"""Documents quote the served model only through generated blocks, equal to the model directory's; every relative link
resolves; the README stays short."""

import re

import pytest

from devtools.served_numbers import BLOCKS, ROOT, block, documents, marked

LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("name", BLOCKS)
def test_every_generated_block_is_the_served_models(name):
    holders = [document for document in documents() if marked(document.read_text(), name)]
    assert holders, f"no document holds the block {name!r}"
    expected = block(name)
    for document in holders:
        for quoted in marked(document.read_text(), name):
            assert quoted == expected, f"{document.name} differs from models/served: run python -m devtools.served_numbers"


@pytest.mark.parametrize("document", documents(), ids=lambda path: path.name)
def test_every_relative_link_resolves(document):
    for target in LINK.findall(document.read_text()):
        if "://" not in target and not target.startswith("mailto:"):
            assert (document.parent / target).exists(), f"{document.name} links to {target}, which does not exist"


def test_the_documents_keep_their_sizes():
    assert len((ROOT / "README.md").read_bytes()) <= 8 * 1024
    assert len((ROOT / "MODEL_CARD.md").read_bytes()) <= 16 * 1024
    assert len((ROOT / "bench" / "RESULTS.md").read_bytes()) <= 30 * 1024
