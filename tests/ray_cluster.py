"""A simulated multi-node Ray cluster in its own process, for tests.

Started by tests (never imported by them):

    python -m tests.ray_cluster --workers 2 --worker-cpus 1

It starts ``ray.cluster_utils.Cluster`` (a head with 0 CPUs and no dashboard,
then the worker nodes), prints one JSON line ``{"address", "head", "workers"}``
(node ids in hex) and waits until its stdin closes or it receives SIGTERM;
then it shuts down every node it started, and nothing else.

Ray's settings come from the environment the test gives it: RAY_AUTH_MODE
(and RAY_AUTH_TOKEN), RAY_TMPDIR (a folder of its own, so that Ray's
"current cluster" file of other Ray instances on the machine is never touched).
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-cpus", type=float, default=1)
    args = parser.parse_args()

    from ray.cluster_utils import Cluster

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    cluster = Cluster(
        initialize_head=True,
        shutdown_at_exit=True,
        head_node_args={
            "num_cpus": 0,
            "include_dashboard": False,
            # Ray's default agent port (52365) is held by any other Ray on this machine.
            "dashboard_agent_listen_port": free_port(),
        },
    )
    try:
        workers = [cluster.add_node(num_cpus=args.worker_cpus) for _ in range(args.workers)]
        cluster.wait_for_nodes()
        info = {
            "address": cluster.address,
            "head": cluster.head_node.node_id,
            "workers": [w.node_id for w in workers],
        }
        print(json.dumps(info), flush=True)

        def wait_stdin() -> None:
            sys.stdin.read()
            stop.set()

        threading.Thread(target=wait_stdin, daemon=True).start()
        stop.wait()
    finally:
        cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
