"""An S3-compatible server on 127.0.0.1 for tests (moto's server), in its own process.

    python -m tests.s3_server PORT

Prints ``ready`` once it listens, serves until SIGTERM or until its stdin closes.

One fix to moto (5.2) on the way: its CompleteMultipartUpload answer has the root
element ``CompleteMultipartUploadResponse`` where S3 sends
``CompleteMultipartUploadResult``; the AWS C++ SDK in pyarrow takes the former for
an error embedded in a 200 response and retries until it gives up, so no file
written by pyarrow's S3 filesystem could ever be completed.
"""

from __future__ import annotations

import signal
import sys
import threading


def _patch_moto() -> None:
    from moto.s3.responses import S3Response

    original = S3Response._key_response_post

    def key_response_post(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        if isinstance(result, tuple) and len(result) == 3:
            status, headers, body = result
            wrong, right = "CompleteMultipartUploadResponse", "CompleteMultipartUploadResult"
            if isinstance(body, bytes):
                body = body.replace(wrong.encode(), right.encode())
            elif isinstance(body, str):
                body = body.replace(wrong, right)
            result = (status, headers, body)
        return result

    S3Response._key_response_post = key_response_post


def main() -> int:
    port = int(sys.argv[1])
    _patch_moto()
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def wait_stdin() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=wait_stdin, daemon=True).start()
    print("ready", flush=True)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
