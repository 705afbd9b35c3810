"""Development helpers shared by the tests and the benchmarks, outside the product's packages (as MONAI keeps its
test helpers apart): synthetic and crafted images (:mod:`~devtools.imaging`), servers and a browser for end-to-end
runs (:mod:`~devtools.harness`), the tf-keras-vis reference the heat maps are held to
(:mod:`~devtools.reference_cams`) and the generator of the documents' served-model blocks
(:mod:`~devtools.served_numbers`: ``python -m devtools.served_numbers``)."""
