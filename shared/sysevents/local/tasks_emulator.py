"""Run the Cloud Tasks emulator (PyPI gcloud-tasks-emulator) on one address of our choosing.

Run by the tasks emulator's own interpreter (`.venv-tasks/bin/python`, see requirements/tasks-emulator.txt),
not imported by the library: `python tasks_emulator.py --host 127.0.0.1 --port P --queue QUEUE_PATH`.
The package's own command binds every interface; this binds only `--host`. Prints `ready on HOST:PORT`
once serving; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

import grpc
from gcloud_tasks_emulator import server as emulator
from gcloud_tasks_emulator.cloudtasks_pb2_grpc import add_CloudTasksServicer_to_server


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--queue", action="append", default=[], help="projects/P/locations/L/queues/Q")
    parser.add_argument(
        "--max-retries", type=int, default=3000, help="failed dispatches before a task is dropped"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def run(self):  # APIThread.run, bound to --host instead of every interface
        self._httpd = grpc.server(emulator.futures.ThreadPoolExecutor(max_workers=8))
        add_CloudTasksServicer_to_server(emulator.Greeter(self._state), self._httpd)
        self._httpd.add_insecure_port(f"{args.host}:{self._port}")
        self._httpd.start()

    emulator.APIThread.run = run
    server = emulator.create_server(
        args.host, args.port, default_queue_names=args.queue, max_retries=args.max_retries
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    print(f"ready on {args.host}:{args.port}", flush=True)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
