"""Documents quote the served model's operating point from one generated block, equal to the model directory's."""

import pytest

from .served_numbers import BEGIN, DOCUMENTS, END, block


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_the_served_numbers_in_each_document_are_the_served_models(document):
    text = document.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1, f"{document.name} holds one generated block"
    quoted = text[text.index(BEGIN) : text.index(END) + len(END)]
    assert quoted == block(), f"{document.name} differs from models/served: run python -m tests.served_numbers"
