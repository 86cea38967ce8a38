"""The marks every Ray test module carries: the ``ray`` marker and the warnings Ray's own
internals raise (forked helper processes, deprecated settings), which are not ours to fix; and
the module-wide Ray session such a module imports (``from tests.pipeline.ray_marks import
ray_session``): one local cluster, ``ray.init(num_cpus=2)``, per module."""

from collections.abc import Iterator

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


@pytest.fixture(scope="module", autouse=True)
def ray_session() -> Iterator[None]:
    """A local Ray cluster for the module that imports this fixture."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()
