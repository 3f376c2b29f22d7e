"""``enroll eval``: accuracy of user vectors against face vectors on a labelled photo folder.

- ``dataset``: the ``<identity>/<photos>`` folder and its enrollment / probe split;
- ``session``: enrollment and searches through the pipeline's own calls, in-process against
  moto and the Rekognition emulator (``engine``: each image is detected once per run);
- ``metrics``: top-1, TAR at FAR, thresholds, false matches, ROC: pure functions;
- ``report``: the JSON document, the text table and the ROC plot.
"""
