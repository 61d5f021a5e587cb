"""What every image carries, checked in the image itself: a numeric non-root user, the project's code with the
`mlcycle` CLI, no global single-thread setting that would make training steps single-threaded on any node."""

import pytest
from container_env import ROLES

pytestmark = pytest.mark.container


@pytest.mark.parametrize("role", ROLES)
def test_image_runs_as_a_numeric_non_root_user_with_the_cli(role, images, docker_client):
    image = docker_client.images.get(images[role])
    user = image.attrs["Config"]["User"]
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) != 0, user
    out = docker_client.containers.run(
        images[role], ["--help"], entrypoint=["mlcycle"], network_mode="host", read_only=True, remove=True
    ).decode()
    assert "usage: mlcycle" in out and "run" in out


def test_storage_initializer_image_is_kserves_shape(images, docker_client):
    image = docker_client.images.get(images["storage-initializer"])
    assert image.attrs["Config"]["Entrypoint"] == ["/storage-initializer/scripts/initializer-entrypoint"]
    assert image.attrs["Config"]["User"] == "1000"
    # an odd number of arguments is refused with the usage, not a traceback
    c = docker_client.containers.run(images["storage-initializer"], ["s3://bucket/only-a-source/"], detach=True)
    try:
        assert c.wait(timeout=60)["StatusCode"] == 2
        assert "usage: initializer-entrypoint SRC DEST" in c.logs().decode()
    finally:
        c.remove(force=True)


def test_training_steps_are_not_pinned_to_one_thread(images, docker_client):
    for role in ("pipeline", "drift"):
        env = docker_client.images.get(images[role]).attrs["Config"]["Env"]
        assert not [e for e in env if e.startswith(("OMP_NUM_THREADS=", "OPENBLAS_NUM_THREADS="))], (role, env)
