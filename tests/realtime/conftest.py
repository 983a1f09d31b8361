import threading

import pytest

from apps.nodes.models import Node
from apps.nodes.services import nodes_publish
from apps.realtime.supervisor import Supervisor

LOOP = 'trap "" HUP\ni=0\nwhile true; do i=$((i+1)); echo "line $i"; sleep 0.1; done\n'


def realtime_spec(name: str = "stream", content: str = LOOP, **fields) -> dict:
    return {
        "name": name,
        "type": "shell",
        "schedule": {"type": "realtime"},
        "content": content,
        **fields,
    }


@pytest.fixture
def publish_realtime(project, users):
    def publish(*specs: dict, env: str = "prod") -> list[Node]:
        nodes_publish(project=project, env=env, specs=list(specs), user=users["root"])
        return [Node.objects.get(project=project, env=env, name=s["name"]) for s in specs]

    return publish


@pytest.fixture
def start_supervisor(settings):
    """start_supervisor() -> a supervisor looping in a thread of this test, from the
    moment the test is ready for it; each is stopped (processes ended) at the end."""
    settings.OPSCENTER_HEARTBEAT_SECONDS = 0.2
    settings.OPSCENTER_KILL_GRACE_SECONDS = 1
    started = []

    def start() -> Supervisor:
        until = threading.Event()
        running = Supervisor(poll_seconds=0.1)
        thread = threading.Thread(target=running.run, kwargs={"until": until}, daemon=True)
        thread.start()
        started.append((until, thread))
        return running

    yield start
    for until, thread in started:
        until.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the supervisor did not shut down"


@pytest.fixture
def supervisor(start_supervisor):
    """A supervisor running from the start of the test."""
    return start_supervisor()
