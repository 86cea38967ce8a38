"""The marks every Ray test module carries: the ``ray`` marker and the warnings Ray's own
internals raise (forked helper processes, deprecated settings), which are not ours to fix."""

import pytest

RAY_MARKS = [
    pytest.mark.ray,
    # ray.init forks its helper processes; Lance warns about forks (nothing of Lance runs there)
    pytest.mark.filterwarnings("ignore:lance is not fork-safe:UserWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    # Ray Data's own internals use its deprecated settings
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray"),
    pytest.mark.filterwarnings("ignore::FutureWarning:ray"),
    pytest.mark.filterwarnings(r"ignore:DataFile\.path\(\) is deprecated:DeprecationWarning"),
]
